//! Runtime-level tests that are simpler in Rust than in C: many host threads at once,
//! races between close and spawn, and the C boundary answering every bad call with a
//! code. The C conformance suite (tests/conformance) covers the API function by
//! function.
mod common;

use std::ffi::{c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{close, last_error, open, Rt, SendPtr};
use weft::*;

unsafe extern "C" fn double(arg: *mut c_void, result: *mut *mut c_void) -> i32 {
    *result = (arg as usize * 2) as *mut c_void;
    (arg as usize % 1000) as i32
}

fn spawn(rt: Rt, f: weft_task_fn, arg: *mut c_void) -> Result<*mut weft_task_t, i32> {
    let mut t = ptr::null_mut();
    // SAFETY: a live runtime; defaults for the options.
    match unsafe { weft_spawn(rt.0, f, arg, ptr::null(), &mut t) } {
        WEFT_OK => Ok(t),
        err => Err(err),
    }
}

fn join(t: *mut weft_task_t) -> (i32, usize) {
    let (mut code, mut result) = (-1, ptr::null_mut());
    // SAFETY: a handle from weft_spawn, joined once.
    let status = unsafe { weft_join(t, WEFT_FOREVER, &mut code, &mut result) };
    assert_eq!(status, WEFT_OK, "weft_join: {}", last_error());
    (code, result as usize)
}

/// Eight host threads spawn and join tasks on one runtime at once; every code and
/// result comes back to the right joiner.
#[test]
fn spawn_join_from_many_host_threads() {
    let rt = open();
    let threads: Vec<_> = (0..8usize)
        .map(|thread| {
            std::thread::spawn(move || {
                for i in 0..200usize {
                    let arg = thread * 10_000 + i;
                    let t = spawn(rt, Some(double), arg as *mut c_void).expect("spawn");
                    assert_eq!(join(t), ((arg % 1000) as i32, arg * 2));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    close(rt);
}

unsafe extern "C" fn lock_many(arg: *mut c_void, _result: *mut *mut c_void) -> i32 {
    let shared = &*(arg as *const Shared);
    for _ in 0..20_000 {
        if weft_mutex_lock(shared.mutex()) != WEFT_OK {
            return 1;
        }
        *shared.count.get() += 1;
        if weft_mutex_unlock(shared.mutex()) != WEFT_OK {
            return 2;
        }
    }
    0
}

struct Shared {
    mutex: std::cell::UnsafeCell<weft_mutex_t>,
    count: std::cell::UnsafeCell<u64>,
}
// SAFETY: `count` is only touched under the weft mutex.
unsafe impl Sync for Shared {}

impl Shared {
    fn mutex(&self) -> *mut weft_mutex_t {
        self.mutex.get()
    }
}

/// Host threads (each its own context) and tasks contend for one mutex: the count is
/// exact.
#[test]
fn mutex_shared_by_host_threads_and_tasks() {
    let rt = open();
    // SAFETY: zeroed storage is what weft_mutex_init expects to overwrite.
    let shared = Arc::new(Shared { mutex: unsafe { std::mem::zeroed() }, count: 0.into() });
    assert_eq!(unsafe { weft_mutex_init(rt.0, shared.mutex(), 0) }, WEFT_OK);
    let arg = SendPtr(Arc::as_ptr(&shared) as *mut c_void);
    let tasks: Vec<_> = (0..4).map(|_| spawn(rt, Some(lock_many), arg.0).unwrap()).collect();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let arg = arg;
                // SAFETY: the same function a task runs, called on a host thread.
                unsafe { lock_many(arg.0, ptr::null_mut()) }
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(join(t).0, 0);
    }
    for t in threads {
        assert_eq!(t.join().unwrap(), 0);
    }
    assert_eq!(unsafe { *shared.count.get() }, 8 * 20_000);
    assert_eq!(unsafe { weft_mutex_destroy(shared.mutex()) }, WEFT_OK);
    close(rt);
}

unsafe extern "C" fn nothing(_arg: *mut c_void, _result: *mut *mut c_void) -> i32 {
    0
}

/// Closes race with spawns while another thread is attached (so every close that gets
/// past the task count is refused by the registry). A refused close must leave the
/// runtime exactly as it was: spawns keep working, and once the thread detaches and
/// the tasks end, the close succeeds.
#[test]
fn refused_close_races_with_spawn() {
    let rt = open();
    let attached = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let holder = {
        let (attached, release) = (attached.clone(), release.clone());
        std::thread::spawn(move || {
            let rt = rt; // the whole Send wrapper, not its raw pointer field
            assert_eq!(unsafe { weft_thread_attach(rt.0) }, WEFT_OK);
            attached.store(true, SeqCst);
            while !release.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(unsafe { weft_thread_detach(rt.0) }, WEFT_OK);
        })
    };
    while !attached.load(SeqCst) {
        std::thread::yield_now();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU64::new(0));
    let spawner = {
        let (stop, spawned) = (stop.clone(), spawned.clone());
        std::thread::spawn(move || {
            while !stop.load(SeqCst) {
                let t = spawn(rt, Some(nothing), ptr::null_mut()).unwrap_or_else(|e| {
                    panic!("spawn refused ({e}) by a runtime that is not closed: {}", last_error())
                });
                join(t);
                spawned.fetch_add(1, SeqCst);
            }
        })
    };
    let until = Instant::now() + Duration::from_millis(500);
    let give_up = Instant::now() + Duration::from_secs(20);
    let mut refusals = 0u64;
    while (Instant::now() < until || spawned.load(SeqCst) < 100) && !spawner.is_finished() {
        assert!(Instant::now() < give_up, "spawns stalled after {} while closes were refused", spawned.load(SeqCst));
        assert_eq!(unsafe { weft_runtime_close(rt.0) }, WEFT_EBUSY);
        refusals += 1;
    }
    stop.store(true, SeqCst);
    spawner.join().unwrap();
    release.store(true, SeqCst);
    holder.join().unwrap();
    assert!(refusals > 0);
    close(rt);
}

/// Every bad call comes back as a code with a message that names the function; no
/// panic crosses the boundary and nothing aborts.
#[test]
fn boundary_answers_with_codes() {
    let rt = open();
    unsafe {
        let mut zeroed: weft_mutex_t = std::mem::zeroed();
        assert_eq!(weft_mutex_lock(&mut zeroed), WEFT_EINVAL);
        assert!(last_error().starts_with("weft_mutex_lock: "), "{}", last_error());
        assert_eq!(weft_mutex_unlock(ptr::null_mut()), WEFT_EINVAL);
        assert!(last_error().starts_with("weft_mutex_unlock: "));
        let mut junk = [0u64; 256];
        assert_eq!(weft_yield(junk.as_mut_ptr() as *mut weft_runtime_t), WEFT_EINVAL);
        assert!(last_error().contains("not a weft runtime"), "{}", last_error());
        assert_eq!(weft_join(junk.as_mut_ptr() as *mut weft_task_t, 0, ptr::null_mut(), ptr::null_mut()), WEFT_EINVAL);
        assert!(last_error().contains("not a weft task"), "{}", last_error());
        assert_eq!(weft_now(ptr::null()), -1);
        assert!(last_error().starts_with("weft_now: "));
        for code in WEFT_OK..=WEFT_EINTERNAL {
            let text = CStr::from_ptr(common::weft_strerror(code)).to_str().unwrap();
            assert!(!text.is_empty() && text != "unknown status code", "code {code}");
        }
    }
    close(rt);
    // A closed runtime answers too.
    assert_eq!(unsafe { weft_yield(rt.0) }, WEFT_EINVAL);
    assert!(last_error().contains("closed"));
}
