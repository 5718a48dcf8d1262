//! `weft_parallel_for`: a pool of worker tasks per runtime, started on first use.
//!
//! The workers are ordinary weft tasks of the runtime, so they are whatever the platform
//! makes of a task (OS threads on native and pthread, green tasks on green), they are
//! mutators like any other, and they sleep on a weft condition (parking the task, not
//! the thread, where the platform can). A call splits its range into chunks, publishes
//! the job, and works on it itself; idle workers take chunks of any published job from a
//! shared counter. The caller can always finish its own job alone, so a body that calls
//! `weft_parallel_for` again (nesting), or calls from several tasks at once, never
//! deadlock. See docs/parallel.md.
use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::atomic::{
    AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::SeqCst,
};
use std::sync::Arc;

use weft_platform::fork_lock::ForkMutex;
use weft_platform::once::known_once;
use weft_platform::*;

use crate::ffi::callback::{host_call, may_unwind};
use crate::ffi::error::{fail, Result};
use crate::runtime::context;
use crate::runtime::safepoint;
use crate::runtime::sync::cond::CondObject;
use crate::runtime::sync::mutex::MutexObject;
use crate::runtime::task::{Joiner, SpawnRequest, Spawned, Task};
use crate::runtime::Runtime;

/// A body: `body(begin, end, ud)`, non-zero to fail.
pub(crate) type RangeFn = unsafe extern "C" fn(usize, usize, *mut c_void) -> i32;

/// Chunks per participant when the caller lets weft choose the grain: enough for the
/// load to even out, few enough that a chunk's overhead stays small.
const CHUNKS_PER_PARTICIPANT: usize = 16;

/// With the grain left to weft, how long the caller works alone before it hands the
/// rest of the range to the pool: waking a worker and waiting for its last chunk costs
/// about this much, so a range done sooner is done faster alone.
const SOLO_NS: u64 = 10_000;

/// On platforms of OS threads, how long an idle worker (and a caller waiting for its
/// job's last chunk) keeps looking before it sleeps: back-to-back calls then find the
/// workers awake, as OpenMP's and rayon's spinning workers are.
const SPIN_NS: u64 = 50_000;

/// The pool's workers on a deterministic platform (sim), whatever the machine's CPUs.
const DETERMINISTIC_WORKERS: usize = 3;

struct Job {
    begin: usize,
    len: usize,
    chunks: usize,
    body: RangeFn,
    ud: *mut c_void,
    next: AtomicUsize,
    done: AtomicUsize,
    /// The first failing body's code; 0 while none failed.
    failed: AtomicI32,
}

// SAFETY: `ud` is the host's, documented as shared by the bodies on every participant.
unsafe impl Send for Job {}
// SAFETY: as for Send; the rest is atomic or immutable.
unsafe impl Sync for Job {}

impl Job {
    /// Chunk `i`: `[begin + i*len/chunks, begin + (i+1)*len/chunks)`, so that every
    /// chunk is at least `len / chunks` long (never shorter than the grain).
    fn chunk(&self, i: usize) -> (usize, usize) {
        let at = |k: usize| self.begin + ((k as u128 * self.len as u128) / self.chunks as u128) as usize;
        (at(i), at(i + 1))
    }

    fn has_work(&self) -> bool {
        self.next.load(Acquire) < self.chunks
    }

    /// Runs chunks until none is left to claim; true if this call finished the job.
    fn work(&self) -> bool {
        let mut finished = false;
        loop {
            let i = self.next.fetch_add(1, AcqRel);
            if i >= self.chunks {
                return finished;
            }
            let mut counted = 1;
            if self.failed.load(Acquire) == 0 {
                let (b, e) = self.chunk(i);
                let body = may_unwind!(self.body, fn(usize, usize, *mut c_void) -> i32);
                // SAFETY: the host's body with its own `ud`, on a sub-range of its range.
                let code = host_call("a weft_parallel_for body", || unsafe { body(b, e, self.ud) });
                if code != 0 {
                    let _ = self.failed.compare_exchange(0, code, AcqRel, Acquire);
                }
            } else {
                // Failed: every chunk nobody claimed yet is skipped at once, not claimed
                // one by one (billions of them in a large range with a small grain).
                let claimed = self.next.swap(self.chunks, AcqRel).max(i + 1);
                counted += self.chunks.saturating_sub(claimed);
            }
            finished = self.done.fetch_add(counted, AcqRel) + counted == self.chunks;
        }
    }
}

/// The pool of one runtime.
pub(crate) struct Pool {
    jobs: ForkMutex<VecDeque<Arc<Job>>>,
    /// Bumped on every publication and completion: what sleepers wait to change.
    epoch: AtomicU64,
    /// Workers and callers asleep (or about to be) on `wake`: `announce` takes the lock
    /// and broadcasts only when some are.
    sleepers: AtomicUsize,
    /// Whether waiting starts with a spin (platforms of OS threads; see `SPIN_NS`).
    spins: bool,
    lock: &'static MutexObject,
    wake: &'static CondObject,
    /// The workers' handles (joinable, so that `stop` returns once they are gone);
    /// `started` while they run.
    workers: ForkMutex<Vec<&'static Task>>,
    started: AtomicBool,
    stopping: AtomicBool,
    start_lock: ForkMutex<()>,
}

impl Pool {
    pub(crate) fn new(rt: &'static Runtime) -> Result<Pool> {
        let lock = MutexObject::internal_mutex(rt)?;
        let wake = CondObject::internal_cond(rt)?;
        Ok(Pool {
            jobs: ForkMutex::new(VecDeque::new()),
            epoch: AtomicU64::new(0),
            sleepers: AtomicUsize::new(0),
            spins: rt.table.caps & WEFT_CAP_OS_THREADS != 0,
            lock,
            wake,
            workers: ForkMutex::new(Vec::new()),
            started: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            start_lock: ForkMutex::new(()),
        })
    }

    /// One worker per CPU but one (the caller's), counted once per process:
    /// `available_parallelism` reads the affinity mask and the cgroup's CPU quota from
    /// /sys, some 30 us of system calls that every call past its solo start paid before
    /// (a quarter of a 10^6 map). `known_once`, not a `OnceLock`, which a child forked
    /// during the first count would wait on for ever. On a deterministic platform a
    /// fixed number, as for four CPUs: the workers are tasks whose switches the seed
    /// orders, and a seed replayed on a machine with other CPUs ran another schedule.
    fn workers_wanted(rt: &Runtime) -> usize {
        if rt.table.caps & WEFT_CAP_DETERMINISTIC != 0 {
            return DETERMINISTIC_WORKERS;
        }
        static WANTED: AtomicUsize = AtomicUsize::new(0);
        known_once(&WANTED, || std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1))
    }

    /// Starts the workers once (again after a `stop`): false, and none started, while
    /// a drain waits (it stopped the pool, and waits for every task to end: workers
    /// started now would not). Looked at under the lock `stop` takes, after the drain
    /// counted itself: either these workers start first and the drain's stop ends them,
    /// or this sees the drain.
    fn start(&'static self, rt: &'static Runtime) -> Result<bool> {
        if self.started.load(Acquire) {
            return Ok(true);
        }
        let _guard = self.start_lock.lock();
        if self.started.load(Acquire) {
            return Ok(true);
        }
        if rt.draining() {
            return Ok(false);
        }
        self.stopping.store(false, SeqCst);
        let mut workers = self.workers.lock();
        for _ in 0..Self::workers_wanted(rt) {
            let request = SpawnRequest {
                func: worker_main,
                arg: self as *const Pool as *mut c_void,
                name: Some(c"weft-pool".to_owned()),
                stack_size: 0,
                detached: false,
                group: None,
            };
            match Task::spawn(rt, request) {
                Ok(Spawned { task: Some(task), .. }) => workers.push(task),
                Ok(Spawned { task: None, .. }) => {}
                Err(e) if workers.is_empty() => return Err(e),
                Err(_) => break, // fewer workers than CPUs: still a pool
            }
        }
        self.started.store(true, SeqCst);
        Ok(true)
    }

    /// The workers started (they are tasks of the runtime: a close looks past them).
    pub(crate) fn workers(&self) -> usize {
        if self.started.load(Acquire) {
            self.workers.lock().len()
        } else {
            0
        }
    }

    /// Asks the workers to end and waits until they have, or the deadline (before a
    /// drain or a close). A worker ends once no job has a chunk left: while a call's
    /// bodies run, that is when they return. At the deadline the pool works on (true
    /// only if every worker ended). Not a cancellation point: a cancelled caller's
    /// joins would fail at once, and leave the workers running with the pool stopped.
    pub(crate) fn stop(&self, deadline: i64) -> bool {
        let _guard = self.start_lock.lock();
        if !self.started.load(Acquire) {
            return true;
        }
        let _mask = safepoint::CancelMask::new(&context::current().mutator);
        self.stopping.store(true, SeqCst);
        self.announce();
        let mut workers = self.workers.lock();
        while let Some(&worker) = workers.last() {
            match worker.join(deadline, Joiner::Handle) {
                Ok(_) => {}
                // The caller is this worker (a body that drains or closes the
                // runtime): it ends by itself once its body returns.
                Err(e) if e.code == WEFT_EDEADLK => {
                    let _ = worker.detach();
                }
                Err(_) => {
                    self.stopping.store(false, SeqCst);
                    return false;
                }
            }
            workers.pop();
        }
        self.started.store(false, SeqCst);
        true
    }

    /// Wakes every sleeper (a job was published or finished). A sleeper counts itself
    /// before it looks at the epoch, and this bumps the epoch before it looks at the
    /// count (all SeqCst): either it sees the sleeper, or the sleeper sees the new epoch.
    fn announce(&self) {
        self.epoch.fetch_add(1, SeqCst);
        if self.sleepers.load(SeqCst) == 0 {
            return;
        }
        let me = context::current();
        let rt = self.lock.runtime();
        let _ = self.lock.lock(rt, me, None);
        let _ = self.wake.broadcast();
        let _ = self.lock.unlock(rt, me);
    }

    /// Waits until `done()` or the epoch moves past `seen`: a spin first where that
    /// pays (`SPIN_NS`), then asleep on `wake`.
    fn wait_for(&self, seen: u64, done: impl Fn() -> bool) {
        if self.spins {
            let started = std::time::Instant::now();
            while self.epoch.load(SeqCst) == seen && !done() {
                if started.elapsed().as_nanos() as u64 >= SPIN_NS {
                    break;
                }
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
            }
        }
        if self.epoch.load(SeqCst) != seen || done() {
            return;
        }
        let me = context::current();
        let rt = self.lock.runtime();
        self.sleepers.fetch_add(1, SeqCst);
        let _ = self.lock.lock(rt, me, None);
        // Not a cancellation point (the call's chunks run on, and it returns when they
        // are done): a cancelled caller's every wait would return at once, and it
        // would spin here holding the lock.
        let _mask = safepoint::CancelMask::new(&me.mutator);
        while self.epoch.load(SeqCst) == seen && !done() {
            let _ = self.wake.wait(self.lock, me, WEFT_FOREVER);
        }
        let _ = self.lock.unlock(rt, me);
        self.sleepers.fetch_sub(1, SeqCst);
    }

    fn next_job(&self) -> Option<Arc<Job>> {
        self.jobs.lock().iter().find(|j| j.has_work()).cloned()
    }
}

/// A worker: takes chunks of any published job, sleeps when there are none.
unsafe extern "C" fn worker_main(arg: *mut c_void, _result: *mut *mut c_void) -> i32 {
    // SAFETY: the pool of a runtime, which is never freed.
    let pool: &Pool = unsafe { &*(arg as *const Pool) };
    loop {
        let seen = pool.epoch.load(SeqCst);
        while let Some(job) = pool.next_job() {
            if job.work() {
                pool.announce();
            }
        }
        if pool.stopping.load(SeqCst) {
            break;
        }
        pool.wait_for(seen, || pool.stopping.load(SeqCst));
    }
    0
}

/// What the caller's solo start left.
enum Solo {
    /// The whole range is done (or a body failed, with this code): nothing for the pool.
    Finished(i32),
    /// `[begin, begin + len)` is left.
    Left(usize, usize),
}

/// The start of a call whose grain weft chooses: the caller runs pieces alone, the first
/// 1/64 of the range and each next one twice the last, until the range is done or
/// `SOLO_NS` have passed (real time: the platforms that take this path have a real
/// clock). When the pace so far says the rest ends within what is left of `SOLO_NS`,
/// the next piece is all the rest: a small range costs two body calls and two clock
/// reads over a serial loop (doubling to the end took seven of each, a clock read being
/// some 25 ns on this virtual machine: 2.2-3.1x a serial map of 10^3 floats, 0.3-0.5
/// us, against the goal's 2x). No worker is woken for it; a large range loses a few
/// microseconds of parallelism, or at most 1/64 of the range when its elements are
/// slow. Deterministic platforms skip it (the split would depend on timing).
fn solo(begin: usize, len: usize, body: RangeFn, ud: *mut c_void) -> Solo {
    let body = may_unwind!(body, fn(usize, usize, *mut c_void) -> i32);
    let started = std::time::Instant::now();
    let (mut at, end, mut piece) = (begin, begin + len, (len / 64).max(1));
    while at < end {
        let e = at + piece.min(end - at);
        // SAFETY: the host's body with its own `ud`, on a sub-range of its range.
        let code = host_call("a weft_parallel_for body", || unsafe { body(at, e, ud) });
        if code != 0 {
            return Solo::Finished(code);
        }
        at = e;
        let spent = started.elapsed().as_nanos() as u64;
        if spent >= SOLO_NS {
            break;
        }
        let (done, left) = ((at - begin) as u64, (end - at) as u64);
        piece = if left.saturating_mul(spent) <= (SOLO_NS - spent).saturating_mul(done) {
            end - at
        } else {
            piece.saturating_mul(2)
        };
    }
    if at == end {
        Solo::Finished(0)
    } else {
        Solo::Left(at, end - at)
    }
}

/// `weft_parallel_for`: the first failing body's code, or 0.
pub(crate) fn parallel_for(
    rt: &'static Runtime,
    begin: usize,
    end: usize,
    grain: usize,
    body: RangeFn,
    ud: *mut c_void,
) -> Result<i32> {
    if begin > end {
        fail!(WEFT_EINVAL, "begin ({begin}) is after end ({end})");
    }
    let len = end - begin;
    if len == 0 {
        return Ok(0);
    }
    let (begin, len) = if grain == 0 && rt.table.caps & WEFT_CAP_DETERMINISTIC == 0 {
        match solo(begin, len, body, ud) {
            Solo::Finished(code) => return Ok(code),
            Solo::Left(begin, len) => (begin, len),
        }
    } else {
        (begin, len)
    };
    let participants = Pool::workers_wanted(rt) + 1;
    let chunks = len.checked_div(grain).map_or(len.min(participants * CHUNKS_PER_PARTICIPANT), |n| n.max(1));
    let job = Arc::new(Job {
        begin,
        len,
        chunks,
        body,
        ud,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        failed: AtomicI32::new(0),
    });
    if chunks == 1 {
        job.work();
        return Ok(job.failed.load(Acquire));
    }
    let pool = rt.pool()?;
    if !pool.start(rt)? {
        // A drain waits: the caller runs every chunk itself.
        job.work();
        return Ok(job.failed.load(Acquire));
    }
    pool.jobs.lock().push_back(Arc::clone(&job));
    pool.announce();
    job.work();
    // Chunks other participants claimed may still run: wait for the last one (each
    // completion moves the epoch, so wait again until the job is done).
    while job.done.load(Acquire) < chunks {
        let seen = pool.epoch.load(SeqCst);
        pool.wait_for(seen, || job.done.load(Acquire) >= chunks);
    }
    pool.jobs.lock().retain(|j| !Arc::ptr_eq(j, &job));
    Ok(job.failed.load(Acquire))
}

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn nothing(_: usize, _: usize, _: *mut c_void) -> i32 {
        0
    }

    fn job(begin: usize, len: usize, chunks: usize) -> Job {
        Job {
            begin,
            len,
            chunks,
            body: nothing,
            ud: std::ptr::null_mut(),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            failed: AtomicI32::new(0),
        }
    }

    #[test]
    fn chunks_cover_the_range_and_respect_the_grain() {
        for (len, grain) in [(10, 4), (1000, 7), (5, 5), (3, 10), (1 << 20, 1000)] {
            let chunks = (len / grain).max(1);
            let j = job(100, len, chunks);
            let mut at = 100;
            for i in 0..chunks {
                let (b, e) = j.chunk(i);
                assert_eq!(b, at);
                assert!(e - b >= grain.min(len), "chunk {i} of {len}/{grain}: {b}..{e}");
                at = e;
            }
            assert_eq!(at, 100 + len);
        }
    }

    #[test]
    fn huge_ranges_do_not_overflow() {
        let j = job(usize::MAX - 10, 10, 3);
        assert_eq!(j.chunk(2).1, usize::MAX);
    }
}
