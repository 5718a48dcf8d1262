//! A runtime: one loaded platform plugin, its tasks and mutators, its stop-the-world
//! state; and the logic below the API layer, which takes checked references only.
//!
//! A runtime is never freed: a closed one keeps its small shell so that a late call
//! through a stale pointer gets `WEFT_EINVAL` ("runtime was closed") instead of touching
//! freed memory. Everything heavy (the plugin's state, the mutator registry) is released.
//!
//! Layout of the runtime below the API layer (each module's comment says more):
//! * `context`: who is calling (a task's or a host thread's identity, task-local slots);
//! * `task`, `keys`: tasks and task-local keys;
//! * `sync`: mutexes, conditions and rwlocks in host memory, over one common header;
//! * `chan`, `select`, `blob`: channels, select, shared payloads;
//! * `safepoint`, `internal_lock`: mutators, safepoints, stop-the-world, blocking regions;
//! * `host`: the host services the plugin calls back (the way up from the plugin).
use std::ffi::{c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering::Acquire, Ordering::SeqCst};

use weft_platform::fork_lock::ForkMutex;
use weft_platform::*;

use crate::ffi::error::{check_plugin, fail, Result};
use crate::ffi::handle::{Handle, Lifetime};
use crate::plugin::loader::{self, Platform};
use crate::plugin::plat_call;
use crate::types::*;

pub(crate) mod blob;
pub(crate) mod chan;
pub(crate) mod checks;
pub(crate) mod context;
pub(crate) mod current;
pub(crate) mod fork;
pub(crate) mod group;
pub(crate) mod host;
pub(crate) mod internal_lock;
pub(crate) mod io;
pub(crate) mod keys;
pub(crate) mod owner_token;
pub(crate) mod parked;
pub(crate) mod parking;
pub(crate) mod pool;
pub(crate) mod safepoint;
pub(crate) mod select;
pub(crate) mod sem;
pub(crate) mod stack;
pub(crate) mod sync;
pub(crate) mod task;

use checks::Checks;
use internal_lock::Cond;
use safepoint::World;

/// A runtime: one loaded platform plus the registry of its tasks and mutators.
///
/// `repr(C)`: what the fast paths read of the runtime (its tag, `closed`, `fast_locks`,
/// `sched_yield`, `monotonic`) leads, on the first of its cache lines (the struct is
/// aligned to 64 bytes by `tasks`), which nothing writes while it is open; a
/// `weft_yield` that read three lines, cold after the previous call's system call, read
/// two since (about 1 ns, docs/performance.md).
#[repr(C)]
pub(crate) struct Runtime {
    tag: AtomicU32,
    /// Read on every call; written once, at close.
    closed: AtomicBool,
    /// Open and without checks: the mutex fast paths' one test of the runtime, beside
    /// `closed` (one load on the lock's path where `is_open` and `checks` took two).
    fast_locks: AtomicBool,
    /// The platform's yield is `sched_yield` (`WEFT_CAP_SCHED_YIELD`), which
    /// `weft_yield` then makes itself.
    sched_yield: bool,
    /// The clock `weft_now` reads itself: set where the platform claims
    /// `WEFT_CAP_MONOTONIC_CLOCK`, else the plugin's `now` is called.
    monotonic: Option<weft_platform::clock::ClockGettime>,
    /// The plugin's table, copied in: one dependent load less on every call.
    pub(crate) table: weft_platform_t,
    pub(crate) prt: *mut weft_plat_rt_t,
    pub(crate) on_task_start: weft_task_hook_fn,
    pub(crate) on_task_exit: weft_task_hook_fn,
    pub(crate) hook_ud: *mut c_void,
    pub(crate) info: weft_platform_info_t,
    /// Running tasks (low 32 bits), waiting `drain` calls (DRAINER units), and CLOSING
    /// while a close is deciding: one word, so that a task's exit and a drain's wait
    /// agree on who wakes whom (see `end_task`). Written by every spawn and every exit:
    /// on a cache line of its own, away from what every call reads (`closed`, `table`).
    tasks: OwnLine<AtomicU64>,
    pub(crate) world: World,
    pub(crate) checks: Checks,
    /// The `weft_parallel_for` workers, made on first use.
    pool: std::sync::OnceLock<pool::Pool>,
    /// The parking table (`weft_wait_on`, semaphores, barriers), made on first use.
    parking: std::sync::OnceLock<parking::ParkingTable>,
    /// The thread that opened the runtime: on a deterministic platform, the one thread
    /// it runs (its tasks run there too, one at a time).
    opener: libc::pthread_t,
    /// Held while the pool or the parking table is made. The runtime's own, not a
    /// static: a child of fork() never finds it held by a thread it does not have.
    making: ForkMutex<()>,
}

// SAFETY: the raw pointers are the plugin's state and the host's hook data, both made
// to be used from any thread.
unsafe impl Send for Runtime {}
// SAFETY: as for Send; every mutable field is atomic or behind a lock.
unsafe impl Sync for Runtime {}

const RUNTIME_TAG: u32 = 0x5752_544d;

impl Handle for Runtime {
    const KIND: &'static str = "runtime";
    const LIVE: &'static [u32] = &[RUNTIME_TAG];
    // Never stored: a closed runtime keeps its live tag and says so through `closed`.
    const DEAD: u32 = 0x5752_5846;
    const DEAD_REASON: &'static str = "was closed";
    const LIFETIME: Lifetime = Lifetime::Immortal;
    fn tag(&self) -> &AtomicU32 {
        &self.tag
    }
}

/// A value alone on its cache line(s).
#[repr(align(64))]
struct OwnLine<T>(T);

impl<T> std::ops::Deref for OwnLine<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

const CLOSING: u64 = 1 << 63;
const TASK_MASK: u64 = (1 << 32) - 1;
const DRAINER: u64 = 1 << 32;

/// Closed runtimes, kept reachable (see the module comment).
pub(crate) static CLOSED: ForkMutex<Vec<usize>> = ForkMutex::new(Vec::new());

/// The runtime opened last, for calls that take no runtime and come from a thread that
/// is not a mutator (a select with no cases).
static LAST_OPENED: AtomicPtr<Runtime> = AtomicPtr::new(ptr::null_mut());

/// The runtime a call without a runtime argument uses: the caller's (a task's, or an
/// attached thread's), else the one opened last, if it is still open.
pub(crate) fn implicit_runtime() -> Option<&'static Runtime> {
    // SAFETY: runtimes are never freed.
    let rt = safepoint::caller_runtime().or_else(|| unsafe { LAST_OPENED.load(Acquire).as_ref() })?;
    rt.is_open().then_some(rt)
}

impl Runtime {
    /// Loads the configured platform and opens a runtime on it.
    pub(crate) fn open(cfg: &weft_config_t, platform: Option<&CStr>) -> Result<&'static Runtime> {
        let check_flags = checks::flags_for(cfg.flags, loader::secure_env(c"WEFT_CHECKS"))?;
        let platform: &'static Platform = loader::load(platform, &host::HOST)?;
        let table = &platform.table;
        let plat_cfg = weft_plat_config_t {
            struct_size: std::mem::size_of::<weft_plat_config_t>() as u32,
            workers: cfg.workers,
            seed: cfg.seed,
        };
        let mut prt = ptr::null_mut();
        check_plugin(plat_call!(table, runtime_open(&plat_cfg, &mut prt)), || {
            format!(
                "platform \"{}\" could not open a runtime (plugin {})",
                platform.name.to_string_lossy(),
                platform.path.to_string_lossy()
            )
        })?;
        let world = match World::new(table, prt) {
            Ok(world) => world,
            Err(e) => {
                plat_call!(table, runtime_close(prt));
                return Err(e);
            }
        };
        let rt: &'static Runtime = Box::leak(Box::new(Runtime {
            tag: AtomicU32::new(RUNTIME_TAG),
            closed: AtomicBool::new(false),
            fast_locks: AtomicBool::new(check_flags == 0),
            sched_yield: table.caps & WEFT_CAP_SCHED_YIELD != 0,
            monotonic: (table.caps & WEFT_CAP_MONOTONIC_CLOCK != 0).then(weft_platform::clock::fastest_clock_gettime),
            // SAFETY: a plain copy of the accepted table (pointers to the plugin's
            // static data and functions, valid for the life of the process).
            table: unsafe { std::ptr::read(table) },
            prt,
            on_task_start: cfg.on_task_start,
            on_task_exit: cfg.on_task_exit,
            hook_ud: cfg.hook_ud,
            info: weft_platform_info_t {
                struct_size: std::mem::size_of::<weft_platform_info_t>() as u32,
                abi_version: table.abi_version,
                name: platform.name.as_ptr(),
                version: platform.version.as_ptr(),
                path: platform.path.as_ptr(),
                caps: table.caps,
            },
            tasks: OwnLine(AtomicU64::new(0)),
            world,
            checks: Checks::new(check_flags, cfg.on_check_report, cfg.hook_ud),
            pool: std::sync::OnceLock::new(),
            parking: std::sync::OnceLock::new(),
            // SAFETY: no preconditions.
            opener: unsafe { libc::pthread_self() },
            making: ForkMutex::new(()),
        }));
        // A platform that preempts polling tasks learns the poll word (ABI 2 and later).
        if let Some(attach) = rt.table.preempt_attach {
            // SAFETY: a member of an accepted table, present for its version, with the
            // runtime's own poll word, which lives as long as the process.
            unsafe { attach(rt.prt, rt.world.flag.as_ptr()) };
        }
        fork::runtime_opened(rt);
        LAST_OPENED.store(rt as *const Runtime as *mut Runtime, SeqCst);
        Ok(rt)
    }

    /// The pool of `weft_parallel_for`, made on first use.
    pub(crate) fn pool(&'static self) -> Result<&'static pool::Pool> {
        if let Some(pool) = self.pool.get() {
            return Ok(pool);
        }
        let _making = self.making.lock();
        if self.pool.get().is_none() {
            let _ = self.pool.set(pool::Pool::new(self)?);
        }
        Ok(self.pool.get().expect("the pool was just made"))
    }

    /// `WEFT_ENOTSUP` on a thread a deterministic platform does not run (any but the
    /// one that opened the runtime, whose tasks run on it): asked by the calls that
    /// change something before they wake a waiter, since the platform refuses such a
    /// thread's wake-up only as "woke nobody" (its park and unpark take no status).
    pub(crate) fn check_runs_caller(&self) -> Result<()> {
        if self.table.caps & WEFT_CAP_DETERMINISTIC != 0
            // SAFETY: no preconditions; two pthread_t of this process.
            && unsafe { libc::pthread_equal(libc::pthread_self(), self.opener) } == 0
        {
            // SAFETY: the platform's name, a C string of the loaded platform's, kept for ever.
            let name = unsafe { CStr::from_ptr(self.info.name) }.to_string_lossy();
            fail!(
                WEFT_ENOTSUP,
                "the {name} platform runs every task on the thread that opened the runtime, and does not \
                 control this thread (made by the host, not by weft_spawn): call weft from weft tasks or \
                 from the opening thread only"
            );
        }
        Ok(())
    }

    /// The parking table, made on first use.
    pub(crate) fn parking(&'static self) -> Result<&'static parking::ParkingTable> {
        if let Some(table) = self.parking.get() {
            return Ok(table);
        }
        let _making = self.making.lock();
        if self.parking.get().is_none() {
            let _ = self.parking.set(parking::ParkingTable::new(self)?);
        }
        Ok(self.parking.get().expect("the table was just made"))
    }

    /// Ends the pool's workers, which are tasks of this runtime (they start again on
    /// the next `weft_parallel_for`).
    /// A `drain` waits.
    pub(crate) fn draining(&self) -> bool {
        self.tasks.load(SeqCst) & !CLOSING & !TASK_MASK != 0
    }

    /// True if the pool's workers ended by the deadline (see `Pool::stop`).
    fn stop_pool(&self, deadline: i64) -> bool {
        self.pool.get().is_none_or(|pool| pool.stop(deadline))
    }

    /// Closes the runtime (see `weft_runtime_close`).
    pub(crate) fn close(&'static self) -> Result<()> {
        // A platform that runs only the opening thread would free its scheduler under it.
        self.check_runs_caller()?;
        // Refused before the pool stops: the workers would first finish the chunks of a
        // running task's `weft_parallel_for`, however long its bodies take.
        let workers = self.pool.get().map_or(0, |pool| pool.workers());
        let running = (self.tasks.load(SeqCst) & TASK_MASK).saturating_sub(workers as u64);
        if running != 0 {
            fail!(WEFT_EBUSY, "{running} task(s) of this runtime still run (weft_runtime_drain waits for them)");
        }
        self.stop_pool(WEFT_FOREVER);
        if let Err(word) = self.tasks.compare_exchange(0, CLOSING, SeqCst, SeqCst) {
            let running = word & TASK_MASK;
            if running != 0 {
                fail!(WEFT_EBUSY, "{running} task(s) of this runtime still run (weft_runtime_drain waits for them)");
            }
            if word & !CLOSING & !TASK_MASK != 0 {
                fail!(WEFT_EBUSY, "another thread is waiting in weft_runtime_drain on this runtime");
            }
            fail!(WEFT_EBUSY, "another thread is closing this runtime");
        }
        if let Err(e) = self.world.close_registry(|| self.mark_closed()) {
            // Clear only the CLOSING bit: a concurrent spawn may have counted itself in
            // the meantime and will take itself out again; storing 0 here would make its
            // decrement wrap the count, leaving the runtime unusable and unclosable.
            self.tasks.fetch_and(!CLOSING, SeqCst);
            return Err(e);
        }
        self.world.release();
        self.checks.release();
        plat_call!(self.table, runtime_close(self.prt));
        CLOSED.lock().push(self as *const Runtime as usize);
        fork::runtime_closed(self);
        Ok(())
    }

    pub(crate) fn is_open(&self) -> bool {
        !self.closed.load(Acquire)
    }

    /// Open, with no checks on: a mutex's lock and unlock may end on their fast paths.
    #[inline(always)]
    pub(crate) fn fast_locks(&self) -> bool {
        self.fast_locks.load(Acquire)
    }

    fn mark_closed(&self) {
        self.fast_locks.store(false, SeqCst);
        self.closed.store(true, SeqCst);
    }

    /// In a child process (see `fork`): the runtime is the parent's; every call on it is
    /// refused from now on.
    pub(crate) fn leave_in_parent(&self) {
        self.mark_closed();
    }

    /// Counts a task about to start; fails once the runtime is closed.
    pub(crate) fn begin_task(&self) -> Result<()> {
        loop {
            if self.tasks.fetch_add(1, SeqCst) & CLOSING == 0 {
                return Ok(());
            }
            self.tasks.fetch_sub(1, SeqCst);
            if self.closed.load(SeqCst) {
                fail!(WEFT_EINVAL, "the runtime is closed");
            }
            // A close is deciding: it holds CLOSING only while it checks the registry,
            // and it may still be refused (attached threads). A spawn must not fail
            // because of a close that does not happen, so wait for the decision. Not
            // through the plugin: once the close succeeds, its state is being freed.
            std::thread::yield_now();
        }
    }

    /// Counts a task that has exited (the last thing its `task_run` does). With a
    /// drain waiting, the count is taken down under the world lock and the drain woken:
    /// the task stays counted until it no longer touches the lock, so a close (which
    /// needs the count at 0) cannot free the lock under it.
    pub(crate) fn end_task(&self) {
        let mut word = self.tasks.load(SeqCst);
        while word & !CLOSING & !TASK_MASK == 0 {
            match self.tasks.compare_exchange_weak(word, word - 1, SeqCst, SeqCst) {
                Ok(_) => return,
                Err(now) => word = now,
            }
        }
        self.world.with_lock(|l| {
            self.tasks.fetch_sub(1, SeqCst);
            l.broadcast(Cond::Idle);
        });
    }

    /// Waits until no task of this runtime runs (detached ones included), or the
    /// deadline: `WEFT_ETIMEDOUT` then, with the number still running.
    pub(crate) fn drain(&self, deadline: i64) -> Result<()> {
        // A platform that runs only the opening thread refuses this one's waits: the
        // loop below spun on them, whatever the deadline.
        self.check_runs_caller()?;
        // Counted before the pool stops: a `weft_parallel_for` from a task still
        // running then starts no new workers (`draining`), which would run on after the
        // drain's stop and never let it end.
        self.tasks.fetch_add(DRAINER, SeqCst);
        // At the deadline the workers run on, counted among the tasks still running.
        self.stop_pool(deadline);
        let (left, status) = safepoint::in_blocking_region_of_caller(self, || {
            self.world.with_lock(|l| loop {
                let running = self.tasks.load(SeqCst) & TASK_MASK;
                let status = if running == 0 { WEFT_OK } else { l.wait_until(Cond::Idle, deadline) };
                // Anything but a wake-up ends the wait: the deadline, or a wait the
                // platform refused (which no later wait would take either).
                if running == 0 || status != WEFT_OK {
                    let running = self.tasks.load(SeqCst) & TASK_MASK;
                    self.tasks.fetch_sub(DRAINER, SeqCst);
                    break (running, status);
                }
            })
        });
        if left != 0 {
            if status != WEFT_ETIMEDOUT {
                check_plugin(status, || format!("cannot wait for the {left} task(s) still running"))?;
            }
            fail!(WEFT_ETIMEDOUT, "{left} task(s) still ran at the deadline");
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn now(&self) -> i64 {
        if let Some(clock_gettime) = self.monotonic {
            // The platform's clock, read here without a call through the table.
            return weft_platform::clock::monotonic_now_with(clock_gettime);
        }
        plat_call!(self.table, now(self.prt))
    }

    /// The loaded platform's name and plugin ABI version, for messages.
    pub(crate) fn platform_label(&self) -> String {
        // SAFETY: `info.name` points to the loaded platform's name, which lives as long
        // as the process (plugins are never unloaded).
        let name = unsafe { CStr::from_ptr(self.info.name) }.to_string_lossy();
        format!("platform \"{name}\" (plugin ABI {})", self.info.abi_version)
    }

    pub(crate) fn deadline_after(&self, ns: i64) -> i64 {
        self.now().saturating_add(ns)
    }

    /// `weft_yield`: the plugin's yield, between two safepoint polls. A loop that spins
    /// on `weft_yield` neither holds up a stop-the-world (it parks at its next call) nor
    /// runs on during one (it parks on the way out). Where a yield leaves the task
    /// queued behind others (green, sim), the stop waits until the task runs again and
    /// polls, as it waits for any running mutator: the worker runs it, since the tasks
    /// ahead of it park at their own polls. A blocking region around the yield would
    /// count the queued task as stopped at once, for two more sequentially consistent
    /// atomics on every yield (a quarter of a yield between two green tasks).
    pub(crate) fn yield_now(&self) -> Result<()> {
        safepoint::poll(self);
        let status = self.plugin_yield();
        safepoint::poll(self);
        self.yielded(status)
    }

    /// Whether a waiter of the runtime's own parking (semaphores, barriers) may watch
    /// for its wake-up before it parks: every task is an OS thread, so a watch spins
    /// only its own CPU (never a worker's other tasks'), and the platform's time is real.
    #[inline]
    pub(crate) fn waiters_may_watch(&self) -> bool {
        self.table.caps & WEFT_CAP_OS_THREADS != 0 && self.table.caps & WEFT_CAP_DETERMINISTIC == 0
    }

    /// Whether the platform's yield is `sched_yield` on the calling thread, which
    /// `weft_yield` then makes itself (`WEFT_CAP_SCHED_YIELD`).
    #[inline]
    pub(crate) fn yield_is_sched_yield(&self) -> bool {
        self.sched_yield
    }

    /// The plugin's yield, as is.
    #[inline]
    pub(crate) fn plugin_yield(&self) -> weft_status_t {
        plat_call!(self.table, r#yield(self.prt))
    }

    /// The outcome of the plugin's yield.
    pub(crate) fn yielded(&self, status: weft_status_t) -> Result<()> {
        check_plugin(status, || "the platform could not yield".into())
    }

    pub(crate) fn sleep_until(&self, deadline: i64) -> Result<()> {
        let status = plat_call!(self.table, sleep_until(self.prt, deadline));
        if status == WEFT_ECANCELED {
            fail!(WEFT_ECANCELED, "the calling task was cancelled while it slept");
        }
        check_plugin(status, || "sleep interrupted".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_word_keeps_its_fields_apart() {
        let word = 3 * DRAINER + 5;
        assert_eq!(word & TASK_MASK, 5);
        assert_eq!(word & !CLOSING & !TASK_MASK, 3 * DRAINER);
        assert_eq!((word | CLOSING) & TASK_MASK, 5);
    }

    #[test]
    fn what_the_fast_paths_read_is_on_the_first_cache_line() {
        use std::mem::{align_of, offset_of, size_of};
        assert_eq!(align_of::<Runtime>() % 64, 0);
        let end = offset_of!(Runtime, monotonic) + size_of::<Option<weft_platform::clock::ClockGettime>>();
        assert!(end <= 64, "the runtime's hot fields end at byte {end}");
        for hot in [offset_of!(Runtime, tag), offset_of!(Runtime, closed), offset_of!(Runtime, fast_locks)] {
            assert!(hot < 64, "a hot field at byte {hot}");
        }
        assert!(offset_of!(Runtime, tasks) >= 64, "the task count, written by every spawn, shares the hot line");
    }
}
