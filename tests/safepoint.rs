//! Stop-the-world races, many times over, through the C ABI of the rlib on the native
//! plugin (loaded by path from next to this test's executable: `target/<profile>/`).
//!
//! Mutator tasks do "managed work" (bump `epoch`) only while they run managed code,
//! and between pieces of work they poll, enter and leave host-made blocking regions,
//! lock a contended mutex, wait on a condition and sleep; short-lived tasks start and
//! exit all the time. A collector stops the world thousands of times and checks each
//! time that the epoch does not move and that no task is reported RUNNING. Everything
//! asserted is a count; nothing depends on speed.
use std::cell::UnsafeCell;
use std::ffi::{c_void, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::SeqCst};

use weft::*;

fn open_native() -> *mut weft_runtime_t {
    let exe = std::env::current_exe().unwrap();
    let plugin = exe.parent().and_then(|deps| deps.parent()).unwrap().join("libweft_native.so");
    assert!(plugin.exists(), "{} is missing: run `cargo build --workspace` first", plugin.display());
    let path = CString::new(plugin.to_str().unwrap()).unwrap();
    let cfg = weft_config_t { platform: path.as_ptr(), ..Default::default() };
    let mut rt = ptr::null_mut();
    // SAFETY: valid config and out pointer; the path is copied by the loader.
    assert_eq!(unsafe { weft_runtime_open(&cfg, &mut rt) }, WEFT_OK);
    rt
}

struct World {
    rt: *mut weft_runtime_t,
    flag: *const AtomicU32,
    epoch: AtomicU64,
    in_stop: AtomicBool,
    violations: AtomicU64,
    quit: AtomicBool,
    work: [AtomicU64; MUTATORS],
    churn: AtomicU64,
    m: UnsafeCell<weft_mutex_t>,
    c: UnsafeCell<weft_cond_t>,
    gen: AtomicI64,
}

// SAFETY: the runtime and sync objects are made to be shared between threads.
unsafe impl Sync for World {}
unsafe impl Send for World {}

const MUTATORS: usize = 4;

impl World {
    fn new() -> &'static World {
        let rt = open_native();
        let world: &'static World = Box::leak(Box::new(World {
            rt,
            // SAFETY: an open runtime.
            flag: unsafe { weft_safepoint_flag(rt) } as *const AtomicU32,
            epoch: AtomicU64::new(0),
            in_stop: AtomicBool::new(false),
            violations: AtomicU64::new(0),
            quit: AtomicBool::new(false),
            work: Default::default(),
            churn: AtomicU64::new(0),
            m: UnsafeCell::new(weft_mutex_t { _opaque: [0; 8] }),
            c: UnsafeCell::new(weft_cond_t { _opaque: [0; 8] }),
            gen: AtomicI64::new(0),
        }));
        // SAFETY: the objects live for the rest of the process.
        unsafe {
            assert_eq!(weft_mutex_init(rt, world.m.get(), 0), WEFT_OK);
            assert_eq!(weft_cond_init(rt, world.c.get()), WEFT_OK);
        }
        world
    }

    fn managed_work(&self, index: usize) {
        if self.in_stop.load(SeqCst) {
            self.violations.fetch_add(1, SeqCst);
        }
        self.epoch.fetch_add(1, SeqCst);
        self.work[index].fetch_add(1, SeqCst);
    }

    /// What `WEFT_SAFEPOINT_POLL` does.
    fn poll(&self) {
        // SAFETY: the flag word lives as long as the process.
        if unsafe { &*self.flag }.load(std::sync::atomic::Ordering::Relaxed) != 0 {
            // SAFETY: an open runtime.
            assert_eq!(unsafe { weft_safepoint(self.rt) }, WEFT_OK);
        }
    }

    fn m(&self) -> *mut weft_mutex_t {
        self.m.get()
    }

    fn c(&self) -> *mut weft_cond_t {
        self.c.get()
    }
}

struct MutatorArg {
    world: &'static World,
    index: usize,
}

fn deadline_after(rt: *mut weft_runtime_t, ns: i64) -> i64 {
    // SAFETY: an open runtime.
    unsafe { weft_deadline_after(rt, ns) }
}

/// One mutator: cycles through every way of being stopped.
unsafe extern "C" fn mutator(arg: *mut c_void, _result: *mut *mut c_void) -> i32 {
    let a = &*(arg as *const MutatorArg);
    let w = a.world;
    let mut round = 0u64;
    while !w.quit.load(SeqCst) {
        match round % 5 {
            0 => {
                w.managed_work(a.index);
                w.poll();
            }
            1 => {
                assert_eq!(weft_blocking_begin(w.rt), WEFT_OK);
                std::thread::yield_now(); // host code that does not touch managed memory
                assert_eq!(weft_blocking_end(w.rt), WEFT_OK);
                w.managed_work(a.index);
            }
            2 => {
                assert_eq!(weft_mutex_lock(w.m()), WEFT_OK);
                w.managed_work(a.index);
                assert_eq!(weft_mutex_unlock(w.m()), WEFT_OK);
            }
            3 => {
                assert_eq!(weft_mutex_lock(w.m()), WEFT_OK);
                let seen = w.gen.load(SeqCst);
                let status = weft_cond_wait_until(w.c(), w.m(), deadline_after(w.rt, 200_000));
                assert!(status == WEFT_OK || status == WEFT_ETIMEDOUT, "cond wait: {status}");
                if w.gen.load(SeqCst) != seen {
                    w.managed_work(a.index);
                }
                assert_eq!(weft_mutex_unlock(w.m()), WEFT_OK);
            }
            _ => {
                assert_eq!(weft_sleep_until(w.rt, deadline_after(w.rt, 50_000)), WEFT_OK);
                w.managed_work(a.index);
            }
        }
        round += 1;
    }
    0
}

/// A short-lived task: a little managed work, then it exits (often during a stop
/// request).
unsafe extern "C" fn short_lived(arg: *mut c_void, _result: *mut *mut c_void) -> i32 {
    let w = &*(arg as *const World);
    w.managed_work(0);
    w.poll();
    w.churn.fetch_add(1, SeqCst);
    0
}

/// Spawns and joins short-lived tasks until told to quit.
unsafe extern "C" fn spawner(arg: *mut c_void, _result: *mut *mut c_void) -> i32 {
    let w = &*(arg as *const World);
    while !w.quit.load(SeqCst) {
        let mut t = ptr::null_mut();
        assert_eq!(weft_spawn(w.rt, Some(short_lived), arg, ptr::null(), &mut t), WEFT_OK);
        assert_eq!(weft_join(t, WEFT_FOREVER, ptr::null_mut(), ptr::null_mut()), WEFT_OK);
        w.poll();
    }
    0
}

unsafe extern "C" fn count_running_tasks(info: *const weft_task_info_t, ud: *mut c_void) -> bool {
    let info = &*info;
    if !info.task.is_null() && info.state == WEFT_TASK_RUNNING {
        *(ud as *mut u64) += 1;
    }
    false
}

fn running_tasks(rt: *mut weft_runtime_t) -> u64 {
    let mut running = 0u64;
    // SAFETY: a valid callback and counter.
    assert_eq!(
        unsafe { weft_tasks_foreach(rt, Some(count_running_tasks), &mut running as *mut u64 as *mut c_void) },
        WEFT_OK
    );
    running
}

fn spawn(
    rt: *mut weft_runtime_t,
    f: unsafe extern "C" fn(*mut c_void, *mut *mut c_void) -> i32,
    arg: *mut c_void,
) -> *mut weft_task_t {
    let mut t = ptr::null_mut();
    // SAFETY: a valid function and out pointer; `arg` outlives the task.
    assert_eq!(unsafe { weft_spawn(rt, Some(f), arg, ptr::null(), &mut t) }, WEFT_OK);
    t
}

fn join(t: *mut weft_task_t) -> i32 {
    let mut code = -1;
    // SAFETY: a handle from weft_spawn, joined once.
    assert_eq!(unsafe { weft_join(t, WEFT_FOREVER, &mut code, ptr::null_mut()) }, WEFT_OK);
    code
}

fn wait_all_worked(w: &World) {
    while w.work.iter().any(|n| n.load(SeqCst) == 0) {
        std::thread::yield_now();
    }
}

#[test]
fn thousands_of_stops_against_every_kind_of_mutator() {
    let w = World::new();
    let args: &'static [MutatorArg] = Box::leak((0..MUTATORS).map(|index| MutatorArg { world: w, index }).collect());
    let tasks: Vec<_> = args.iter().map(|a| spawn(w.rt, mutator, a as *const _ as *mut c_void)).collect();
    let churner = spawn(w.rt, spawner, w as *const World as *mut c_void);
    wait_all_worked(w);

    const STOPS: u64 = 3000;
    for stop in 0..STOPS {
        // SAFETY: an open runtime.
        unsafe {
            assert_eq!(weft_stw_begin(w.rt, deadline_after(w.rt, 20_000_000_000)), WEFT_OK);
        }
        w.in_stop.store(true, SeqCst);
        let before = w.epoch.load(SeqCst);
        assert_eq!(running_tasks(w.rt), 0, "stop {stop}: a task reported RUNNING while the world is stopped");
        if stop % 3 == 0 {
            // Wake condition waiters inside the stop: they must give the mutex back.
            // SAFETY: objects initialised above.
            unsafe {
                assert_eq!(weft_mutex_lock(w.m()), WEFT_OK);
                w.gen.fetch_add(1, SeqCst);
                assert_eq!(weft_cond_broadcast(w.c()), WEFT_OK);
                assert_eq!(weft_mutex_unlock(w.m()), WEFT_OK);
            }
        }
        for _ in 0..200 {
            std::hint::spin_loop();
        }
        assert_eq!(w.epoch.load(SeqCst), before, "stop {stop}: managed code ran while the world was stopped");
        w.in_stop.store(false, SeqCst);
        // SAFETY: the caller holds the stop.
        unsafe {
            assert_eq!(weft_stw_end(w.rt), WEFT_OK);
        }
        if stop % 100 == 0 {
            std::thread::yield_now();
        }
    }

    w.quit.store(true, SeqCst);
    // SAFETY: objects initialised above.
    unsafe {
        assert_eq!(weft_mutex_lock(w.m()), WEFT_OK);
        assert_eq!(weft_cond_broadcast(w.c()), WEFT_OK);
        assert_eq!(weft_mutex_unlock(w.m()), WEFT_OK);
    }
    for t in tasks {
        assert_eq!(join(t), 0);
    }
    assert_eq!(join(churner), 0);
    assert_eq!(w.violations.load(SeqCst), 0);
    assert!(w.churn.load(SeqCst) > 0);
    // SAFETY: every task has been joined.
    assert_eq!(unsafe { weft_runtime_close(w.rt) }, WEFT_OK);
}

struct Requesters {
    world: &'static World,
    holder: AtomicU64,
    stops: AtomicU64,
}

const ROUNDS: u64 = 500;

fn requester_rounds(r: &Requesters, who: u64, poll: bool) {
    let w = r.world;
    for _ in 0..ROUNDS {
        // SAFETY: an open runtime.
        unsafe {
            assert_eq!(weft_stw_begin(w.rt, deadline_after(w.rt, 20_000_000_000)), WEFT_OK);
        }
        assert_eq!(r.holder.swap(who, SeqCst), 0, "two requesters held the world at once");
        let before = w.epoch.load(SeqCst);
        w.in_stop.store(true, SeqCst);
        std::hint::spin_loop();
        w.in_stop.store(false, SeqCst);
        assert_eq!(w.epoch.load(SeqCst), before);
        assert_eq!(r.holder.swap(0, SeqCst), who);
        r.stops.fetch_add(1, SeqCst);
        // SAFETY: the caller holds the stop.
        unsafe {
            assert_eq!(weft_stw_end(w.rt), WEFT_OK);
        }
        if poll {
            w.poll();
        }
    }
}

unsafe extern "C" fn requester_task(arg: *mut c_void, _result: *mut *mut c_void) -> i32 {
    let r = &*(arg as *const Requesters);
    let me = weft_task_id(weft_task_self());
    requester_rounds(r, me, true);
    0
}

#[test]
fn concurrent_requesters_take_turns() {
    let w = World::new();
    let args: &'static [MutatorArg] = Box::leak((0..2).map(|index| MutatorArg { world: w, index }).collect());
    let pollers: Vec<_> = args.iter().map(|a| spawn(w.rt, mutator, a as *const _ as *mut c_void)).collect();
    let r: &'static Requesters =
        Box::leak(Box::new(Requesters { world: w, holder: AtomicU64::new(0), stops: AtomicU64::new(0) }));
    // Two requesters that are mutators (tasks), one attached thread, one plain thread.
    let tasks: Vec<_> = (0..2).map(|_| spawn(w.rt, requester_task, r as *const _ as *mut c_void)).collect();
    struct SendRt(*mut weft_runtime_t);
    unsafe impl Send for SendRt {}
    let attached_rt = SendRt(w.rt);
    let attached = std::thread::spawn(move || {
        let rt = attached_rt;
        // SAFETY: an open runtime.
        unsafe { assert_eq!(weft_thread_attach(rt.0), WEFT_OK) };
        requester_rounds(r, u64::MAX - 1, true);
        // SAFETY: attached above.
        unsafe { assert_eq!(weft_thread_detach(rt.0), WEFT_OK) };
    });
    let plain = std::thread::spawn(move || requester_rounds(r, u64::MAX, false));
    for t in tasks {
        assert_eq!(join(t), 0);
    }
    attached.join().unwrap();
    plain.join().unwrap();
    assert_eq!(r.stops.load(SeqCst), 4 * ROUNDS);
    w.quit.store(true, SeqCst);
    for t in pollers {
        assert_eq!(join(t), 0);
    }
    assert_eq!(w.violations.load(SeqCst), 0);
    // SAFETY: every task has been joined.
    assert_eq!(unsafe { weft_runtime_close(w.rt) }, WEFT_OK);
}
