//! The deterministic scheduler: every task a coroutine on the one thread that opened the
//! runtime, one task running at a time, and a seeded choice at every weft call.
//!
//! The opener's thread is task 0, `main`: it runs on its own stack. The other tasks are
//! corosensei coroutines on green's stacks. Every switch goes through `main`'s stack:
//! when `main` gives the CPU away it runs `drive`, which resumes the chosen coroutine;
//! a coroutine that gives the CPU away suspends back into `drive` after choosing who
//! runs next. So a coroutine only ever runs inside one of `main`'s weft calls, which is
//! what a single CPU running the program would allow too.
//!
//! At every switch point (`Sim::step`) the strategy picks the next task among the
//! runnable ones: a uniform choice (random walk), or PCT (Burckhardt et al., ASPLOS
//! 2010: random distinct priorities, the highest runnable one runs, and at `depth - 1`
//! random steps the running task drops below every other). When no task is runnable
//! the virtual clock jumps to the earliest deadline of a blocked task; when there is
//! none, every task waits for ever: the deadlock report, and exit status 86.
//!
//! Nothing here depends on addresses, the wall clock or hash order: the same seed and
//! the same program give the same choices.
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::c_void;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::sync::Arc;

use corosensei::{Coroutine, CoroutineResult, Yielder};
use weft_platform::once::ForkSafeOnce;
use weft_platform::{WEFT_FOREVER, WEFT_IO_READ, WEFT_IO_WRITE};

use crate::io::IoWait;
use crate::stack::{self, Stack};
use crate::stall::{self, Watchdog};
use crate::HOST;

/// Exit status of a process whose tasks all wait for ever (documented in docs/sim.md).
pub(crate) const EXIT_DEADLOCK: i32 = 86;
/// Exit status when `$WEFT_SIM_MAX_STEPS` is exceeded (a livelock, or a long program).
pub(crate) const EXIT_STEP_LIMIT: i32 = 87;

/// The default step limit: far beyond any test, short enough to end a spin in seconds.
const DEFAULT_MAX_STEPS: u64 = 50_000_000;
/// PCT's estimate of a run's length in steps: change points are drawn below it.
const DEFAULT_PCT_STEPS: u64 = 100;
/// PCT picks at random once a run is past this many times the steps it planned for
/// (`$WEFT_SIM_PCT_STEPS`), as Coyote's fair PCT does: strict priorities let a task that
/// polls through weft calls (a lock, a try, a non-blocking receive) in a loop run alone
/// for ever, while the task it waits for never runs. PCT's change points all lie in the
/// planned steps, so the bugs it looks for are met before the tail.
const PCT_FAIR_AFTER: u64 = 10;

type Coro = Coroutine<(), (), (), Stack>;

pub(crate) const MAIN: usize = 0;

/// The virtual clock, readable from any thread (`now` has no failure path).
pub(crate) static NOW: AtomicI64 = AtomicI64::new(0);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Run {
    Runnable,
    Blocked,
    Done,
}

/// What a task is doing: the weft call it is in and on which object.
#[derive(Clone, Copy)]
pub(crate) struct Call {
    pub(crate) name: &'static str,
    pub(crate) obj: Obj,
}

/// The object of a call, for the trace and the deadlock report.
#[derive(Clone, Copy)]
pub(crate) enum Obj {
    None,
    Mutex(usize),
    Cond(usize, usize),
    Rwlock(usize),
    Chan(usize),
    /// A task, by id (not by slot: a later task takes the slot once it ended).
    Task(u64),
    Deadline(i64),
    /// An fd and the events waited for (none for a forget).
    Fd(i32, u32),
    /// An address the runtime parks its waiters on (`weft_wait_on`, `weft_park`, ...).
    Key(usize),
}

struct TaskRec {
    id: u64,
    name: String,
    /// What the SIGSEGV handler says about the task when it runs (None for main).
    fault: Option<stack::Running>,
    /// Owns the C string `fault.name` points to.
    _cname: Option<std::ffi::CString>,
    coro: Option<Coro>,
    yielder: *const Yielder<(), ()>,
    saved_ctx: *mut c_void,
    run: Run,
    call: Call,
    /// The address the task waits on while blocked, and until when.
    key: usize,
    deadline: i64,
    /// Set by the waker that took the task off `key`'s queue.
    woken: bool,
    /// PCT's: the highest runnable runs. A new task gets depth and more, a task that
    /// yields or passes a change point less than every other (negative).
    priority: i64,
    /// Where the task sits in `State::runnable` while runnable.
    slot: usize,
    /// Set when the task ends; shared with its handle, which outlives the runtime.
    done: Arc<AtomicBool>,
    /// How many mutexes the task holds (a task that ends holding one is remembered
    /// for the deadlock report: `State::ended_holding`).
    held: u32,
}

enum Strategy {
    Random,
    /// `lowest`: the priority the last task that yielded or passed a change point got
    /// (it drops below every other, and below each task that dropped before it).
    Pct {
        depth: u64,
        steps: u64,
        changes: Vec<u64>,
        lowest: i64,
    },
}

struct State {
    /// Indexed by task: a slot whose task ended is given to a later spawn (`free`), so
    /// that a long run keeps as many records as it has live tasks, not one per spawn.
    tasks: Vec<TaskRec>,
    /// The slots of ended tasks, reused last-ended first (deterministic).
    free: Vec<usize>,
    /// Tasks that have ended (for the report).
    ended: u64,
    /// The names of the tasks that ended holding a mutex, by id: the report names such
    /// a mutex's holder (a host's bug worth naming; only such tasks are kept).
    ended_holding: BTreeMap<u64, String>,
    /// The tasks that have not ended (for the report).
    live: BTreeSet<usize>,
    /// The runnable tasks, in an order that depends only on the run so far; a task's
    /// `slot` is its place here.
    runnable: Vec<usize>,
    /// Blocked tasks with a deadline, earliest first.
    timers: BTreeSet<(i64, usize)>,
    current: usize,
    /// Waiters per address, oldest first.
    waiters: BTreeMap<usize, Vec<usize>>,
    /// The tasks in `weft_fd_wait`, by task index.
    io: BTreeMap<usize, IoWait>,
    /// How long (real milliseconds) the scheduler polls the waited fds before it moves
    /// the clock to the next deadline (`$WEFT_SIM_IO_GRACE_MS`).
    io_grace_ms: i64,
    /// How long (real milliseconds) it polls them when no deadline is pending before it
    /// calls the run a deadlock (`$WEFT_SIM_IO_IDLE_MS`; 0: for ever).
    io_idle_ms: i64,
    rng: Rng,
    strategy: Strategy,
    step: u64,
    max_steps: u64,
    /// Virtual nanoseconds each step costs (`$WEFT_SIM_STEP_NS`, default 0: the clock
    /// moves only when every task waits).
    step_ns: i64,
    trace: bool,
    seed: u64,
    /// Objects by the order they were first named in (addresses differ between runs;
    /// the trace and the report must not).
    names: RefCell<BTreeMap<usize, usize>>,
    /// Watches for a task that runs on without a switch point (stall.rs).
    watchdog: Option<Watchdog>,
}

/// The scheduler of every runtime the thread opens (each is an `Opened`, lib.rs).
pub(crate) struct Sim {
    state: RefCell<State>,
    /// Runtimes open on it: every runtime the thread opens shares the one scheduler
    /// (their tasks share the one CPU).
    opens: Cell<usize>,
}

thread_local! {
    /// The open sim runtime whose tasks this thread runs; NULL on every other thread.
    static HERE: Cell<*const Sim> = const { Cell::new(std::ptr::null()) };
}

/// The sim runtime the calling thread runs, if it is the one that opened it.
pub(crate) fn here() -> Option<&'static Sim> {
    // SAFETY: set by `open` to a boxed `Sim` and cleared by `close` before it is freed.
    HERE.with(|h| unsafe { h.get().as_ref() })
}

/// In a child of `fork()`: the forking thread no longer runs the parent's scheduler.
pub(crate) fn forget_here() {
    HERE.with(|h| h.set(std::ptr::null()));
}

/// splitmix64: one 64-bit word of state, every seed a full-period stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }
}

/// `$name` as a number; None when it is not set. A value that is no number is an
/// error that names it (it was taken as unset, without a word).
fn env_u64(name: &str) -> Result<Option<u64>, String> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(text) => text.trim().parse().map(Some).map_err(|_| format!("${name} is not a number: {text:?}")),
    }
}

/// `$WEFT_SIM_STEP_NS`: at most a second (a larger one was taken as a second, silently).
fn step_ns() -> Result<i64, String> {
    match env_u64("WEFT_SIM_STEP_NS")?.unwrap_or(0) {
        ns if ns > 1_000_000_000 => Err(format!("$WEFT_SIM_STEP_NS is {ns}: at most 1000000000 (a second a step)")),
        ns => Ok(ns as i64),
    }
}

/// `$name` as a number of at least 1, or `default` when it is not set.
fn env_at_least_1(name: &str, default: u64) -> Result<u64, String> {
    match env_u64(name)? {
        Some(0) => Err(format!("${name} must be at least 1")),
        value => Ok(value.unwrap_or(default)),
    }
}

/// Settings read once per open: the seed (`weft_config_t.seed`, else `$WEFT_SEED`,
/// else a fresh one, printed), the strategy, the step limit and the trace switch.
pub(crate) struct Settings {
    seed: u64,
    strategy: String,
    depth: u64,
    pct_steps: u64,
    max_steps: u64,
    step_ns: i64,
    trace: bool,
    io_grace_ms: i64,
    io_idle_ms: i64,
    stall_ms: u64,
}

/// Default `$WEFT_SIM_IO_GRACE_MS`: what the kernel has not delivered yet gets 50 ms to
/// arrive before virtual time jumps past it. Loopback TCP needs it: on a loaded machine
/// the kernel finishes a send to a peer socket several milliseconds later (measured: up
/// to 7 ms on 2 busy cores). Pipes and socket pairs are ready when the write returns.
const DEFAULT_IO_GRACE_MS: u64 = 50;
/// Default `$WEFT_SIM_IO_IDLE_MS`: a second with every task waiting, no deadline and no
/// fd ready is a deadlock (shorter than `weft-sim explore`'s default timeout, 10 s).
const DEFAULT_IO_IDLE_MS: u64 = 1000;

impl Settings {
    pub(crate) fn read(cfg_seed: u64) -> Result<Settings, String> {
        let seed = if cfg_seed != 0 {
            cfg_seed
        } else if let Ok(text) = std::env::var("WEFT_SEED") {
            text.trim().parse().map_err(|_| format!("$WEFT_SEED is not a number: {text:?}"))?
        } else {
            let fresh = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 ^ (std::process::id() as u64) << 32);
            let fresh = Rng(fresh).next() % 1_000_000_000;
            weft_platform::stderr::line(format_args!("weft sim: seed {fresh} (replay with WEFT_SEED={fresh})"));
            fresh
        };
        let strategy = std::env::var("WEFT_SIM_STRATEGY").unwrap_or_else(|_| "random".into());
        if strategy != "random" && strategy != "pct" {
            return Err(format!("$WEFT_SIM_STRATEGY must be random or pct, not {strategy:?}"));
        }
        let trace = match std::env::var("WEFT_SIM_TRACE").as_deref().map(str::trim) {
            Err(_) | Ok("0") | Ok("") => false,
            Ok("1") => true,
            Ok(other) => return Err(format!("$WEFT_SIM_TRACE must be 0 or 1, not {other:?}")),
        };
        Ok(Settings {
            seed,
            strategy,
            depth: env_at_least_1("WEFT_SIM_PCT_DEPTH", 3)?,
            pct_steps: env_at_least_1("WEFT_SIM_PCT_STEPS", DEFAULT_PCT_STEPS)?,
            max_steps: env_at_least_1("WEFT_SIM_MAX_STEPS", DEFAULT_MAX_STEPS)?,
            step_ns: step_ns()?,
            trace,
            stall_ms: env_u64("WEFT_SIM_STALL_MS")?.unwrap_or(stall::DEFAULT_STALL_MS),
            io_grace_ms: env_u64("WEFT_SIM_IO_GRACE_MS")?.unwrap_or(DEFAULT_IO_GRACE_MS).min(i32::MAX as u64) as i64,
            io_idle_ms: env_u64("WEFT_SIM_IO_IDLE_MS")?.unwrap_or(DEFAULT_IO_IDLE_MS).min(i32::MAX as u64) as i64,
        })
    }
}

impl Sim {
    /// A scheduler whose task 0 is the calling thread.
    pub(crate) fn open(s: Settings) -> Box<Sim> {
        let mut rng = Rng(s.seed);
        let strategy = if s.strategy == "pct" {
            let mut changes: Vec<u64> = (1..s.depth).map(|_| 1 + rng.next() % s.pct_steps).collect();
            changes.sort_unstable();
            Strategy::Pct { depth: s.depth, steps: s.pct_steps, changes, lowest: 0 }
        } else {
            Strategy::Random
        };
        let mut state = State {
            tasks: Vec::new(),
            free: Vec::new(),
            ended: 0,
            ended_holding: BTreeMap::new(),
            live: BTreeSet::from([MAIN]),
            runnable: vec![MAIN],
            timers: BTreeSet::new(),
            current: MAIN,
            waiters: BTreeMap::new(),
            io: BTreeMap::new(),
            io_grace_ms: s.io_grace_ms,
            io_idle_ms: s.io_idle_ms,
            rng,
            strategy,
            step: 0,
            max_steps: s.max_steps,
            step_ns: s.step_ns,
            trace: s.trace,
            seed: s.seed,
            names: RefCell::new(BTreeMap::new()),
            watchdog: None,
        };
        state.watchdog = Watchdog::start(s.stall_ms, s.seed, state.replay_line());
        let priority = state.new_priority();
        state.tasks.push(TaskRec {
            id: 0,
            name: "main".into(),
            fault: None,
            _cname: None,
            coro: None,
            yielder: std::ptr::null(),
            saved_ctx: std::ptr::null_mut(),
            run: Run::Runnable,
            call: Call { name: "", obj: Obj::None },
            key: 0,
            deadline: WEFT_FOREVER,
            woken: false,
            priority,
            slot: 0,
            done: Arc::new(AtomicBool::new(false)),
            held: 0,
        });
        NOW.store(0, Relaxed);
        stack::install_handler();
        ensure_alt_stack();
        let sim = Box::new(Sim { state: RefCell::new(state), opens: Cell::new(1) });
        HERE.with(|h| h.set(&*sim));
        if stats_wanted() {
            static AT_EXIT: ForkSafeOnce = ForkSafeOnce::new();
            // SAFETY: a plain function that lives as long as the plugin.
            AT_EXIT.call_once(|| unsafe {
                libc::atexit(steps_at_exit);
            });
        }
        sim
    }

    /// The seed it runs with.
    pub(crate) fn seed(&self) -> u64 {
        self.state.borrow().seed
    }

    /// One more runtime opens on this scheduler.
    pub(crate) fn reopen(&self) {
        self.opens.set(self.opens.get() + 1);
    }

    /// A runtime closes (its tasks have ended). True when it was the last: this thread
    /// stops being the scheduler's, and the caller frees it.
    pub(crate) fn close(&self) -> bool {
        self.opens.set(self.opens.get() - 1);
        if self.opens.get() > 0 {
            return false;
        }
        self.finish_tails();
        if stats_wanted() {
            // Read by `weft-sim explore --strategy pct` to size PCT's change points.
            weft_platform::stderr::line(format_args!("weft sim: steps {}", self.state.borrow().step));
        }
        HERE.with(|h| {
            if std::ptr::eq(h.get(), self) {
                h.set(std::ptr::null());
            }
        });
        true
    }

    /// Runs the tasks that libweft counts as ended but whose coroutines have not
    /// returned yet, to their end: a task ends for `weft_runtime_drain` inside its last
    /// calls into the plugin (the runtime's own lock released, its waiters woken), and
    /// each is a switch point, so main may close the runtime while such a tail is
    /// suspended. Freeing the scheduler then would drop a suspended coroutine, which
    /// unwinds its stack through frames that do not let an unwind pass. A task still
    /// blocked here would never end: that is reported, as a deadlock is.
    fn finish_tails(&self) {
        let close = Call { name: "weft_runtime_close", obj: Obj::None };
        loop {
            let (tails, runnable) = {
                let st = self.state.borrow();
                let tails = st.live.iter().filter(|&&i| i != MAIN);
                (tails.clone().count(), tails.filter(|&&i| st.tasks[i].run == Run::Runnable).count())
            };
            if tails == 0 {
                return;
            }
            if runnable == 0 {
                self.state
                    .borrow_mut()
                    .report(&format!("{tails} task(s) still blocked when the last runtime closed"), EXIT_DEADLOCK);
            }
            // As a yield: under PCT main would otherwise outrank the tails for ever.
            self.yield_step(close);
        }
    }

    pub(crate) fn current(&self) -> usize {
        self.state.borrow().current
    }

    /// The running task's id (`weft_task_id`; 0 for main).
    pub(crate) fn current_id(&self) -> u64 {
        let st = self.state.borrow();
        st.tasks[st.current].id
    }

    /// The running task took a mutex.
    pub(crate) fn took_mutex(&self) {
        let mut st = self.state.borrow_mut();
        let current = st.current;
        st.tasks[current].held += 1;
    }

    /// The running task released a mutex (its own: the runtime refuses other unlocks).
    pub(crate) fn released_mutex(&self) {
        let mut st = self.state.borrow_mut();
        let current = st.current;
        st.tasks[current].held = st.tasks[current].held.saturating_sub(1);
    }

    /// Starts a task whose coroutine calls `task_run(ctx)`; runnable at once.
    pub(crate) fn spawn(
        &self,
        ctx: *mut c_void,
        stack_size: usize,
        name: String,
        id: u64,
    ) -> Option<(usize, Arc<AtomicBool>)> {
        let stack = stack::reserve(stack_size)?.take();
        let cname = std::ffi::CString::new(name.clone()).ok();
        let (guard_low, guard_high) = stack.guard_range();
        let fault = stack::Running {
            guard_low,
            guard_high,
            size: stack.size(),
            id,
            name: cname.as_ref().map_or(std::ptr::null(), |n| n.as_ptr()),
        };
        let mut st = self.state.borrow_mut();
        let index = st.free.pop().unwrap_or(st.tasks.len());
        st.live.insert(index);
        let me = self as *const Sim as usize;
        let ctx = ctx as usize;
        let coro = Coro::with_stack(stack, move |yielder: &Yielder<(), ()>, ()| {
            // SAFETY: the scheduler outlives its tasks (the runtime closes only once
            // every task ended).
            let sim = unsafe { &*(me as *const Sim) };
            sim.state.borrow_mut().tasks[index].yielder = yielder;
            // SAFETY: `ctx` is the runtime's context for this spawn, run exactly once.
            unsafe { HOST.task_run(ctx as *mut c_void) };
        });
        let priority = st.new_priority();
        let done = Arc::new(AtomicBool::new(false));
        let record = TaskRec {
            id,
            name,
            fault: Some(fault),
            _cname: cname,
            coro: Some(coro),
            yielder: std::ptr::null(),
            saved_ctx: std::ptr::null_mut(),
            run: Run::Blocked,
            call: Call { name: "start", obj: Obj::None },
            key: 0,
            deadline: WEFT_FOREVER,
            woken: false,
            priority,
            slot: usize::MAX,
            done: Arc::clone(&done),
            held: 0,
        };
        if index == st.tasks.len() {
            st.tasks.push(record);
        } else {
            st.tasks[index] = record;
        }
        st.set_runnable(index);
        Some((index, done))
    }

    /// Numbers an object when it is made, so that the trace and the report name it the
    /// same way whether tracing or not.
    pub(crate) fn register(&self, addr: usize) {
        self.state.borrow().number(addr);
    }

    /// The call the running task entered last.
    pub(crate) fn call(&self) -> Call {
        let st = self.state.borrow();
        st.tasks[st.current].call
    }

    /// A number from the seeded stream (a select's poll order).
    pub(crate) fn random(&self) -> u64 {
        self.state.borrow_mut().rng.next()
    }

    /// The address a join waits on: one per task, never a real object's.
    pub(crate) fn done_key(index: usize) -> usize {
        usize::MAX - index
    }

    /// A switch point: the running task stays runnable and the strategy picks who runs
    /// next (perhaps itself).
    pub(crate) fn step(&self, call: Call) {
        let (from, to) = {
            let mut st = self.state.borrow_mut();
            let me = st.current;
            st.tasks[me].call = call;
            let to = st.choose();
            (me, to)
        };
        self.transfer(from, to);
    }

    /// A switch point where the running task lets others run (`weft_yield`,
    /// `weft_sleep_until`). Under PCT it drops below every other task, as shuttle's PCT
    /// does: a loop of yields that waits for a task of lower priority would otherwise
    /// run alone until a change point, and past the last one until the step limit.
    pub(crate) fn yield_step(&self, call: Call) {
        {
            let mut st = self.state.borrow_mut();
            let me = st.current;
            st.drop_lowest(me);
        }
        self.step(call);
    }

    /// Blocks the running task on `key` until a waker takes it off (`wake`), the
    /// deadline passes or something else makes it runnable (a cancellation). Returns
    /// true if a waker took it off; otherwise it is still queued on `key` (see
    /// `unqueue`).
    pub(crate) fn block(&self, call: Call, key: usize, deadline: i64, requeue: bool) -> bool {
        let (from, to) = {
            let mut st = self.state.borrow_mut();
            let me = st.current;
            let t = &mut st.tasks[me];
            if std::mem::take(&mut t.woken) {
                // Taken off the queue while it was awake for another reason.
                return true;
            }
            t.call = call;
            t.key = key;
            st.set_blocked(me, deadline);
            if requeue {
                st.waiters.entry(key).or_default().push(me);
            }
            let to = st.choose();
            (me, to)
        };
        self.transfer(from, to);
        let mut st = self.state.borrow_mut();
        let me = st.current;
        std::mem::take(&mut st.tasks[me].woken)
    }

    /// The running task starts a `weft_fd_wait`.
    pub(crate) fn io_begin(&self, wait: IoWait) {
        let mut st = self.state.borrow_mut();
        let me = st.current;
        st.io.insert(me, wait);
    }

    /// True when the running task's fd was forgotten since its wait began.
    pub(crate) fn io_forgotten(&self) -> bool {
        let st = self.state.borrow();
        st.io.get(&st.current).is_some_and(|w| w.forgotten)
    }

    /// The running task's `weft_fd_wait` ends.
    pub(crate) fn io_end(&self) {
        let mut st = self.state.borrow_mut();
        let me = st.current;
        st.io.remove(&me);
    }

    /// Blocks the running task in `weft_fd_wait` until the scheduler finds its fd ready,
    /// a forget or a cancellation makes it runnable, or the deadline passes.
    pub(crate) fn block_on_io(&self, call: Call, deadline: i64) {
        // Not queued on any key: nothing but the scheduler's poll, `io_forget` and
        // `poke` wakes it.
        self.block(call, 0, deadline, false);
    }

    /// `weft_fd_forget(rt, fd)`: the waits on `fd` in runtime `rt` now end with
    /// `WEFT_ECLOSED`.
    pub(crate) fn io_forget(&self, rt: usize, fd: i32) {
        let mut st = self.state.borrow_mut();
        let hit: Vec<usize> = st
            .io
            .iter_mut()
            .filter(|(_, w)| w.rt == rt && w.fd == fd)
            .map(|(&t, w)| {
                w.forgotten = true;
                t
            })
            .collect();
        for t in hit {
            st.set_runnable(t);
        }
    }

    /// Takes the running task off `key`'s queue (it gave up waiting).
    pub(crate) fn unqueue(&self, key: usize) {
        let mut st = self.state.borrow_mut();
        let me = st.current;
        if let Some(q) = st.waiters.get_mut(&key) {
            q.retain(|&t| t != me);
            if q.is_empty() {
                st.waiters.remove(&key);
            }
        }
    }

    /// Takes up to `max` waiters off `key`'s queue and makes them runnable: for one, a
    /// seeded choice among the waiters (the order of wake-ups is the scheduler's too).
    /// Returns how many it woke.
    pub(crate) fn wake(&self, key: usize, max: usize) -> usize {
        self.wake_some(key, max, true)
    }

    /// As `wake`, oldest first also for one: the order `weft_wake` and `weft_unpark`
    /// promise (a condition's signal promises no order, so there the scheduler picks).
    pub(crate) fn wake_oldest(&self, key: usize, max: usize) -> usize {
        self.wake_some(key, max, false)
    }

    fn wake_some(&self, key: usize, max: usize, seeded_one: bool) -> usize {
        let mut st = self.state.borrow_mut();
        let Some(mut q) = st.waiters.remove(&key) else { return 0 };
        let mut n = 0;
        while n < max && !q.is_empty() {
            let pick = if max == 1 && seeded_one { st.rng.below(q.len()) } else { 0 };
            let t = q.remove(pick);
            st.tasks[t].woken = true;
            st.set_runnable(t);
            n += 1;
        }
        if !q.is_empty() {
            st.waiters.insert(key, q);
        }
        n
    }

    /// Makes a blocked task runnable without taking it off its queue (a cancellation:
    /// its wait looks at the flag and gives up).
    pub(crate) fn poke(&self, index: usize) {
        let mut st = self.state.borrow_mut();
        if st.tasks[index].run == Run::Blocked {
            st.set_runnable(index);
        }
    }

    /// Runs `to` instead of `from`.
    fn transfer(&self, from: usize, to: usize) {
        if from == to {
            return;
        }
        if from == MAIN {
            self.drive();
        } else {
            let yielder = self.state.borrow().tasks[from].yielder;
            // SAFETY: the running coroutine's yielder lives at the base of its stack,
            // and `drive` on main's stack resumed it.
            unsafe { &*yielder }.suspend(());
        }
    }

    /// On main's stack: resumes the chosen coroutines until main is chosen.
    fn drive(&self) {
        loop {
            let (index, mut coro, ctx) = {
                let mut st = self.state.borrow_mut();
                let index = st.current;
                if index == MAIN {
                    return;
                }
                let t = &mut st.tasks[index];
                RUNNING.with(|r| r.set(t.fault));
                (index, t.coro.take().expect("a runnable task has a coroutine"), t.saved_ctx)
            };
            // SAFETY: the task's own context (NULL before it first ran), alive while the
            // task is.
            let previous = unsafe { HOST.context_set(ctx) };
            let result = coro.resume(());
            RUNNING.with(|r| r.set(None));
            // SAFETY: main's own context, saved just above.
            let saved = unsafe { HOST.context_set(previous) };
            let mut st = self.state.borrow_mut();
            let t = &mut st.tasks[index];
            t.saved_ctx = saved;
            match result {
                CoroutineResult::Yield(()) => t.coro = Some(coro),
                CoroutineResult::Return(()) => {
                    t.done.store(true, Relaxed);
                    t.call = Call { name: "exited", obj: Obj::None };
                    st.set_done(index);
                    drop(st);
                    stack::give_back(coro.into_stack());
                    self.wake(Sim::done_key(index), usize::MAX);
                    let mut st = self.state.borrow_mut();
                    // Nothing refers to the slot now: a handle knows its task ended
                    // from its own `done`, never from the slot.
                    st.free.push(index);
                    st.ended += 1;
                    let to = st.choose();
                    debug_assert_eq!(st.current, to);
                }
            }
        }
    }
}

impl State {
    /// PCT: task `i` drops below every other, and below each task that dropped before.
    fn drop_lowest(&mut self, i: usize) {
        if let Strategy::Pct { ref mut lowest, .. } = self.strategy {
            *lowest -= 1;
            self.tasks[i].priority = *lowest;
        }
    }

    fn new_priority(&mut self) -> i64 {
        match self.strategy {
            // Above every dropped task's priority (negative).
            Strategy::Pct { depth, .. } => (depth + (self.rng.next() >> 8)) as i64,
            Strategy::Random => 0,
        }
    }

    /// One step: picks the task to run next (virtual time advances when none can),
    /// makes it `current`, and prints it when tracing. Never returns when every task
    /// waits for ever or the step limit is passed.
    fn choose(&mut self) -> usize {
        self.step += 1;
        if self.step > self.max_steps {
            self.report(
                &format!("step limit: {} steps (WEFT_SIM_MAX_STEPS) without the program ending", self.max_steps),
                EXIT_STEP_LIMIT,
            );
        }
        let from = self.current;
        if let Strategy::Pct { ref changes, .. } = self.strategy {
            if changes.contains(&self.step) {
                // A change point: the running task drops below every other, also below
                // the tasks that yielded (it outranked them when change points took
                // 0 .. depth - 1, and a change point with only yielders beside it did
                // nothing).
                self.drop_lowest(from);
            }
        }
        // Timers already due fire too, also without a step of time: a wait whose
        // deadline had passed when it blocked ("one try") waited, before, until no
        // other task could run.
        self.advance(NOW.load(Relaxed).saturating_add(self.step_ns));
        self.wake_ready_io(0);
        let to = loop {
            if !self.runnable.is_empty() {
                break match self.strategy {
                    Strategy::Random => self.runnable[self.rng.below(self.runnable.len())],
                    Strategy::Pct { steps, .. } if self.step > PCT_FAIR_AFTER.saturating_mul(steps) => {
                        self.runnable[self.rng.below(self.runnable.len())]
                    }
                    Strategy::Pct { .. } => *self
                        .runnable
                        .iter()
                        .max_by_key(|&&i| (self.tasks[i].priority, usize::MAX - i))
                        .expect("runnable"),
                };
            }
            if self.wait_for_io() {
                continue;
            }
            let Some(&(deadline, _)) = self.timers.first() else {
                if self.io.is_empty() {
                    self.report("deadlock: every task is blocked and no deadline is pending", EXIT_DEADLOCK);
                }
                self.report(
                    &format!(
                        "deadlock: every task is blocked, no deadline is pending and no waited fd became ready in \
                         {} ms of real time (WEFT_SIM_IO_IDLE_MS)",
                        self.io_idle_ms
                    ),
                    EXIT_DEADLOCK,
                );
            };
            self.advance(NOW.load(Relaxed).max(deadline));
        };
        self.number_objects(self.tasks[from].call.obj);
        if self.trace {
            let t = &self.tasks[from];
            let n = &self.tasks[to];
            eprintln!(
                "weft sim: step {} t={} task {} \"{}\" {}{} -> task {} \"{}\"",
                self.step,
                NOW.load(Relaxed),
                t.id,
                t.name,
                t.call.name,
                self.describe(t.call.obj),
                n.id,
                n.name
            );
        }
        if let Some(watchdog) = &self.watchdog {
            let others_wait = self.runnable.len() > 1 || !self.timers.is_empty() || !self.io.is_empty();
            let name = (to != from).then(|| self.tasks[to].name.as_str());
            watchdog.published().step(self.step, self.tasks[to].id, name, others_wait);
        }
        self.current = to;
        to
    }

    /// Polls the fds of the tasks blocked in `weft_fd_wait` for up to `timeout_ms` real
    /// milliseconds (-1: for ever); those with something to report become runnable, in
    /// task order. True if any did.
    fn wake_ready_io(&mut self, timeout_ms: i64) -> bool {
        let blocked: Vec<usize> = self.io.keys().copied().filter(|&t| self.tasks[t].run == Run::Blocked).collect();
        if blocked.is_empty() {
            return false;
        }
        let ready = crate::io::poll_waits(blocked.iter().map(|t| &self.io[t]), timeout_ms as i32);
        let mut any = false;
        for (&t, ready) in blocked.iter().zip(ready) {
            if ready {
                self.set_runnable(t);
                any = true;
            }
        }
        any
    }

    /// No task can run and some wait on fds: waits in a real `poll` for one of those
    /// fds. The rule that joins real IO to virtual time:
    /// * with a deadline pending, IO gets `$WEFT_SIM_IO_GRACE_MS` of real time (at most
    ///   the virtual time left until the deadline) to arrive; if none does the clock
    ///   jumps to the deadline as it would without IO;
    /// * with none pending, IO gets `$WEFT_SIM_IO_IDLE_MS` (0: for ever), and then the run
    ///   is a deadlock: the report names the fds the tasks wait on.
    ///
    /// IO the program does to itself cannot arrive while every task waits, so neither
    /// bound changes what a seed does; they only bound the real time a run waits for IO
    /// from outside it. Virtual time does not follow real time while it waits.
    /// True if a waiter became runnable.
    fn wait_for_io(&mut self) -> bool {
        if self.io.is_empty() {
            return false;
        }
        let timeout_ms = match self.timers.first() {
            Some(&(deadline, _)) => {
                let left_ns = deadline.saturating_sub(NOW.load(Relaxed)).max(0);
                self.io_grace_ms.min(left_ns.saturating_add(999_999) / 1_000_000)
            }
            None if self.io_idle_ms == 0 => -1,
            None => self.io_idle_ms,
        };
        self.tell_watchdog_polling(true);
        let woke = self.wake_ready_io(timeout_ms);
        self.tell_watchdog_polling(false);
        woke
    }

    /// While the scheduler polls the fds, no task runs: not a stall.
    fn tell_watchdog_polling(&self, on: bool) {
        if let Some(watchdog) = &self.watchdog {
            watchdog.published().polling(on);
        }
    }

    /// Sets the clock to `now`; the tasks whose deadline it reaches become runnable.
    fn advance(&mut self, now: i64) {
        NOW.store(now, Relaxed);
        while let Some(&(deadline, i)) = self.timers.first() {
            if deadline > now {
                break;
            }
            self.set_runnable(i);
        }
    }

    fn set_runnable(&mut self, i: usize) {
        let t = &mut self.tasks[i];
        if t.run == Run::Runnable {
            return;
        }
        if t.deadline != WEFT_FOREVER {
            self.timers.remove(&(t.deadline, i));
            t.deadline = WEFT_FOREVER;
        }
        t.run = Run::Runnable;
        t.slot = self.runnable.len();
        self.runnable.push(i);
    }

    fn leave_runnable(&mut self, i: usize) {
        if self.tasks[i].run != Run::Runnable {
            return;
        }
        let slot = self.tasks[i].slot;
        self.runnable.swap_remove(slot);
        if let Some(&moved) = self.runnable.get(slot) {
            self.tasks[moved].slot = slot;
        }
    }

    fn set_blocked(&mut self, i: usize, deadline: i64) {
        self.leave_runnable(i);
        let t = &mut self.tasks[i];
        t.run = Run::Blocked;
        t.deadline = deadline;
        if deadline != WEFT_FOREVER {
            self.timers.insert((deadline, i));
        }
    }

    fn set_done(&mut self, i: usize) {
        self.leave_runnable(i);
        let t = &mut self.tasks[i];
        if t.deadline != WEFT_FOREVER {
            self.timers.remove(&(t.deadline, i));
        }
        t.run = Run::Done;
        if t.held > 0 {
            self.ended_holding.insert(t.id, t.name.clone());
        }
        self.live.remove(&i);
    }

    /// The object's number, in the order objects were first numbered.
    fn number(&self, addr: usize) -> usize {
        let mut names = self.names.borrow_mut();
        let next = names.len() + 1;
        *names.entry(addr).or_insert(next)
    }

    /// `#n`: the object's number.
    fn name(&self, addr: usize) -> String {
        format!("#{}", self.number(addr))
    }

    /// Numbers the objects of a call at its step, traced or not, in the order the
    /// trace names them: the report's numbers then do not depend on the trace.
    fn number_objects(&self, obj: Obj) {
        match obj {
            Obj::Mutex(a) | Obj::Rwlock(a) | Obj::Chan(a) | Obj::Key(a) | Obj::Cond(a, 0) => {
                self.number(a);
            }
            Obj::Cond(c, m) => {
                self.number(c);
                self.number(m);
            }
            Obj::None | Obj::Task(_) | Obj::Deadline(_) | Obj::Fd(..) => {}
        }
    }

    fn describe(&self, obj: Obj) -> String {
        match obj {
            Obj::None => String::new(),
            Obj::Mutex(m) => {
                // SAFETY: a mutex a task is blocked on or calling about is initialised.
                let owner = unsafe { crate::sync::mutex_owner(m) };
                let Some(id) = owner else {
                    return format!(" on mutex {} (free)", self.name(m));
                };
                let live = self.live.iter().map(|&i| &self.tasks[i]).find(|t| t.id == id);
                let holder = match (live, self.ended_holding.get(&id)) {
                    (Some(t), _) => format!("task {id} \"{}\"", t.name),
                    (None, Some(name)) => format!("task {id} \"{name}\", which ended holding it"),
                    (None, None) => format!("task {id}, which ended holding it"),
                };
                format!(" on mutex {} (held by {holder})", self.name(m))
            }
            Obj::Cond(c, 0) => format!(" on condition {}", self.name(c)),
            Obj::Cond(c, m) => format!(" on condition {} with mutex {}", self.name(c), self.name(m)),
            Obj::Rwlock(l) => format!(" on rwlock {}", self.name(l)),
            Obj::Chan(c) => format!(" on channel {}", self.name(c)),
            Obj::Key(k) => format!(" on address {}", self.name(k)),
            Obj::Task(id) => match self.live.iter().map(|&i| &self.tasks[i]).find(|t| t.id == id) {
                Some(t) => format!(" on task {id} \"{}\"", t.name),
                None => format!(" on task {id} (ended)"),
            },
            Obj::Deadline(d) if d == WEFT_FOREVER => " for ever".to_string(),
            Obj::Deadline(d) => format!(" until t={d}"),
            Obj::Fd(fd, events) => {
                let what = match events & (WEFT_IO_READ | WEFT_IO_WRITE) {
                    WEFT_IO_READ => " (read)",
                    WEFT_IO_WRITE => " (write)",
                    0 => "",
                    _ => " (read, write)",
                };
                format!(" on fd {fd}{what}")
            }
        }
    }

    /// "replay with WEFT_SEED=..." and the strategy's settings.
    fn replay_line(&self) -> String {
        let strategy = match self.strategy {
            Strategy::Random => String::new(),
            Strategy::Pct { depth, steps, .. } => {
                format!(" WEFT_SIM_STRATEGY=pct WEFT_SIM_PCT_DEPTH={depth} WEFT_SIM_PCT_STEPS={steps}")
            }
        };
        // Every setting that changes the run and is not the default: following the
        // line without the step's cost, say, ran another program.
        let mut settings = String::new();
        if self.step_ns != 0 {
            settings += &format!(" WEFT_SIM_STEP_NS={}", self.step_ns);
        }
        if self.max_steps != DEFAULT_MAX_STEPS {
            settings += &format!(" WEFT_SIM_MAX_STEPS={}", self.max_steps);
        }
        if self.io_grace_ms != DEFAULT_IO_GRACE_MS as i64 {
            settings += &format!(" WEFT_SIM_IO_GRACE_MS={}", self.io_grace_ms);
        }
        if self.io_idle_ms != DEFAULT_IO_IDLE_MS as i64 {
            settings += &format!(" WEFT_SIM_IO_IDLE_MS={}", self.io_idle_ms);
        }
        format!("replay with WEFT_SEED={}{strategy}{settings} WEFT_SIM_TRACE=1", self.seed)
    }

    /// Prints the report of a run that cannot go on and ends the process with `status`
    /// (C stdio flushed first, so the host's output up to here is kept; no exit
    /// handlers, which could call back into a runtime that cannot run).
    fn report(&self, why: &str, status: i32) -> ! {
        let mut out = String::new();
        let _ = writeln!(out, "weft sim: {why}");
        let _ = writeln!(
            out,
            "weft sim: seed {}, virtual time {} ns, step {}; tasks:",
            self.seed,
            NOW.load(Relaxed),
            self.step
        );
        for &i in &self.live {
            let t = &self.tasks[i];
            let what = match t.run {
                Run::Done => "exited".to_string(),
                Run::Runnable if i == self.current => format!("running in {}", t.call.name),
                Run::Runnable => format!("runnable in {}", t.call.name),
                Run::Blocked => format!("blocked in {}", t.call.name),
            };
            let _ = writeln!(out, "  task {} \"{}\": {}{}", t.id, t.name, what, self.describe(t.call.obj));
        }
        let ended = self.ended;
        if ended > 0 {
            let _ = writeln!(out, "  ({ended} other task(s) ended)");
        }
        let _ = writeln!(out, "weft sim: {}", self.replay_line());
        crate::exit::report_and_exit(&out, status)
    }
}

thread_local! {
    /// The coroutine running on this thread, for the SIGSEGV handler.
    static RUNNING: Cell<Option<stack::Running>> = const { Cell::new(None) };
}

/// For the SIGSEGV handler shared with green (async-signal-safe: one read of a
/// constant-initialised thread-local).
pub(crate) fn running_for_fault() -> Option<stack::Running> {
    RUNNING.try_with(|r| r.get()).ok().flatten()
}

/// Gives the opening thread an alternate signal stack, so that the overflow report can
/// run when a task's stack is exhausted, unless the host installed one already.
fn ensure_alt_stack() {
    // SAFETY: a query only: a NULL new stack and a zeroed out-parameter.
    let current = unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut old);
        old
    };
    if current.ss_flags & libc::SS_DISABLE != 0 {
        stack::alt_stack();
    }
}

/// `$WEFT_SIM_STATS=1`: the step count is printed when the last runtime closes, or at
/// exit for a host that never closes it.
fn stats_wanted() -> bool {
    std::env::var("WEFT_SIM_STATS").is_ok_and(|v| v == "1")
}

/// At exit, with the scheduler still live on the exiting thread (its runtime never
/// closed): the steps so far, as `close` prints them.
extern "C" fn steps_at_exit() {
    if let Some(sim) = here() {
        if let Ok(state) = sim.state.try_borrow() {
            weft_platform::stderr::line(format_args!("weft sim: steps {} (at exit, runtime not closed)", state.step));
        }
    }
}
