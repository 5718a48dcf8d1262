//! Semaphores, barriers and once, in host memory, over the parking table: an
//! uncontended operation is one atomic instruction; only a wait parks.
use std::sync::atomic::{
    AtomicPtr, AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release, Ordering::SeqCst,
};

use weft_platform::parking::watch::watch;
use weft_platform::*;

use crate::ffi::error::{fail, Result};
use crate::ffi::handle::{Handle, Lifetime};
use crate::runtime::parking::{Parking, ParkingTable};
use crate::runtime::{context, fork, implicit_runtime, safepoint, Runtime};

const TAG_DESTROYED: u32 = 0xdead_0b1e;

/// A counting semaphore (`weft_sem_t`).
#[repr(C)]
pub(crate) struct Semaphore {
    tag: AtomicU32,
    /// Watches for a post that went unanswered in a row (`weft_platform::parking::watch`).
    unanswered: AtomicU32,
    /// The count (low 32 bits) and the tasks inside a wait (high 32 bits), in one word:
    /// a post learns whether to wake from the value its increment replaced and reads
    /// nothing after it, so the waiter it released may destroy and free the semaphore
    /// at once (`sem_wait(&done); sem_destroy(&done);`, which glibc allows too).
    state: AtomicU64,
    rt: AtomicPtr<Runtime>,
}

const COUNT: u64 = 0xffff_ffff;
const WAITER: u64 = 1 << 32;

const TAG_SEM: u32 = 0x5753_454d;

impl Handle for Semaphore {
    const KIND: &'static str = "semaphore";
    const LIVE: &'static [u32] = &[TAG_SEM];
    const DEAD: u32 = TAG_DESTROYED;
    const DEAD_REASON: &'static str = "was destroyed";
    const LIFETIME: Lifetime = Lifetime::HostMemory;
    const INIT_FN: &'static str = "weft_sem_init";
    fn tag(&self) -> &AtomicU32 {
        &self.tag
    }
}

/// The runtime stored in a live object: stored before its live tag, never freed.
fn runtime_of(rt: &AtomicPtr<Runtime>, kind: &str) -> Result<&'static Runtime> {
    // SAFETY: stored (Release) before the live tag the caller's check read (Acquire);
    // runtimes are never freed.
    let rt = unsafe { &*rt.load(Acquire) };
    if !rt.is_open() {
        fail!(WEFT_EINVAL, "{}", crate::runtime::fork::not_open(rt, format_args!("the runtime of this {kind}")));
    }
    Ok(rt)
}

/// Watches (`weft_platform::parking::watch`) for `answered()` before a park, where the
/// runtime's waiters may (`Runtime::waiters_may_watch`): true if answered. In a
/// blocking region, as the park would be: a stop-the-world does not wait for it.
fn watch_before_parking(rt: &Runtime, history: &AtomicU32, deadline: i64, answered: impl Fn() -> bool) -> bool {
    rt.waiters_may_watch() && safepoint::in_blocking_region(rt, || watch(history, deadline, answered))
}

impl Semaphore {
    /// Makes a semaphore with `value` in host memory.
    ///
    /// # Safety
    /// `ptr` is the host's, non-NULL, aligned and large enough (`weft_sem_t`).
    pub(crate) unsafe fn init(ptr: *mut Semaphore, rt: &'static Runtime, value: u32) {
        // SAFETY: see above.
        unsafe {
            ptr.write(Semaphore {
                tag: AtomicU32::new(0),
                unanswered: AtomicU32::new(0),
                state: AtomicU64::new(value as u64),
                rt: AtomicPtr::new(rt as *const Runtime as *mut Runtime),
            });
            (*ptr).tag.store(TAG_SEM, Release);
        }
    }

    pub(crate) fn destroy(&self) -> Result<()> {
        let waiters = self.state.load(SeqCst) >> 32;
        if waiters != 0 {
            fail!(WEFT_EBUSY, "semaphore {:p} has {waiters} waiter(s)", self);
        }
        self.tag.store(TAG_DESTROYED, Release);
        Ok(())
    }

    fn state_addr(&self) -> usize {
        &self.state as *const AtomicU64 as usize
    }

    /// The semaphore's runtime, if it is still open.
    pub(crate) fn runtime(&self) -> Result<&'static Runtime> {
        runtime_of(&self.rt, "semaphore")
    }

    /// Takes one unit if there is one.
    pub(crate) fn try_take(&self) -> bool {
        self.state.fetch_update(SeqCst, SeqCst, |s| (s & COUNT != 0).then(|| s - 1)).is_ok()
    }

    /// Takes one unit, waiting until there is one or the deadline.
    pub(crate) fn wait(&self, deadline: i64) -> Result<()> {
        let rt = runtime_of(&self.rt, "semaphore")?;
        if self.try_take() {
            return Ok(());
        }
        let table = rt.parking()?;
        // Counted from here until it returns, watching, parked or taking again after a
        // wake-up: a destroy meanwhile is refused. (Uncounted between a wake-up and its
        // next park, a waiter let a destroy through, then parked on the dead semaphore.)
        self.state.fetch_add(WAITER, SeqCst);
        let outcome = self.wait_counted(rt, table, deadline);
        self.state.fetch_sub(WAITER, SeqCst);
        outcome
    }

    fn wait_counted(&self, rt: &'static Runtime, table: &ParkingTable, deadline: i64) -> Result<()> {
        // Once per wait, watch for a post from another CPU before parking: nobody
        // sleeps, and the post's wake-up finds nobody parked (a ping-pong's round trip:
        // see docs/performance.md).
        let mut may_watch = true;
        loop {
            if self.try_take() {
                return Ok(());
            }
            if std::mem::take(&mut may_watch)
                && watch_before_parking(rt, &self.unanswered, deadline, || self.state.load(Relaxed) & COUNT != 0)
            {
                continue;
            }
            match table.park(rt, self.state_addr(), || self.state.load(SeqCst) & COUNT == 0, deadline) {
                Ok(_) => {}
                // A post that raced the deadline: take it rather than report a timeout.
                Err(_) if self.try_take() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Adds one unit and wakes one waiter, if any. Reads nothing of the semaphore after
    /// the increment (the wake-up uses its address only).
    pub(crate) fn post(&self) -> Result<()> {
        let rt = runtime_of(&self.rt, "semaphore")?;
        // Before the unit is added: a wake-up the platform refuses would strand a waiter.
        rt.check_runs_caller()?;
        let addr = self.state_addr();
        let Ok(before) = self.state.fetch_update(SeqCst, SeqCst, |s| (s & COUNT != COUNT).then(|| s + 1)) else {
            fail!(WEFT_EINVAL, "semaphore {:p} is at its maximum value ({})", self, u32::MAX);
        };
        if before >> 32 != 0 {
            rt.parking()?.unpark(rt, addr, 1)?;
        }
        Ok(())
    }

    pub(crate) fn value(&self) -> u32 {
        (self.state.load(SeqCst) & COUNT) as u32
    }
}

/// A barrier (`weft_barrier_t`): `count` tasks meet, over and over.
#[repr(C)]
pub(crate) struct Barrier {
    tag: AtomicU32,
    count: AtomicU32,
    /// The round: tasks arrived at it (low 32 bits) and its generation (high 32 bits),
    /// in one word, so that an arrival, the last one's start of the next round and a
    /// cancelled waiter's taking back of its arrival each change both at once. (Apart,
    /// a waiter taking its arrival back could meet the same count in the next round
    /// and take a newcomer's arrival instead: that round then never completed.)
    round: AtomicU64,
    rt: AtomicPtr<Runtime>,
    /// Tasks inside a wait, from before they arrive until they have left it.
    waiters: AtomicU32,
    /// Watches for a round's end that went unanswered in a row.
    unanswered: AtomicU32,
}

const TAG_BARRIER: u32 = 0x5742_4152;

/// The arrivals in `Barrier::round`; the generation is above them.
const ARRIVED: u64 = 0xffff_ffff;

fn generation_of(round: u64) -> u64 {
    round >> 32
}

impl Handle for Barrier {
    const KIND: &'static str = "barrier";
    const LIVE: &'static [u32] = &[TAG_BARRIER];
    const DEAD: u32 = TAG_DESTROYED;
    const DEAD_REASON: &'static str = "was destroyed";
    const LIFETIME: Lifetime = Lifetime::HostMemory;
    const INIT_FN: &'static str = "weft_barrier_init";
    fn tag(&self) -> &AtomicU32 {
        &self.tag
    }
}

impl Barrier {
    /// Makes a barrier for `count` tasks (at least 1) in host memory.
    ///
    /// # Safety
    /// `ptr` is the host's, non-NULL, aligned and large enough (`weft_barrier_t`).
    pub(crate) unsafe fn init(ptr: *mut Barrier, rt: &'static Runtime, count: u32) {
        // SAFETY: see above.
        unsafe {
            ptr.write(Barrier {
                tag: AtomicU32::new(0),
                count: AtomicU32::new(count),
                round: AtomicU64::new(0),
                rt: AtomicPtr::new(rt as *const Runtime as *mut Runtime),
                waiters: AtomicU32::new(0),
                unanswered: AtomicU32::new(0),
            });
            (*ptr).tag.store(TAG_BARRIER, Release);
        }
    }

    /// Destroys the barrier; `WEFT_EBUSY` while a round that has not completed has
    /// tasks waiting. Tasks a completed round released may still be on their way out
    /// of `wait` (the serial one may destroy the barrier at once, as with
    /// `pthread_barrier_destroy` in glibc and `uv_barrier_destroy`): the destroy lets
    /// them leave first, so that none touches the memory after it.
    pub(crate) fn destroy(&self) -> Result<()> {
        while self.waiters.load(SeqCst) != 0 {
            let arrived = self.round.load(SeqCst) & ARRIVED;
            if arrived != 0 {
                fail!(WEFT_EBUSY, "barrier {:p} has {arrived} task(s) waiting at it", self);
            }
            runtime_of(&self.rt, "barrier")?.yield_now()?;
        }
        self.tag.store(TAG_DESTROYED, Release);
        Ok(())
    }

    /// Waits until `count` tasks have arrived; true for exactly one of them per round
    /// (the serial one, the last to arrive). A cancelled waiter leaves the round (its
    /// arrival is taken back) unless the round completed first.
    pub(crate) fn wait(&self) -> Result<bool> {
        let rt = runtime_of(&self.rt, "barrier")?;
        // Before it arrives: the last arrival's wake-up, if refused, would strand the round.
        rt.check_runs_caller()?;
        // Counted before it arrives: a destroy that saw the round complete must also
        // see every task of it that has not left.
        self.waiters.fetch_add(1, SeqCst);
        let outcome = self.arrive_and_wait(rt);
        self.waiters.fetch_sub(1, SeqCst);
        outcome
    }

    fn arrive_and_wait(&self, rt: &'static Runtime) -> Result<bool> {
        // The table first: a failure to make it must come before the arrival counts.
        let table = rt.parking()?;
        let count = self.count.load(SeqCst) as u64;
        let addr = &self.round as *const AtomicU64 as usize;
        // Arrive; the last arrival starts the next round in the same swap.
        let completes = |r: u64| (r & ARRIVED) + 1 >= count;
        let before = self
            .round
            .fetch_update(SeqCst, SeqCst, |r| Some(if completes(r) { (generation_of(r) + 1) << 32 } else { r + 1 }))
            .unwrap_or_else(|r| r);
        let generation = generation_of(before);
        if completes(before) {
            table.unpark(rt, addr, usize::MAX)?;
            return Ok(true);
        }
        let round_over = || generation_of(self.round.load(SeqCst)) != generation;
        // The last arrival on another CPU often comes within microseconds.
        if watch_before_parking(rt, &self.unanswered, WEFT_FOREVER, round_over) {
            return Ok(false);
        }
        loop {
            match table.park(rt, addr, || !round_over(), WEFT_FOREVER) {
                Ok(Parking::Invalid) => break Ok(false),
                Ok(Parking::Woken) if round_over() => break Ok(false),
                Ok(Parking::Woken) => {}
                Err(e) => {
                    // Take the arrival back, unless the round completed meanwhile (its
                    // generation moved on, in the same swap as its last arrival).
                    let taken = self
                        .round
                        .fetch_update(SeqCst, SeqCst, |r| {
                            (generation_of(r) == generation && r & ARRIVED > 0).then(|| r - 1)
                        })
                        .is_ok();
                    break if taken { Err(e) } else { Ok(false) };
                }
            }
        }
    }
}

/// Once (`weft_once_t`): `NEW` until the first call runs its function, `RUNNING` while
/// it does, `DONE` after.
#[repr(C)]
pub(crate) struct Once {
    /// The state (low 32 bits) and, while `RUNNING`, the fork generation of the
    /// process whose thread runs the function (high 32 bits, `fork::generation`): a
    /// child of `fork()` does not have that thread, and runs the function itself, as
    /// glibc's `pthread_once` does (the child waited for ever before).
    word: AtomicU64,
    /// The context running the function (so a call from inside it is `WEFT_EDEADLK`),
    /// and `SCHEDULED` if it runs on a deterministic platform's scheduler.
    runner: AtomicU64,
}

/// `Once::runner`'s top bit: the runner is a mutator of a deterministic runtime, so its
/// wake-up reaches the waiters parked on that platform's one scheduler (no context id
/// comes near it).
const SCHEDULED: u64 = 1 << 63;

const NEW: u32 = 0;
const RUNNING: u32 = 1;
const DONE: u32 = 2;

impl Once {
    /// Runs `f` if nobody has; waits for it if someone is running it.
    pub(crate) fn call(&self, f: impl FnOnce()) -> Result<()> {
        let me = context::current().id;
        loop {
            let word = self.word.load(SeqCst);
            match word as u32 {
                DONE => return Ok(()),
                NEW => {}
                // Its runner is in the parent of this process.
                RUNNING if (word >> 32) as u32 != fork::generation() => {}
                RUNNING if self.runner.load(SeqCst) & !SCHEDULED == me => {
                    fail!(WEFT_EDEADLK, "once {:p}: its function called weft_once on it again", self)
                }
                RUNNING => {
                    self.wait_done(word)?;
                    continue;
                }
                other => fail!(WEFT_EINVAL, "{:p} is not a weft_once_t (state {other}; use WEFT_ONCE_INIT)", self),
            }
            // The fork handlers first: a fork once this one runs must be told apart.
            fork::install_handlers();
            let running = RUNNING as u64 | (fork::generation() as u64) << 32;
            if self.word.compare_exchange(word, running, SeqCst, SeqCst).is_err() {
                continue;
            }
            let scheduled = safepoint::caller_runtime().is_some_and(|rt| rt.table.caps & WEFT_CAP_DETERMINISTIC != 0);
            self.runner.store(me | if scheduled { SCHEDULED } else { 0 }, SeqCst);
            f();
            self.runner.store(0, SeqCst);
            self.word.store(DONE as u64, SeqCst);
            if let Some(rt) = implicit_runtime() {
                if let Ok(table) = rt.parking() {
                    table.unpark(rt, self.addr(), usize::MAX)?;
                }
            }
            return Ok(());
        }
    }

    fn addr(&self) -> usize {
        &self.word as *const AtomicU64 as usize
    }

    /// Waits while the word stays `running` (the runner is done, or this process is a
    /// child of a fork since): parked on the caller's runtime if it has one
    /// (re-checking now and then: the runner wakes the parked of its own runtime),
    /// else yielding the thread.
    fn wait_done(&self, running: u64) -> Result<()> {
        // Not a cancellation point: the function will finish. Masked, a cancelled
        // caller parks like any other (unmasked, each park returned at once, and the
        // caller spun: on green it kept its worker, on sim virtual time stood still, and
        // a runner asleep on either never got to finish).
        let _mask = context::current_if_any().map(|c| safepoint::CancelMask::new(&c.mutator));
        let still = || self.word.load(SeqCst) == running && (running >> 32) as u32 == fork::generation();
        while still() {
            match implicit_runtime() {
                Some(rt) => {
                    // On a deterministic platform every runtime shares one scheduler,
                    // whose parking the unpark of a runner it runs reaches: no slice,
                    // which kept a deadline pending for ever, so a real deadlock in the
                    // function ran to the step limit instead of the deadlock report. A
                    // runner elsewhere (a host thread, a task of another platform) wakes
                    // nobody there: look again every (virtual) millisecond.
                    let scheduled = self.runner.load(SeqCst) & SCHEDULED != 0;
                    let slice = if rt.table.caps & WEFT_CAP_DETERMINISTIC != 0 && scheduled {
                        WEFT_FOREVER
                    } else {
                        rt.deadline_after(1_000_000)
                    };
                    if rt.parking()?.park(rt, self.addr(), still, slice).is_err() {
                        // Refused (a closed runtime): look again after a yield.
                        std::thread::yield_now();
                    }
                }
                None => std::thread::yield_now(),
            }
        }
        Ok(())
    }
}
