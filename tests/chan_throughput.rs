//! Channel throughput: weft's channels (native plugin, through the C API) beside
//! crossbeam-channel, P producers x C consumers moving `usize`s. A printout, not a
//! pass/fail test (timing never decides a test); run it by hand, optimised:
//!
//!     cargo build --release --workspace
//!     cargo test --release --test chan_throughput -- --ignored --nocapture
use std::ffi::CString;
use std::ptr;
use std::time::Instant;

use weft::*;

const PRODUCERS: usize = 4;
const CONSUMERS: usize = 4;
const PER_PRODUCER: usize = 1_000_000;
const RUNS: usize = 3;

#[derive(Clone, Copy)]
struct Shared(*mut weft_chan_t);
// SAFETY: a weft channel is made to be used from any thread.
unsafe impl Send for Shared {}

fn open_native() -> *mut weft_runtime_t {
    let dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let plugin = CString::new(dir.join("libweft_native.so").to_str().unwrap()).unwrap();
    let cfg = weft_config_t { platform: plugin.as_ptr(), ..Default::default() };
    let mut rt = ptr::null_mut();
    // SAFETY: valid config and out-pointer.
    let status = unsafe { weft_runtime_open(&cfg, &mut rt) };
    assert_eq!(status, WEFT_OK, "build the plugin first: cargo build --release --workspace");
    rt
}

fn weft_once(rt: *mut weft_runtime_t, capacity: usize) -> f64 {
    let mut ch = ptr::null_mut();
    // SAFETY: valid runtime and out-pointer.
    assert_eq!(unsafe { weft_chan_new(rt, std::mem::size_of::<usize>(), capacity, ptr::null(), &mut ch) }, WEFT_OK);
    let shared = Shared(ch);
    let start = Instant::now();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            std::thread::spawn(move || {
                let shared = shared;
                let (mut sum, mut v) = (0usize, 0usize);
                // SAFETY: the channel outlives the threads (released after the joins).
                while unsafe { weft_chan_recv(shared.0, &mut v as *mut usize as *mut _, WEFT_FOREVER) } == WEFT_OK {
                    sum = sum.wrapping_add(v);
                }
                sum
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            std::thread::spawn(move || {
                let shared = shared;
                for i in 0..PER_PRODUCER {
                    let v = p * PER_PRODUCER + i;
                    // SAFETY: as above.
                    assert_eq!(
                        unsafe { weft_chan_send(shared.0, &v as *const usize as *const _, WEFT_FOREVER) },
                        WEFT_OK
                    );
                }
            })
        })
        .collect();
    producers.into_iter().for_each(|t| t.join().unwrap());
    // SAFETY: as above.
    unsafe { weft_chan_close(ch) };
    let sum: usize = consumers.into_iter().map(|t| t.join().unwrap()).fold(0, usize::wrapping_add);
    let took = start.elapsed().as_secs_f64();
    let n = PRODUCERS * PER_PRODUCER;
    assert_eq!(sum, n * (n - 1) / 2);
    // SAFETY: the last reference.
    unsafe { weft_chan_release(ch) };
    took
}

fn crossbeam_once(capacity: usize) -> f64 {
    let (tx, rx) = if capacity == WEFT_CHAN_UNBOUNDED {
        crossbeam_channel::unbounded()
    } else {
        crossbeam_channel::bounded(capacity)
    };
    let start = Instant::now();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || rx.iter().fold(0usize, usize::wrapping_add))
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || (0..PER_PRODUCER).for_each(|i| tx.send(p * PER_PRODUCER + i).unwrap()))
        })
        .collect();
    drop((tx, rx));
    producers.into_iter().for_each(|t| t.join().unwrap());
    let sum: usize = consumers.into_iter().map(|t| t.join().unwrap()).fold(0, usize::wrapping_add);
    let took = start.elapsed().as_secs_f64();
    let n = PRODUCERS * PER_PRODUCER;
    assert_eq!(sum, n * (n - 1) / 2);
    took
}

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

#[test]
#[ignore = "a benchmark printout; run by hand with --release --ignored --nocapture"]
fn weft_vs_crossbeam() {
    let rt = open_native();
    let messages = (PRODUCERS * PER_PRODUCER) as f64;
    println!("{PRODUCERS} producers x {CONSUMERS} consumers x {PER_PRODUCER} usize each, median of {RUNS} runs");
    println!("{:<12} {:>12} {:>12} {:>8}", "channel", "weft Mmsg/s", "xbeam Mmsg/s", "ratio");
    for (name, capacity) in
        [("bounded(64)", 64), ("bounded(1)", 1), ("rendezvous", 0), ("unbounded", WEFT_CHAN_UNBOUNDED)]
    {
        let mut weft_runs = Vec::new();
        let mut xbeam_runs = Vec::new();
        for _ in 0..RUNS {
            weft_runs.push(weft_once(rt, capacity));
            xbeam_runs.push(crossbeam_once(capacity));
        }
        let (w, x) = (median(weft_runs), median(xbeam_runs));
        println!("{name:<12} {:>12.2} {:>12.2} {:>8.2}", messages / w / 1e6, messages / x / 1e6, w / x);
    }
    // SAFETY: no task runs.
    assert_eq!(unsafe { weft_runtime_close(rt) }, WEFT_OK);
}
