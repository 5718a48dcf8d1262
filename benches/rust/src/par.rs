//! Data-parallel loops: `weft_parallel_for` through the C ABI (grain chosen by weft)
//! vs rayon's `par_iter` (its global pool, one thread per CPU), on the same two
//! workloads as the C side (benches/c/parallel.c): the sum of a cheap function over
//! [0, n) and a map `out[i] = in[i] * 1.5 + 1` over float arrays.
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;

use crate::weft::{check, weft_parallel_for, RangeFn};
use crate::{rt, Kind, Params, Sample};

fn term(i: usize) -> u64 {
    (i as u64).wrapping_mul(2_654_435_761) ^ (i as u64) >> 3
}

fn serial_sum(n: usize) -> u64 {
    (0..n).map(term).fold(0u64, u64::wrapping_add)
}

/// How many calls one sample times, back to back: enough to cover 10^5 elements (the
/// C side's rule, benches/c/parallel.c: a single call over 10^3 elements is too short
/// to time alone). Larger ranges are one call.
fn calls_per_sample(n: usize) -> usize {
    if n >= 100_000 {
        1
    } else {
        100_000 / n
    }
}

/// Microseconds per call of `calls` made since `t0`.
fn micros(t0: Instant, calls: usize) -> Sample {
    Sample { value: t0.elapsed().as_nanos() as f64 / 1e3 / calls as f64, extra: 0.0 }
}

unsafe extern "C" fn sum_body(begin: usize, end: usize, ud: *mut c_void) -> i32 {
    let s = (begin..end).map(term).fold(0u64, u64::wrapping_add);
    // SAFETY: `ud` is the AtomicU64 of `sum_weft`, alive for the call.
    unsafe { &*(ud as *const AtomicU64) }.fetch_add(s, Relaxed);
    0
}

/// `calls_per_sample(n)` calls of `weft_parallel_for` over [0, n), timed: the sample,
/// and the calls' failure codes or-ed together.
///
/// # Safety
/// `ud` is what `body` expects, alive for the calls.
unsafe fn timed_weft_calls(n: usize, body: RangeFn, ud: *mut c_void) -> (Sample, i32) {
    let calls = calls_per_sample(n);
    let mut failed = 0;
    let t0 = Instant::now();
    for _ in 0..calls {
        let mut code = 0;
        // SAFETY: see above.
        check("weft_parallel_for", unsafe { weft_parallel_for(rt(), 0, n, 0, body, ud, &mut code) });
        failed |= code;
    }
    (micros(t0, calls), failed)
}

fn sum_weft(p: &Params) -> Sample {
    let s = AtomicU64::new(0);
    // SAFETY: `sum_body` takes the AtomicU64, which outlives the calls.
    let (sample, failed) = unsafe { timed_weft_calls(p.n, sum_body, &s as *const AtomicU64 as *mut c_void) };
    let calls = calls_per_sample(p.n) as u64;
    assert!(failed == 0 && s.load(Relaxed) == serial_sum(p.n).wrapping_mul(calls), "weft sum");
    sample
}

fn sum_rayon(p: &Params) -> Sample {
    let calls = calls_per_sample(p.n);
    let mut s = 0u64;
    let t0 = Instant::now();
    for _ in 0..calls {
        s = s.wrapping_add((0..p.n).into_par_iter().map(term).reduce(|| 0, u64::wrapping_add));
    }
    let sample = micros(t0, calls);
    assert_eq!(s, serial_sum(p.n).wrapping_mul(calls as u64), "rayon sum");
    sample
}

/// The arrays, made and touched once per size (no run pays page faults).
static ARRAYS: Mutex<(Vec<f32>, Vec<f32>)> = Mutex::new((Vec::new(), Vec::new()));

fn with_arrays(n: usize, f: impl FnOnce(&[f32], &mut [f32]) -> Sample) -> Sample {
    let mut arrays = ARRAYS.lock().unwrap();
    if arrays.0.len() < n {
        *arrays = ((0..n).map(|i| (i % 1000) as f32).collect(), vec![0.0; n]);
    }
    let (input, output) = &mut *arrays;
    let sample = f(&input[..n], &mut output[..n]);
    for i in (0..n).step_by(1 + n / 1000) {
        assert_eq!(output[i], input[i] * 1.5 + 1.0, "map element {i}");
    }
    sample
}

struct MapArgs {
    input: *const f32,
    output: *mut f32,
}

unsafe extern "C" fn map_body(begin: usize, end: usize, ud: *mut c_void) -> i32 {
    // SAFETY: `ud` is the MapArgs of `map_weft`; the sub-ranges are disjoint and within
    // both arrays, so these slices alias nothing else while the body runs.
    let (input, output) = unsafe {
        let a = &*(ud as *const MapArgs);
        (
            std::slice::from_raw_parts(a.input.add(begin), end - begin),
            std::slice::from_raw_parts_mut(a.output.add(begin), end - begin),
        )
    };
    // The same loop as rayon's closure below (slices, so the compiler vectorises both).
    output.iter_mut().zip(input).for_each(|(o, i)| *o = i * 1.5 + 1.0);
    0
}

fn map_weft(p: &Params) -> Sample {
    with_arrays(p.n, |input, output| {
        let args = MapArgs { input: input.as_ptr(), output: output.as_mut_ptr() };
        // SAFETY: `map_body` takes the MapArgs; it and the arrays outlive the calls.
        let (sample, failed) = unsafe { timed_weft_calls(p.n, map_body, &args as *const MapArgs as *mut c_void) };
        assert_eq!(failed, 0);
        sample
    })
}

fn map_serial(p: &Params) -> Sample {
    with_arrays(p.n, |input, output| {
        let calls = calls_per_sample(p.n);
        let t0 = Instant::now();
        for _ in 0..calls {
            output.iter_mut().zip(input).for_each(|(o, i)| *o = i * 1.5 + 1.0);
            std::hint::black_box(&mut *output); // each call stores its elements
        }
        micros(t0, calls)
    })
}

fn map_rayon(p: &Params) -> Sample {
    with_arrays(p.n, |input, output| {
        let calls = calls_per_sample(p.n);
        let t0 = Instant::now();
        for _ in 0..calls {
            output.par_iter_mut().zip(input.par_iter()).for_each(|(o, i)| *o = i * 1.5 + 1.0);
        }
        micros(t0, calls)
    })
}

pub fn kinds() -> Vec<Kind> {
    vec![
        Kind {
            name: "parallel_sum",
            unit: "us per sum over [0, n)",
            better: "lower",
            extra_unit: None,
            variants: vec![("weft", sum_weft), ("rayon", sum_rayon)],
        },
        Kind {
            name: "parallel_map",
            unit: "us per map of n floats",
            better: "lower",
            extra_unit: None,
            variants: vec![("weft", map_weft), ("rayon", map_rayon)],
        },
        // The same map, one implementation per process, calls back to back: what each
        // costs without the other's threads around (docs/parallel.md). Not in run.py's
        // cases, whose comparisons are interleaved.
        Kind { name: "parallel_map_weft_alone", variants: vec![("weft", map_weft)], ..map_alone() },
        Kind { name: "parallel_map_rayon_alone", variants: vec![("rayon", map_rayon)], ..map_alone() },
        Kind { name: "parallel_map_serial", variants: vec![("serial", map_serial)], ..map_alone() },
    ]
}

fn map_alone() -> Kind {
    Kind { name: "", unit: "us per map of n floats", better: "lower", extra_unit: None, variants: vec![] }
}
