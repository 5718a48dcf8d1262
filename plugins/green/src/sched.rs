//! The M:N scheduler: green tasks (corosensei coroutines) on worker threads.
//!
//! A runtime has `workers` processors (Go's Ps): each a local run queue (a
//! crossbeam-deque FIFO that the others steal from) and a LIFO slot for the task woken
//! last, which runs next (a hand-off between two tasks stays on one worker, warm in its
//! cache). A global injector takes tasks made runnable by threads without a processor.
//! A worker thread (an M) runs a processor; an idle one parks, and whoever makes work
//! runnable wakes one. Timers (deadlines of parked tasks) are one ordered map per
//! runtime; workers fire them between tasks and sleep until the earliest.
//!
//! Once the runtime waits on a file descriptor, the workers are its netpoller too
//! (`io.rs`, Go's `findrunnable`): a worker that finds no task polls the epoll set
//! without blocking, one idle worker sleeps in `epoll_wait` instead of parking (the
//! others park), and a busy worker polls every 61st turn; the tasks a poll wakes go to
//! the polling worker's own run queue. The monitor polls when no worker has for 10 ms.
//!
//! A task that enters a host's own blocking region (`region_enter`) gives its
//! processor to another thread (a spare, or a new one), so that the other tasks keep
//! running on `workers` processors while this thread blocks in the host's call; when
//! it leaves the region it takes a free processor or queues itself on the injector and
//! its thread becomes a spare (Go's syscall hand-off).
//!
//! Which weft context runs follows the task: the worker saves the task's context when
//! it switches the task out and installs it when it switches it in (host ABI 2
//! `context_get`/`context_set`). The thread-local the scheduler reads (`here`) is read
//! by an `asm!` block each time, which the compiler never caches across a switch.
use std::cell::{Cell, UnsafeCell};
use std::collections::BTreeMap;
use std::ffi::{c_void, CString};
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering, Ordering::Acquire,
    Ordering::Relaxed, Ordering::Release, Ordering::SeqCst,
};
use std::sync::Arc;
use std::thread::Thread;

use corosensei::{Coroutine, CoroutineResult, Yielder};
use crossbeam_deque::{Injector, Steal, Stealer, Worker as Deque};
use weft_platform::fork_lock::ForkMutex;
use weft_platform::os_thread::{self, OsThread};
use weft_platform::*;

use crate::clock;
use crate::io::{self, Poller};
use crate::stack::{self, Stack};
use crate::HOST;

/// Why a task's coroutine gave its worker back.
pub(crate) enum Suspend {
    /// Runnable again at once, behind the others.
    Yield,
    /// Preempted at a safepoint poll (the monitor asked): as a yield, and the worker's
    /// next pick looks at the injector first.
    Preempted,
    /// A back-off's yield: runnable again once one other task of this worker has run,
    /// and meanwhile on this worker only (see `yield_to_partner`).
    YieldToPartner,
    /// Waiting in `wait::park`; runnable when woken.
    Park,
    /// Left a blocking region on a thread without a processor: run me on one.
    Rejoin,
}

type Coro = Coroutine<(), Suspend, (), Stack>;

const RUNNING: u8 = 0;
const PARKED: u8 = 1;
const NOTIFIED: u8 = 2;
const DONE: u8 = 3;

/// A green task.
pub(crate) struct Task {
    pub(crate) sched: Arc<Sched>,
    /// RUNNING (queued or running), PARKED, NOTIFIED (woken while still running: the
    /// park it is entering returns at once), DONE.
    state: AtomicU8,
    /// Touched only by the thread that runs the task (one at a time, by the protocol
    /// of `state` and the run queues).
    coro: UnsafeCell<Option<Coro>>,
    /// Until the task first runs: the stack promised to it and the runtime's context
    /// for it. The worker that first runs the task takes the stack (the one given back
    /// last: warm) and makes the coroutine on it, so that the spawning thread touches
    /// no stack memory (a spawn wrote the coroutine's first frame, and the worker read
    /// it from the other CPU's cache: a third of a spawn's time). Touched as `coro` is.
    unstarted: UnsafeCell<Option<(stack::Reservation, SendPtr)>>,
    yielder: Cell<*const Yielder<(), Suspend>>,
    /// The task's weft context while it is switched out.
    saved_ctx: Cell<*mut c_void>,
    /// `task_run` returned.
    pub(crate) done: AtomicBool,
    /// A joiner may park on `done_key` (set before it looks at `done` for the last
    /// time): the end of the task then wakes the key. Most tasks are joined after they
    /// ended, and their end skips the parking table.
    pub(crate) awaited: AtomicBool,
    /// Set, under the parking bucket's lock, by the waker that takes the task's entry
    /// off a parking queue (`wait.rs`: a task waits on one key at a time). Here, not on
    /// the waiting task's stack, because the waker touches the task anyway.
    pub(crate) park_woken: AtomicBool,
    id: u64,
    name: Option<CString>,
    /// The task's stack size and the guard region below it, once it has one (it ran).
    stack_size: Cell<usize>,
    guard: Cell<(usize, usize)>,
    /// Inside a host's blocking region (`region_enter` .. `region_leave`). Touched as
    /// `coro` is.
    in_region: Cell<bool>,
}

// SAFETY: the cells are only touched by the one thread that runs the task at a time
// (handed over through the run queues, which synchronise); the rest is atomic or
// immutable.
unsafe impl Send for Task {}
unsafe impl Sync for Task {}

impl Task {
    /// The address joiners park on.
    pub(crate) fn done_key(&self) -> usize {
        &self.done as *const AtomicBool as usize
    }

    /// The address the task sleeps on: its own.
    pub(crate) fn sleep_key(&self) -> usize {
        &self.saved_ctx as *const Cell<*mut c_void> as usize
    }
}

/// One processor: a run queue that only its owning thread pushes to and pops from.
struct Proc {
    index: usize,
    /// Counts the tasks this processor started running (the preemption monitor sees a
    /// task overrun its slice when the count stands still while a task runs).
    switches: AtomicU64,
    /// Who may touch the run queues: FREE (the holder, between tasks), TASK (a task
    /// runs; its code takes the queues with TASK -> QUEUING -> TASK), QUEUING, or
    /// RETAKEN (the monitor or a blocking region took the processor from the thread
    /// while the task ran; the thread finds out when it next looks and lets go). Above
    /// the state, the hold: how many times the processor was retaken (see `impl Proc`).
    guard: AtomicU64,
    /// The `switches` value of the run asked to yield at its next poll; 0 if none.
    preempt: AtomicU64,
    local: Deque<Arc<Task>>,
    lifo: Cell<Option<Arc<Task>>>,
    /// A task that yielded in a back-off (`yield_to_partner`), to run after the next
    /// task this worker runs; like the LIFO slot, not stealable.
    after_next: Cell<Option<Arc<Task>>>,
    tick: Cell<u32>,
    lifo_streak: Cell<u32>,
    /// The last task run here was preempted: the next pick looks at the injector first,
    /// so that the preempted task goes behind the tasks queued from outside the workers
    /// too, not only behind this worker's own (straight back from the local queue, a
    /// polling spinner held a task spawned by a host thread off for some 60 preemptions,
    /// 250 ms).
    preempted: Cell<bool>,
}

// SAFETY: a processor is used by one thread at a time: the thread that holds it (the
// hand-off passes it through `free_procs`, under a lock).
unsafe impl Sync for Proc {}

/// A runtime's scheduler; `*mut weft_plat_rt_t` is a `*mut Arc<Sched>`.
pub(crate) struct Sched {
    procs: Vec<Proc>,
    stealers: Vec<Stealer<Arc<Task>>>,
    injector: Injector<Arc<Task>>,
    /// Processors no thread holds (handed off by a task in a blocking region).
    free_procs: ForkMutex<Vec<usize>>,
    /// Threads holding a processor, parked for want of work; true for the one asleep in
    /// `epoll_wait` (woken through the poller, not `unpark`).
    idle: ForkMutex<Vec<(Thread, bool)>>,
    n_idle: AtomicUsize,
    /// Workers looking for work without having found any yet: one that `notify` woke,
    /// or one that spins a while before it sleeps (Go's spinning Ms). While there is
    /// one, `notify` wakes nobody: the spinner finds the work queued, so a burst of
    /// spawns costs one wake-up, not one each. A spinner that finds work and sees more
    /// wakes the next worker, which spins in turn.
    spinning: AtomicUsize,
    /// Threads without a processor, parked until one is free.
    spares: ForkMutex<Vec<Thread>>,
    timers: ForkMutex<BTreeMap<(i64, u64), Arc<Task>>>,
    /// The earliest timer's deadline; `WEFT_FOREVER` if none.
    next_timer: AtomicI64,
    /// Set when `next_timer` moved earlier and no idle worker has looked at it since: a
    /// spinner that took the wake-up for it, and found a task instead, passes it on.
    timer_moved: AtomicBool,
    timer_seq: AtomicU64,
    shutdown: AtomicBool,
    threads: ForkMutex<Vec<OsThread>>,
    /// The runtime's safepoint poll word (`preempt_attach`); NULL until attached.
    poll_word: AtomicPtr<AtomicU32>,
    monitor: ForkMutex<Option<Thread>>,
    /// The epoll set, made by the runtime's first IO wait (a runtime that never waits
    /// on an fd has no epoll descriptor).
    poller: std::sync::OnceLock<Poller>,
    making_poller: ForkMutex<()>,
    /// Tasks whose last reference was the runtime's handle, kept for the next spawns
    /// (a spawn then allocates nothing); emptied at close (each holds the scheduler).
    spare_tasks: ForkMutex<Vec<Arc<Task>>>,
    /// How long a task may keep its processor without a switch before the monitor
    /// hands the processor on (`retake_ns`).
    retake_ns: i64,
}

/// Spare tasks kept per runtime.
const SPARE_TASKS: usize = 16384;

const FREE: u64 = 0;
const TASK: u64 = 1;
const QUEUING: u64 = 2;
const RETAKEN: u64 = 3;
/// Another worker (or the monitor) takes the tasks waiting in the LIFO slot of a
/// processor whose task has run for a while (`take_waiting`); back to TASK at once.
const STEALING: u64 = 4;
/// The bits of a guard word that hold its state; the hold is above them.
const STATE_MASK: u64 = 7;

/// A guard word: `state` at `hold`.
const fn guard_word(hold: u64, state: u64) -> u64 {
    hold << 3 | state
}

/// The hold of a guard word.
const fn hold_of(word: u64) -> u64 {
    word >> 3
}

/// A processor's guard word is its state and its hold: a retake moves the hold on. The
/// thread holding the processor keeps the hold it took it at (`Here::hold`) and compares
/// whole words, so a thread whose processor was retaken never mistakes the next
/// holder's TASK for its own. (With the state alone it did: a compute-bound task's
/// thread, back in weft while the new holder ran a task, took the processor back, and
/// two threads ran one run queue.)
impl Proc {
    /// Takes a processor no thread holds (a new one, or one a retake freed) in `state`;
    /// returns the hold to keep.
    fn take(&self, state: u64) -> u64 {
        let hold = hold_of(self.guard.load(SeqCst));
        self.guard.store(guard_word(hold, state), SeqCst);
        hold
    }

    /// The holder moves its guard from `from` to `to`; false if the processor was
    /// retaken (it then belongs to another thread, or to none yet).
    fn shift(&self, hold: u64, from: u64, to: u64, success: Ordering) -> bool {
        self.move_guard(guard_word(hold, from), guard_word(hold, to), success)
    }

    /// The holder, or the monitor, takes the processor from the thread whose task runs
    /// at `hold`; false if it was not running a task at that hold any more.
    fn retake(&self, hold: u64) -> bool {
        self.move_guard(guard_word(hold, TASK), guard_word(hold.wrapping_add(1), RETAKEN), SeqCst)
    }

    /// Moves the guard from `from` to `to`, waiting out a thief that holds it at the
    /// same hold (`take_waiting` holds it for a few instructions).
    fn move_guard(&self, from: u64, to: u64, success: Ordering) -> bool {
        let stealing = (from & !STATE_MASK) | STEALING;
        loop {
            match self.guard.compare_exchange(from, to, success, Relaxed) {
                Ok(_) => return true,
                Err(now) if now == stealing => std::hint::spin_loop(),
                Err(_) => return false,
            }
        }
    }

    /// Takes the tasks waiting in the LIFO slot and behind the next task (a back-off's
    /// yielder), out of the reach of thieves while the processor's task runs, if that
    /// task still runs at `guard` (a TASK word read before). Called by an idle worker
    /// or the monitor, once the task has run for a while: a task that woke another and
    /// went on computing (a producer that sends and does not wait) kept it from every
    /// idle worker until it waited itself. The holder touches both slots only between
    /// tasks or while QUEUING, never in TASK without moving the guard first.
    fn take_waiting(&self, guard: u64) -> [Option<Arc<Task>>; 2] {
        let stealing = (guard & !STATE_MASK) | STEALING;
        if guard & STATE_MASK != TASK || self.guard.compare_exchange(guard, stealing, Acquire, Relaxed).is_err() {
            return [None, None];
        }
        let taken = [self.lifo.take(), self.after_next.take()];
        self.guard.store(guard, Release);
        taken
    }
}

/// A task that runs this long without polling after being asked to yield loses its
/// processor: the thread keeps running it, another thread takes the processor (as for
/// a blocking region), so that the other tasks do not starve. `$WEFT_GREEN_RETAKE_MS`
/// sets it (0: never; read when a runtime opens).
const RETAKE_NS: i64 = 3 * SLICE_NS;

/// `RETAKE_NS`, or what `$WEFT_GREEN_RETAKE_MS` asks (0: never).
pub(crate) fn retake_ns() -> Result<i64, String> {
    let Ok(text) = std::env::var("WEFT_GREEN_RETAKE_MS") else { return Ok(RETAKE_NS) };
    match text.trim().parse::<u64>() {
        Ok(0) => Ok(i64::MAX),
        Ok(ms) => Ok(i64::try_from(ms).unwrap_or(i64::MAX).saturating_mul(1_000_000)),
        Err(_) => Err(format!("$WEFT_GREEN_RETAKE_MS is not a number of milliseconds: {text:?}")),
    }
}

/// A task that runs this long without switching is asked to yield at its next poll.
const SLICE_NS: i64 = 10_000_000;
/// ... or this long, while other tasks wait in a run queue: a task woken behind a
/// polling loop runs within a few milliseconds, not a whole slice per task queued
/// before it (on an oversubscribed scheduler, a channel hand-off waited 10 ms per busy
/// task). Two monitor ticks, so the cost is one switch per 2-4 ms of the loop.
const SHORT_SLICE_NS: i64 = 2_000_000;
/// How long a worker that runs out of work spins, looking for more, before it sleeps
/// (one worker at a time: see `Sched::spinning`). A spawn every few microseconds then
/// finds it awake.
const SPIN_NS: i64 = 20_000;
/// Pause instructions between two looks of a spinning worker at the run queues.
const SPIN_PAUSES: u32 = 64;
/// How long a task waits in the LIFO slot of a processor whose task runs on, before a
/// spinning worker takes it (Go waits 3 us before it steals a runnext).
const WAITING_GRACE_NS: i64 = 5_000;
/// How often the monitor looks.
const MONITOR_TICK: std::time::Duration = std::time::Duration::from_millis(2);
/// The monitor polls the network when no worker has for this long (Go's sysmon: 10 ms).
const NETPOLL_BACKSTOP_NS: i64 = 10_000_000;

/// Which processor (and scheduler) the calling thread holds, at which hold (see
/// `Proc::take`), and which task it runs.
#[derive(Clone, Copy)]
struct Here {
    sched: *const Sched,
    proc: *const Proc,
    hold: u64,
    task: *const Task,
}

impl Here {
    const NONE: Here = Here { sched: std::ptr::null(), proc: std::ptr::null(), hold: 0, task: std::ptr::null() };
}

weft_platform::tls_slot!(
    /// The calling thread's `Here`, a word per field: initial-exec TLS, two instructions
    /// a word where a `thread_local!` here (general-dynamic, in a shared object) was a
    /// call to `__tls_get_addr` each time, about a fifth of a yield between two tasks.
    mod here_slot: 4 words in weft_green_here
);

const HERE_SCHED: usize = 0;
const HERE_PROC: usize = 1;
const HERE_HOLD: usize = 2;
const HERE_TASK: usize = 3;

/// The running task, a word of `here()`.
#[inline(always)]
fn here_task() -> *const Task {
    here_slot::read::<HERE_TASK>() as *const Task
}

#[inline(always)]
fn here() -> Here {
    Here {
        sched: here_slot::read::<HERE_SCHED>() as *const Sched,
        proc: here_slot::read::<HERE_PROC>() as *const Proc,
        hold: here_slot::read::<HERE_HOLD>() as u64,
        task: here_task(),
    }
}

#[inline(always)]
fn set_here(h: Here) {
    here_slot::write::<HERE_SCHED>(h.sched as usize);
    here_slot::write::<HERE_PROC>(h.proc as usize);
    here_slot::write::<HERE_HOLD>(h.hold as usize);
    here_slot::write::<HERE_TASK>(h.task as usize);
}

/// For the SIGSEGV handler: what it reports about the task running on this thread.
/// Async-signal-safe: one read of this thread's slot (initial-exec TLS: no call), and of
/// fields of the running task that never change.
pub(crate) fn running_for_fault() -> Option<stack::Running> {
    let task = here_task();
    // SAFETY: the worker holds a reference on the task it runs.
    let task = unsafe { task.as_ref() }?;
    Some(stack::Running {
        guard_low: task.guard.get().0,
        guard_high: task.guard.get().1,
        size: task.stack_size.get(),
        id: task.id,
        name: task.name.as_ref().map_or(std::ptr::null(), |n| n.as_ptr()),
    })
}

/// The green task running on the calling thread, if it is one.
#[inline(never)]
pub(crate) fn current_task() -> Option<Arc<Task>> {
    let task = here_task();
    if task.is_null() {
        return None;
    }
    // SAFETY: the worker holds a reference on the task it runs for as long as `task`
    // points to it.
    unsafe {
        Arc::increment_strong_count(task);
        Some(Arc::from_raw(task))
    }
}

/// True on a green task (of any green runtime).
pub(crate) fn on_task() -> bool {
    !here_task().is_null()
}

fn suspend(why: Suspend) {
    let task = here_task();
    debug_assert!(!task.is_null());
    // SAFETY: the worker running the task holds a reference on it.
    let task = unsafe { &*task };
    // SAFETY: the running task's yielder lives at the base of its own stack.
    let yielder = unsafe { &*task.yielder.get() };
    yielder.suspend(why);
    // A task that waits inside a host's blocking region runs on a thread without a
    // processor; the worker that resumes it holds one. It hands that processor on
    // again at once: the host's own blocking call may still follow in the region, and
    // would block the processor's other tasks until the monitor retook it (30 ms).
    if task.in_region.get() {
        task.sched.hand_off_own();
    }
}

/// Suspends the calling task until `wake` (see `wait::park`). May return spuriously.
pub(crate) fn suspend_park() {
    suspend(Suspend::Park);
}

/// The calling task goes behind the other runnable tasks.
pub(crate) fn yield_now() {
    if on_task() {
        suspend(Suspend::Yield);
    } else {
        std::thread::yield_now();
    }
}

/// A back-off's yield (a channel waiter's, before it parks): the tasks queued on this
/// worker run first (the partner that may complete the caller's operation is often one
/// of them, the task it has just woken), as with `yield_now`. But where one task only
/// waits here, the caller stays off the run queue until it has run: queued there, it
/// was stolen by an idle worker, and the two partners, now on two workers, handed
/// every message from one CPU to the other (about 1 us a message where a cache line
/// takes 500 ns to cross, against 300 ns on one worker). With no other task here it
/// runs on at once (its worker takes it straight back): the partner runs elsewhere, or
/// is parked.
pub(crate) fn yield_to_partner() {
    if on_task() {
        suspend(Suspend::YieldToPartner);
    } else {
        std::thread::yield_now();
    }
}

/// Makes a parked task runnable (a task not parked yet returns from its next park at
/// once; a spurious wake-up is harmless, every waiter looks again).
pub(crate) fn wake(task: &Arc<Task>) {
    wake_to(task, true)
}

/// `wake`, the task queued behind the worker's others (`run_next` false) or run next
/// (the LIFO slot).
pub(crate) fn wake_to(task: &Arc<Task>, run_next: bool) {
    let mut state = task.state.load(SeqCst);
    loop {
        let next = match state {
            PARKED => RUNNING,
            RUNNING => NOTIFIED,
            _ => return,
        };
        match task.state.compare_exchange(state, next, SeqCst, SeqCst) {
            Ok(_) if state == PARKED => return task.sched.submit(Arc::clone(task), run_next),
            Ok(_) => return,
            Err(now) => state = now,
        }
    }
}

struct SendPtr(*mut c_void);
// SAFETY: the runtime's task context is made to be handed to the task.
unsafe impl Send for SendPtr {}

impl Sched {
    pub(crate) fn open(workers: usize, retake_ns: i64) -> Result<Arc<Sched>, String> {
        let deques: Vec<Deque<Arc<Task>>> = (0..workers).map(|_| Deque::new_fifo()).collect();
        let stealers = deques.iter().map(|d| d.stealer()).collect();
        let procs = deques
            .into_iter()
            .enumerate()
            .map(|(index, local)| Proc {
                index,
                switches: AtomicU64::new(0),
                guard: AtomicU64::new(FREE),
                preempt: AtomicU64::new(0),
                local,
                lifo: Cell::new(None),
                after_next: Cell::new(None),
                tick: Cell::new(0),
                lifo_streak: Cell::new(0),
                preempted: Cell::new(false),
            })
            .collect();
        let sched = Arc::new(Sched {
            procs,
            stealers,
            injector: Injector::new(),
            free_procs: ForkMutex::new(Vec::new()),
            idle: ForkMutex::new(Vec::new()),
            n_idle: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
            spares: ForkMutex::new(Vec::new()),
            timers: ForkMutex::new(BTreeMap::new()),
            next_timer: AtomicI64::new(WEFT_FOREVER),
            timer_moved: AtomicBool::new(false),
            timer_seq: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            threads: ForkMutex::new(Vec::new()),
            poll_word: AtomicPtr::new(std::ptr::null_mut()),
            monitor: ForkMutex::new(None),
            poller: std::sync::OnceLock::new(),
            making_poller: ForkMutex::new(()),
            spare_tasks: ForkMutex::new(Vec::new()),
            retake_ns,
        });
        stack::install_handler();
        for index in 0..workers {
            if let Err(e) = sched.start_thread(Some(index)) {
                sched.close();
                return Err(e);
            }
        }
        Ok(sched)
    }

    fn start_thread(self: &Arc<Sched>, proc: Option<usize>) -> Result<(), String> {
        let sched = Arc::clone(self);
        let options = os_thread::Options { name: Some("weft-green"), ..Default::default() };
        let handle = os_thread::spawn(&options, move || sched.thread_main(proc)).map_err(|errno| {
            format!("cannot start a worker thread: pthread_create: {}", std::io::Error::from_raw_os_error(errno))
        })?;
        self.threads.lock().push(handle);
        Ok(())
    }

    /// Stops the worker threads (no task is left) and waits for them.
    pub(crate) fn close(&self) {
        self.shutdown.store(true, SeqCst);
        loop {
            if let Some(m) = self.monitor.lock().as_ref() {
                m.unpark();
            }
            for (t, in_epoll) in self.idle.lock().iter() {
                self.wake_idle(t, *in_epoll);
            }
            for t in self.spares.lock().iter() {
                t.unpark();
            }
            let handles: Vec<_> = std::mem::take(&mut *self.threads.lock());
            if handles.is_empty() {
                break;
            }
            handles.into_iter().for_each(OsThread::join);
        }
        self.timers.lock().clear();
        // Under its lock after `shutdown` was set: `release` keeps no task from here on.
        self.spare_tasks.lock().clear();
        // No worker is left to trim the stacks its tasks gave back.
        stack::trim_unused(true);
    }

    /// Starts a task whose coroutine calls `task_run(ctx)`.
    pub(crate) fn spawn(
        self: &Arc<Sched>,
        ctx: *mut c_void,
        stack_size: usize,
        name: Option<CString>,
        id: u64,
    ) -> Result<Arc<Task>, weft_status_t> {
        let Some(stack) = stack::reserve(stack_size) else {
            return Err(HOST.fail(WEFT_ENOMEM, &format!("cannot map a task stack of {stack_size} bytes")));
        };
        let fresh = Task {
            sched: Arc::clone(self),
            state: AtomicU8::new(RUNNING),
            coro: UnsafeCell::new(None),
            unstarted: UnsafeCell::new(Some((stack, SendPtr(ctx)))),
            yielder: Cell::new(std::ptr::null()),
            saved_ctx: Cell::new(std::ptr::null_mut()),
            done: AtomicBool::new(false),
            awaited: AtomicBool::new(false),
            park_woken: AtomicBool::new(false),
            id,
            name,
            stack_size: Cell::new(0),
            guard: Cell::new((0, 0)),
            in_region: Cell::new(false),
        };
        let spare = self.spare_tasks.lock().pop();
        let task = match spare {
            Some(mut task) => {
                *Arc::get_mut(&mut task).expect("a spare task is unshared") = fresh;
                task
            }
            None => Arc::new(fresh),
        };
        self.submit(Arc::clone(&task), true);
        Ok(task)
    }

    /// The runtime gives up its handle on `task`: the last reference, as a rule (the
    /// task has ended and been joined), which is then kept for a next spawn.
    pub(crate) fn release(&self, mut task: Arc<Task>) {
        if Arc::get_mut(&mut task).is_none() {
            return;
        }
        let mut spare = self.spare_tasks.lock();
        // After the close emptied the spares, one kept would hold the scheduler for
        // ever (a handle freed after `weft_runtime_close`): let it go.
        if spare.len() < SPARE_TASKS && !self.shutdown.load(SeqCst) {
            spare.push(task);
        }
    }

    /// The coroutine of a task about to run for the first time: it calls
    /// `task_run(ctx)` on the task's stack.
    fn coroutine(task: &Task, stack: Stack, ctx: SendPtr) -> Coro {
        let me = task as *const Task as usize;
        Coro::with_stack(stack, move |yielder: &Yielder<(), Suspend>, ()| {
            let ctx = ctx;
            // SAFETY: the worker running the coroutine holds a reference on the task.
            let task = unsafe { &*(me as *const Task) };
            task.yielder.set(yielder);
            // SAFETY: `ctx` is the runtime's context for this spawn, run exactly once.
            unsafe { HOST.task_run(ctx.0) };
        })
    }

    /// Queues a runnable task: on the calling thread's processor if it holds one of this
    /// scheduler (in the LIFO slot if `next`), else on the injector.
    fn submit(&self, task: Arc<Task>, next: bool) {
        let mut h = here();
        // A task of another runtime (this one's task spawns or wakes a task of a
        // runtime of its own) leaves its processor alone: its guard, moved here, would
        // never be moved back, and its worker would lose it.
        let mine = std::ptr::eq(h.sched, self);
        // SAFETY: the thread holds (or held: see `guard`) the processor.
        let on_task = mine && !h.task.is_null() && !h.proc.is_null();
        if on_task && !unsafe { &*h.proc }.shift(h.hold, TASK, QUEUING, Acquire) {
            // Retaken meanwhile: another thread owns the queues now.
            h.proc = std::ptr::null();
            set_here(h);
        }
        if mine && !h.proc.is_null() {
            // SAFETY: the calling thread holds the processor.
            let p = unsafe { &*h.proc };
            if next {
                if let Some(old) = p.lifo.replace(Some(task)) {
                    p.local.push(old);
                }
            } else {
                p.local.push(task);
            }
            // Another worker is worth waking when the queue holds work beyond what this
            // worker is about to run anyway: a task requeued behind others (a yield)
            // alone is not.
            let more = p.local.len() >= if next { 1 } else { 2 };
            if on_task {
                p.guard.store(guard_word(h.hold, TASK), Release);
            }
            if more {
                self.notify();
            } else if next && self.n_idle.load(Relaxed) != 0 && self.spinning.load(Relaxed) == 0 {
                // Nor is a task woken into the LIFO slot alone, if its waker waits at once
                // (a ping-pong): it runs here next. But the waker may go on running, so
                // a worker comes to look (Go's `wakep` at every `ready`), and takes the
                // task once it has waited `WAITING_GRACE_NS` (`steal_waiting`). Looked at
                // without `notify`'s fence first: a wake-up missed here is no lost
                // wake-up (the task runs here in the end, or the monitor moves it).
                self.notify();
            }
        } else {
            self.injector.push(task);
            self.notify();
        }
    }

    /// Requeues a task that yielded to its partner (`yield_to_partner`): behind the one
    /// task this worker has waiting, but out of the thieves' reach; behind several as a
    /// plain yield (work to share); on at once if there is none.
    fn set_aside(&self, task: Arc<Task>) {
        let h = here();
        if !std::ptr::eq(h.sched, self) || h.proc.is_null() {
            // Lost its processor while it ran (retaken): a plain yield.
            return self.submit(task, false);
        }
        // SAFETY: the calling worker holds the processor, between two tasks.
        let p = unsafe { &*h.proc };
        let waiting = p.lifo.take();
        let others = usize::from(waiting.is_some()) + p.local.len();
        p.lifo.set(waiting);
        match others {
            // From the LIFO slot, which is empty.
            0 => p.lifo.set(Some(task)),
            // Empty: `find_task` takes it before every run.
            1 => p.after_next.set(Some(task)),
            _ => self.submit(task, false),
        }
    }

    /// Wakes an idle worker, if any and if no worker is looking for work already; the
    /// one woken counts as spinning until it finds work or sleeps again.
    ///
    /// Whoever queues work calls this after the push, and a spinner that gives up
    /// leaves `spinning` before it looks at the queues a last time (`idle_sleep`): with
    /// both orders sequentially consistent, either this sees the spinner, which then
    /// sees the work, or the spinner has left and this wakes someone.
    ///
    /// False if it left the wake-up to a worker that spins.
    fn notify(&self) -> bool {
        weft_platform::fence::full();
        if self.n_idle.load(SeqCst) == 0 {
            return true;
        }
        if self.spinning.load(SeqCst) != 0 || self.spinning.compare_exchange(0, 1, SeqCst, SeqCst).is_err() {
            return false;
        }
        let thread = {
            let mut idle = self.idle.lock();
            let t = idle.pop();
            if t.is_some() {
                self.n_idle.fetch_sub(1, SeqCst);
            }
            t
        };
        match thread {
            Some((t, in_epoll)) => self.wake_idle(&t, in_epoll),
            // It woke by itself meanwhile (every worker is awake): it finds the work.
            None => {
                self.spinning.fetch_sub(1, SeqCst);
            }
        }
        true
    }

    /// A worker that has found nothing to run starts spinning, unless another spins.
    fn start_spinning(&self) -> bool {
        self.spinning.load(Relaxed) == 0 && self.spinning.compare_exchange(0, 1, SeqCst, SeqCst).is_ok()
    }

    /// A spinning worker found work: it stops spinning, and if it was the last spinner
    /// and there is work beyond what it took, another worker comes to take that.
    fn found_work(&self) {
        if self.spinning.fetch_sub(1, SeqCst) == 1 {
            self.pass_on_wake_up();
        }
    }

    /// `notify` skips its wake-up while a worker spins: the last spinner, once it found
    /// work, passes it on when there is more to run, or a timer moved earlier than idle
    /// workers sleep.
    fn pass_on_wake_up(&self) {
        if self.has_runnable() {
            // Whoever this wakes (or the worker that spins by now) finds the queued
            // work, and passes `timer_moved` on in turn.
            self.notify();
            return;
        }
        while self.timer_moved.swap(false, SeqCst) {
            if self.notify() {
                return;
            }
            // Another worker started spinning since this one stopped, and the wake-up
            // is left to it; the flag is how it learns of the timer, so it goes back.
            // Sequentially consistent with that spinner's `found_work`: either it is
            // still spinning here, and will see the flag, or it stopped, maybe before
            // the flag was back, and this takes the flag again.
            self.timer_moved.store(true, SeqCst);
            if self.spinning.load(SeqCst) != 0 {
                return;
            }
        }
    }

    /// Spins until work shows up (true) or `until` (false): run queues, due timers,
    /// shutdown. No system call: a worker spinning here is one that would otherwise
    /// park, and be woken (two futex calls and two context switches) by the next spawn.
    fn spin_for_work(&self, p: &Proc, until: i64, watch: &mut [(u64, i64)]) -> bool {
        let mut next_look = 0;
        loop {
            for _ in 0..SPIN_PAUSES {
                std::hint::spin_loop();
            }
            if self.has_work() || self.shutdown.load(Relaxed) {
                return true;
            }
            let now = clock::now();
            // Every half grace: each look reads a line the busy worker writes.
            if now >= next_look {
                next_look = now + WAITING_GRACE_NS / 2;
                if self.steal_waiting(p, now, watch) {
                    return true;
                }
            }
            if now >= until {
                return false;
            }
        }
    }

    /// A spinning worker looks at the other processors: one whose task has run without
    /// a switch for `WAITING_GRACE_NS` (as far as `watch`, the switch counts and when
    /// this worker first saw them, tells) gives up the tasks waiting in its LIFO slot,
    /// which go to this worker's queue. True if it took any. A task that wakes another
    /// and then waits itself (a ping-pong) switches within the grace, and keeps its
    /// partner on its worker (Go's runnext, stolen after a few microseconds).
    fn steal_waiting(&self, p: &Proc, now: i64, watch: &mut [(u64, i64)]) -> bool {
        let mut took = false;
        for (q, (seen, since)) in self.procs.iter().zip(watch.iter_mut()) {
            if q.index == p.index {
                continue;
            }
            let guard = q.guard.load(Acquire);
            let switches = q.switches.load(Relaxed);
            if guard & STATE_MASK != TASK || switches != *seen {
                *seen = switches;
                *since = now;
                continue;
            }
            if now - *since < WAITING_GRACE_NS {
                continue;
            }
            *since = now; // look again after another grace
            for task in q.take_waiting(guard).into_iter().flatten() {
                p.local.push(task);
                took = true;
            }
        }
        took
    }

    fn wake_idle(&self, thread: &Thread, in_epoll: bool) {
        match self.poller.get() {
            Some(poller) if in_epoll => poller.interrupt(),
            _ => thread.unpark(),
        }
    }

    /// The runtime's epoll set, made on first use.
    pub(crate) fn poller(&self) -> Result<&Poller, String> {
        match self.poller.get() {
            Some(p) => Ok(p),
            None => self.make_poller(),
        }
    }

    /// Out of line: the poller is built in place on the stack, a frame of kilobytes that
    /// every wait on a task's stack would otherwise set up (and commit a page of).
    #[cold]
    #[inline(never)]
    fn make_poller(&self) -> Result<&Poller, String> {
        let _making = self.making_poller.lock();
        if self.poller.get().is_none() {
            let _ = self.poller.set(Poller::new()?);
        }
        Ok(self.poller.get().expect("just made"))
    }

    /// The epoll set if the runtime has waited on an fd.
    pub(crate) fn poller_if_made(&self) -> Option<&Poller> {
        self.poller.get()
    }

    /// An IO wait is about to park and no worker sleeps in `epoll_wait`. A task's own
    /// worker polls when it runs out of work (and busy workers every 61st turn); a
    /// thread that is not a task has no worker: wake an idle one to poll for it.
    pub(crate) fn poller_wanted(&self) {
        if !on_task() {
            self.notify();
        }
    }

    /// Polls the network without blocking (if anyone waits on it); true if that woke a
    /// task. On a worker, the tasks go to its own run queue.
    fn netpoll_now(&self) -> bool {
        let Some(poller) = self.poller.get().filter(|p| p.has_waiters()) else { return false };
        let mut events = io::no_events();
        let n = poller.wait_reports(0, &mut events);
        n > 0 && poller.dispatch(&events[..n], false) > 0
    }

    fn has_work(&self) -> bool {
        self.has_runnable() || self.next_timer.load(SeqCst) <= clock::now()
    }

    /// Tasks wait in a run queue another worker could take them from.
    fn has_runnable(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    fn thread_main(self: Arc<Sched>, proc: Option<usize>) {
        stack::alt_stack();
        let me = &*self;
        set_here(match proc {
            Some(i) => Here { sched: me, proc: &me.procs[i], hold: me.procs[i].take(FREE), task: std::ptr::null() },
            None => Here { sched: me, ..Here::NONE },
        });
        // Whether this worker counts in `spinning`, and until when it spins.
        let mut spinning = false;
        let mut spin_until = 0;
        // The other processors' switch counts, and when this worker first saw them, while
        // it spins (`steal_waiting`).
        let mut watch = vec![(u64::MAX, 0); me.procs.len()];
        loop {
            let h = here();
            if h.proc.is_null() {
                if let Some(i) = me.free_procs.lock().pop() {
                    set_here(Here { proc: &me.procs[i], hold: me.procs[i].take(FREE), ..h });
                    continue;
                }
                if me.shutdown.load(SeqCst) {
                    break;
                }
                me.spare_sleep();
                continue;
            }
            // SAFETY: this thread holds the processor.
            let p = unsafe { &*h.proc };
            // Timers first: tasks that only yield would otherwise keep the run queues
            // non-empty for ever and a sleeper would never wake.
            me.fire_timers();
            if let Some(task) = me.find_task(p) {
                if spinning {
                    spinning = false;
                    me.found_work();
                }
                me.run(task);
                continue;
            }
            if me.netpoll_now() {
                continue;
            }
            if me.shutdown.load(SeqCst) {
                break;
            }
            if !spinning && me.start_spinning() {
                spinning = true;
                spin_until = clock::now().saturating_add(SPIN_NS);
            }
            if spinning && me.spin_for_work(p, spin_until, &mut watch) {
                continue;
            }
            if spinning {
                spinning = false;
                me.spinning.fetch_sub(1, SeqCst);
            }
            if me.idle_sleep() {
                spinning = true;
                spin_until = clock::now().saturating_add(SPIN_NS);
            }
        }
        if spinning {
            me.spinning.fetch_sub(1, SeqCst);
        }
        set_here(Here::NONE);
    }

    fn find_task(&self, p: &Proc) -> Option<Arc<Task>> {
        let after_next = p.after_next.take();
        let found = self.find_other_task(p);
        let Some(after_next) = after_next else {
            return found;
        };
        match found {
            Some(t) => {
                // The yielder runs right after `t` (the LIFO slot is empty once
                // `find_other_task` has looked, but for a task it set aside to let the
                // injector's run: then the yielder queues as a plain yield does).
                match p.lifo.take() {
                    None => p.lifo.set(Some(after_next)),
                    Some(waiting) => {
                        p.lifo.set(Some(waiting));
                        p.local.push(after_next);
                    }
                }
                Some(t)
            }
            None => Some(after_next),
        }
    }

    fn find_other_task(&self, p: &Proc) -> Option<Arc<Task>> {
        let tick = p.tick.get().wrapping_add(1);
        p.tick.set(tick);
        // Now and then the injector first, so that its tasks are not starved by a
        // busy local queue; and after a preemption.
        let preempted = p.preempted.replace(false);
        if tick.is_multiple_of(61) {
            // And the network: its tasks would otherwise wait until a worker idles.
            self.netpoll_now();
        }
        if tick.is_multiple_of(61) || preempted {
            if let Some(t) = self.steal_injector(p) {
                return Some(t);
            }
        }
        if let Some(t) = p.lifo.take() {
            // A pair of tasks waking each other would keep the LIFO slot for ever.
            if p.lifo_streak.get() < 16 {
                p.lifo_streak.set(p.lifo_streak.get() + 1);
                return Some(t);
            }
            p.local.push(t);
        }
        p.lifo_streak.set(0);
        if let Some(t) = p.local.pop() {
            return Some(t);
        }
        if let Some(t) = self.steal_injector(p) {
            return Some(t);
        }
        let n = self.stealers.len();
        let start = (tick as usize).wrapping_mul(0x9E37_79B9) % n.max(1);
        for k in 0..n {
            let i = (start + k) % n;
            if i == p.index {
                continue;
            }
            loop {
                match self.stealers[i].steal_batch_and_pop(&p.local) {
                    Steal::Success(t) => return Some(t),
                    Steal::Retry => continue,
                    Steal::Empty => break,
                }
            }
        }
        None
    }

    fn steal_injector(&self, p: &Proc) -> Option<Arc<Task>> {
        loop {
            match self.injector.steal_batch_and_pop(&p.local) {
                Steal::Success(t) => return Some(t),
                Steal::Retry => continue,
                Steal::Empty => return None,
            }
        }
    }

    /// Runs `task` until it suspends or ends.
    fn run(&self, task: Arc<Task>) {
        let h = here();
        set_here(Here { task: Arc::as_ptr(&task), ..h });
        // SAFETY: the thread holds the processor it runs tasks on.
        let p = unsafe { &*h.proc };
        // Both plain stores: only the processor's holder writes `switches` (the monitor
        // reads it), and nobody else moves the guard out of FREE (the monitor and a
        // blocking region take it from TASK only). A locked instruction each was a
        // tenth of a yield between two tasks.
        p.switches.store(p.switches.load(Relaxed).wrapping_add(1), Relaxed);
        p.guard.store(guard_word(h.hold, TASK), Release);

        // SAFETY: the task's own context (or NULL before it first ran); it lives as
        // long as the task runs.
        let previous = unsafe { HOST.context_set(task.saved_ctx.get()) };
        // SAFETY: this thread alone runs the task now (it took it from a run queue).
        let coro = unsafe { &mut *task.coro.get() };
        // SAFETY: as above.
        if let Some((stack, ctx)) = unsafe { (*task.unstarted.get()).take() } {
            let stack = stack.take();
            task.stack_size.set(stack.size());
            task.guard.set(stack.guard_range());
            *coro = Some(Self::coroutine(&task, stack, ctx));
        }
        let result = coro.as_mut().expect("a queued task has a coroutine").resume(());
        // The coroutine may have moved this thread to another processor (or none), and
        // the processor may have been retaken.
        let mut h = here();
        // SAFETY: the processor the thread held while the task ran.
        if !h.proc.is_null() && !unsafe { &*h.proc }.shift(h.hold, TASK, FREE, SeqCst) {
            h.proc = std::ptr::null();
            set_here(h);
        }
        // SAFETY: what this thread ran before the task (NULL on a worker).
        task.saved_ctx.set(unsafe { HOST.context_set(previous) });
        let h = here();
        set_here(Here { task: std::ptr::null(), ..h });
        match result {
            CoroutineResult::Yield(Suspend::Yield) => self.submit(task, false),
            CoroutineResult::Yield(Suspend::Preempted) => {
                let h = here();
                if !h.proc.is_null() {
                    // SAFETY: the processor this thread holds.
                    unsafe { &*h.proc }.preempted.set(true);
                }
                self.submit(task, false)
            }
            CoroutineResult::Yield(Suspend::YieldToPartner) => self.set_aside(task),
            CoroutineResult::Yield(Suspend::Park) => {
                if task.state.compare_exchange(RUNNING, PARKED, SeqCst, SeqCst).is_err() {
                    // Woken before it was parked.
                    task.state.store(RUNNING, SeqCst);
                    self.submit(task, false);
                }
            }
            CoroutineResult::Yield(Suspend::Rejoin) => {
                self.injector.push(task);
                self.notify();
            }
            CoroutineResult::Return(()) => {
                // SAFETY: as above; the coroutine has finished.
                if let Some(coro) = unsafe { (*task.coro.get()).take() } {
                    stack::give_back(coro.into_stack());
                }
                task.state.store(DONE, SeqCst);
                // Sequentially consistent with `join`'s store of `awaited` and load of
                // `done`: either the joiner sees `done`, or this sees `awaited`.
                task.done.store(true, SeqCst);
                if task.awaited.load(SeqCst) {
                    crate::wait::wake_all(task.done_key());
                }
            }
        }
    }

    /// Sleeps until work comes: in `epoll_wait` if the runtime waits on fds and no
    /// other worker sleeps there, else parked. Either way until the earliest timer, or
    /// until pooled stacks are due to be trimmed.
    /// True if `notify` woke it (it took the worker off the idle list): the worker
    /// then counts as spinning.
    fn idle_sleep(&self) -> bool {
        // Pooled stacks unused for a while are trimmed by idle workers, which sleep no
        // later than the next are due (`stack::give_back`).
        let trim_due = stack::trim_unused(false).unwrap_or(WEFT_FOREVER);
        let me = std::thread::current();
        // Claimed before the worker shows itself idle: whoever takes it off the idle
        // list to wake it must know which way it sleeps.
        let poller = self.poller.get().filter(|p| p.has_waiters() && p.claim_sleep());
        {
            self.idle.lock().push((me.clone(), poller.is_some()));
            self.n_idle.fetch_add(1, SeqCst);
        }
        weft_platform::fence::full();
        // A wait that began after the look above found no idle worker to send to the
        // poller (its `notify` ran before this one showed itself idle): seen here (the
        // fence against its count of waiters), and this worker polls on its next round
        // instead of parking, where the wait would have waited for the monitor's poll.
        let poll_unclaimed =
            poller.is_none() && self.poller.get().is_some_and(|p| p.has_waiters() && !p.someone_sleeps());
        let mut events = None;
        if !self.has_work() && !self.shutdown.load(SeqCst) && !poll_unclaimed {
            // This sleep sees the earliest timer: nobody needs to be woken for it.
            self.timer_moved.store(false, SeqCst);
            let next = self.next_timer.load(SeqCst).min(trim_due);
            let left = if next == WEFT_FOREVER { -1 } else { next.saturating_sub(clock::now()).max(0) };
            // A sleep that times out sets errno, which the next task here would see.
            let _errno = weft_platform::errno::Kept::new();
            match poller {
                Some(poller) => {
                    let mut buf = io::no_events();
                    let n = poller.wait_reports(left, &mut buf);
                    events = Some((buf, n));
                }
                None if left < 0 => std::thread::park(),
                None => std::thread::park_timeout(std::time::Duration::from_nanos(left as u64)),
            }
        }
        if let Some(poller) = poller {
            poller.release_sleep();
        }
        let woken = {
            let mut idle = self.idle.lock();
            match idle.iter().position(|(t, _)| t.id() == me.id()) {
                Some(i) => {
                    idle.swap_remove(i);
                    self.n_idle.fetch_sub(1, SeqCst);
                    false
                }
                None => true,
            }
        };
        // Off the idle list first: the tasks woken here come to this worker, and the
        // wake-ups for any beyond the first go to the other idle workers.
        if let (Some(poller), Some((buf, n))) = (poller, events) {
            poller.dispatch(&buf[..n], true);
        }
        woken
    }

    fn spare_sleep(&self) {
        let me = std::thread::current();
        self.spares.lock().push(me.clone());
        if self.free_procs.lock().is_empty() && !self.shutdown.load(SeqCst) {
            std::thread::park();
        }
        let mut spares = self.spares.lock();
        if let Some(i) = spares.iter().position(|t| t.id() == me.id()) {
            spares.swap_remove(i);
        }
    }

    // ---- preemption at the host's polls -------------------------------------------------

    /// Keeps the runtime's poll word and starts the monitor that asks tasks running
    /// longer than a slice to yield at their next poll (Go's sysmon, for the polls the
    /// host's VM already makes).
    pub(crate) fn attach_poll_word(self: &Arc<Sched>, word: *mut u32) {
        self.poll_word.store(word as *mut AtomicU32, SeqCst);
        let sched = Arc::downgrade(self);
        let options = os_thread::Options { name: Some("weft-green-monitor"), ..Default::default() };
        // It never runs the host's code: no signal of the host's is handled there.
        let spawned = os_thread::with_signals_blocked(|| {
            os_thread::spawn(&options, move || {
                // Registered by the monitor itself (an OS thread's std handle is its own to
                // take); a close that comes first finds it gone at its first look.
                if let Some(sched) = sched.upgrade() {
                    *sched.monitor.lock() = Some(std::thread::current());
                }
                let mut seen: Vec<(u64, i64)> = Vec::new();
                while let Some(sched) = sched.upgrade() {
                    if sched.shutdown.load(SeqCst) {
                        break;
                    }
                    sched.monitor_tick(&mut seen);
                    drop(sched);
                    std::thread::park_timeout(MONITOR_TICK);
                }
            })
        });
        if let Ok(handle) = spawned {
            self.threads.lock().push(handle);
        }
    }

    fn monitor_tick(self: &Arc<Sched>, seen: &mut Vec<(u64, i64)>) {
        // SAFETY: the poll word stays valid until the runtime closes, after the monitor.
        let Some(word) = (unsafe { self.poll_word.load(SeqCst).as_ref() }) else { return };
        let now = clock::now();
        seen.resize(self.procs.len(), (0, now));
        let mut asking = false;
        let mut retaken = Vec::new();
        let mut freed = false;
        let slice = if self.has_runnable() { SHORT_SLICE_NS } else { SLICE_NS };
        let idle = self.n_idle.load(SeqCst) > 0;
        for (p, (last, since)) in self.procs.iter().zip(seen.iter_mut()) {
            let switches = p.switches.load(Relaxed);
            let guard = p.guard.load(SeqCst);
            // While workers sleep, the tasks waiting behind a running task in the slots
            // only a spinning worker reaches (`steal_waiting`) go where every worker can
            // take them. Whether that task has run long or not: two tasks that hand
            // over to each other on one worker by their back-off yields, each
            // computing between two hand-overs, switch often and wait for each other
            // as long as each computes.
            if idle {
                for task in p.take_waiting(guard).into_iter().flatten() {
                    self.injector.push(task);
                    freed = true;
                }
            }
            if switches != *last || guard & STATE_MASK == FREE {
                *last = switches;
                *since = now;
                p.preempt.store(0, SeqCst);
                continue;
            }
            if now - *since >= self.retake_ns && guard & STATE_MASK == TASK && p.retake(hold_of(guard)) {
                p.preempt.store(0, SeqCst);
                *since = now;
                retaken.push(p.index);
                continue;
            } else if now - *since >= slice {
                p.preempt.store(switches, SeqCst);
            }
            asking |= p.preempt.load(SeqCst) != 0;
        }
        for index in retaken {
            self.hand_off(index);
        }
        // Tasks in a run queue while workers sleep: queued behind a task that runs on
        // (a wake-up that queued one task behind its waker wakes nobody: the waker was
        // expected to wait soon).
        if freed || (idle && self.has_runnable()) {
            self.notify();
        }
        self.netpoll_backstop(now);
        if asking {
            word.fetch_or(WEFT_SAFEPOINT_PREEMPT, SeqCst);
        } else if word.load(Relaxed) & WEFT_SAFEPOINT_PREEMPT != 0 {
            word.fetch_and(!WEFT_SAFEPOINT_PREEMPT, SeqCst);
        }
    }

    /// Polls the network for the workers when none has for a while (they are all busy,
    /// or parked while the one in `epoll_wait` runs a long task): Go's sysmon. The
    /// tasks woken go to the injector.
    fn netpoll_backstop(&self, now: i64) {
        if let Some(poller) = self.poller.get() {
            if !poller.someone_sleeps() && now - poller.last_poll() >= NETPOLL_BACKSTOP_NS {
                self.netpoll_now();
            }
        }
    }

    /// `weft_safepoint` while the preempt bit is set: the task the monitor asked yields.
    pub(crate) fn preempt_point(&self) {
        let h = here();
        if h.task.is_null() || h.proc.is_null() || !std::ptr::eq(h.sched, self) {
            return;
        }
        // SAFETY: the thread holds the processor.
        let p = unsafe { &*h.proc };
        let asked = p.preempt.load(SeqCst);
        if asked == 0 || asked != p.switches.load(Relaxed) {
            return;
        }
        p.preempt.store(0, SeqCst);
        if self.procs.iter().all(|p| p.preempt.load(SeqCst) == 0) {
            // SAFETY: attached before any task could be asked.
            if let Some(word) = unsafe { self.poll_word.load(SeqCst).as_ref() } {
                word.fetch_and(!WEFT_SAFEPOINT_PREEMPT, SeqCst);
            }
        }
        suspend(Suspend::Preempted);
    }

    // ---- timers ----------------------------------------------------------------------

    /// Wakes `task` at `deadline`; returns the key to remove the timer with.
    pub(crate) fn add_timer(&self, deadline: i64, task: &Arc<Task>) -> (i64, u64) {
        let key = (deadline, self.timer_seq.fetch_add(1, Relaxed));
        let earlier = {
            let mut timers = self.timers.lock();
            timers.insert(key, Arc::clone(task));
            let first = timers.keys().next().map_or(WEFT_FOREVER, |k| k.0);
            self.next_timer.swap(first, SeqCst) > first
        };
        if earlier {
            // An idle worker may be sleeping until a later deadline.
            self.timer_moved.store(true, SeqCst);
            self.notify();
        }
        key
    }

    pub(crate) fn remove_timer(&self, key: (i64, u64)) {
        let mut timers = self.timers.lock();
        if timers.remove(&key).is_some() {
            let first = timers.keys().next().map_or(WEFT_FOREVER, |k| k.0);
            self.next_timer.store(first, SeqCst);
        }
    }

    /// Wakes the tasks whose deadline has passed; true if there were any.
    fn fire_timers(&self) -> bool {
        let next = self.next_timer.load(Acquire);
        if next == WEFT_FOREVER {
            return false;
        }
        let now = clock::now();
        if next > now {
            return false;
        }
        let due: Vec<Arc<Task>> = {
            let mut timers = self.timers.lock();
            let later = timers.split_off(&(now.saturating_add(1), 0));
            let due = std::mem::replace(&mut *timers, later);
            let first = timers.keys().next().map_or(WEFT_FOREVER, |k| k.0);
            self.next_timer.store(first, SeqCst);
            due.into_values().collect()
        };
        let any = !due.is_empty();
        for task in due {
            wake(&task);
        }
        any
    }

    // ---- blocking regions (hand-off) ------------------------------------------------

    /// The calling task enters a host's blocking region: its processor goes to another
    /// thread.
    pub(crate) fn region_enter(self: &Arc<Sched>) {
        let h = here();
        if h.task.is_null() || !std::ptr::eq(h.sched, &**self) {
            return;
        }
        // SAFETY: the worker running the task holds a reference on it.
        unsafe { &*h.task }.in_region.set(true);
        self.hand_off_own();
    }

    /// The calling task's thread gives its processor to another thread (it is about to
    /// block in a host's call); nothing if it holds none (retaken already).
    fn hand_off_own(self: &Arc<Sched>) {
        let h = here();
        if h.proc.is_null() || !std::ptr::eq(h.sched, &**self) {
            return;
        }
        // SAFETY: this thread holds the processor (unless it was retaken already).
        let p = unsafe { &*h.proc };
        set_here(Here { proc: std::ptr::null(), ..h });
        if p.retake(h.hold) {
            self.hand_off(p.index);
        }
    }

    /// Gives a processor taken from its thread to a spare thread, or a new one.
    fn hand_off(self: &Arc<Sched>, index: usize) {
        self.free_procs.lock().push(index);
        let spare = self.spares.lock().pop();
        match spare {
            Some(t) => t.unpark(),
            None => {
                // Without a new thread the processor waits for the next thread that
                // looks for one (the one that gave it up, at the latest).
                let _ = self.start_thread(None);
            }
        }
    }

    /// The calling task leaves the host's blocking region: it continues on a free
    /// processor, or waits on the injector for one.
    pub(crate) fn region_leave(self: &Arc<Sched>) {
        let h = here();
        if h.task.is_null() || !std::ptr::eq(h.sched, &**self) {
            return;
        }
        // SAFETY: the worker running the task holds a reference on it.
        unsafe { &*h.task }.in_region.set(false);
        if !h.proc.is_null() {
            return;
        }
        if let Some(i) = self.free_procs.lock().pop() {
            let p = &self.procs[i];
            let hold = p.take(TASK);
            p.switches.store(p.switches.load(Relaxed).wrapping_add(1), Relaxed);
            set_here(Here { proc: p, hold, ..h });
            return;
        }
        suspend(Suspend::Rejoin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scheduler without workers, one sleeper on its idle list (the test's thread),
    /// and a timer that moved earlier while a worker (B) was spinning, so that
    /// `add_timer`'s `notify` left the wake-up to B.
    fn sleeper_and_a_moved_timer() -> Arc<Sched> {
        let sched = Sched::open(0, RETAKE_NS).expect("a scheduler without workers");
        sched.idle.lock().push((std::thread::current(), false));
        sched.n_idle.store(1, SeqCst);
        sched.spinning.store(1, SeqCst);
        sched.timer_moved.store(true, SeqCst);
        sched
    }

    #[test]
    fn a_spinner_that_finds_a_task_wakes_the_sleeper_for_a_moved_timer() {
        let sched = sleeper_and_a_moved_timer();
        sched.found_work();
        assert_eq!(sched.n_idle.load(SeqCst), 0, "the sleeper was woken");
        assert_eq!(sched.spinning.load(SeqCst), 1, "the sleeper counts as spinning");
        sched.close();
    }

    #[test]
    fn a_timer_wake_up_outlives_a_spinner_that_starts_meanwhile() {
        let sched = sleeper_and_a_moved_timer();
        // B found a task: it stops spinning, and another worker (C) starts before B
        // passes the wake-up on.
        assert_eq!(sched.spinning.fetch_sub(1, SeqCst), 1);
        assert!(sched.start_spinning());
        sched.pass_on_wake_up();
        assert_eq!(sched.n_idle.load(SeqCst), 1, "C spins: the sleeper is left asleep");
        assert!(sched.timer_moved.load(SeqCst), "the timer's wake-up is kept for C");
        // C finds a task in turn: now the sleeper must wake for the timer.
        sched.found_work();
        assert_eq!(sched.n_idle.load(SeqCst), 0, "C woke the sleeper");
        assert!(sched.idle.lock().is_empty());
        assert!(!sched.timer_moved.load(SeqCst));
        sched.close();
    }
}
