//! Lock-order and deadlock checks (`WEFT_CHECK_LOCK_ORDER`, `WEFT_CHECK_DEADLOCK`, or
//! `$WEFT_CHECKS`), for every platform: the runtime sees every acquisition, release and
//! join, so it keeps the two graphs itself.
//!
//! * Lock order: an edge A -> B for "held A while acquiring B by a call that can wait".
//!   The first edge that closes a cycle is reported once per pair of locks, with the
//!   first acquisition of each direction (task, backtrace). The acquisition proceeds.
//! * Deadlock: before a call blocks (a contended lock without deadline, an rwlock lock,
//!   a join), the caller's wait is recorded and the wait-for graph walked (waiter -> lock
//!   -> its holders -> what they wait for ...). A wait that would close a cycle is
//!   refused with `WEFT_EDEADLK` and reported; the other tasks of the cycle go on.
//!
//! One lock (per runtime) guards both graphs: with checks on, every acquisition made
//! while another lock is held, and every contended wait, takes it. With checks off
//! nothing here runs: the callers test `Checks::on` first.
use std::backtrace::Backtrace;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release, Ordering::SeqCst,
};

use weft_platform::fork_lock::ForkMutex;
use weft_platform::*;

use crate::ffi::callback::{host_call, may_unwind};
use crate::ffi::error::{fail, Result};
use crate::runtime::context::Context;
use crate::runtime::sync::mutex::{MutexKind, MutexObject};
use crate::runtime::sync::rwlock::RwLockObject;
use crate::runtime::sync::SyncKind;
use crate::types::{weft_check_report_fn, WEFT_CHECK_DEADLOCK, WEFT_CHECK_LOCK_ORDER};

/// The checks of one runtime.
pub(crate) struct Checks {
    flags: u32,
    report: weft_check_report_fn,
    report_ud: *mut c_void,
    graph: ForkMutex<Graph>,
    /// Bumped (under the graph lock) whenever a lock leaves the graph: the contexts'
    /// caches of known edges (`KnownEdges`) are then stale.
    departures: AtomicU64,
}

/// The order edges a context has already put in one runtime's graph, by lock address,
/// so that locks taken again in an order seen before cost no trip to the graph's lock
/// (the common case: a program takes its locks in the same few orders all the time).
/// Valid while no lock of that runtime has left the graph since (`departures`): a
/// destroyed lock's address may come back as a new node without the edges.
#[derive(Default)]
pub(crate) struct KnownEdges {
    checks: usize,
    departures: u64,
    pairs: Vec<(usize, usize)>,
}

/// Edges a context remembers at most; past that it starts over.
const KNOWN_EDGES_MAX: usize = 64;

// SAFETY: `report_ud` is the host's, made to be passed to its callback from any thread.
unsafe impl Send for Checks {}
// SAFETY: as for Send; the graph is behind its lock.
unsafe impl Sync for Checks {}

/// Where the checks learn who holds a lock: a mutex's owner token names its holder, so
/// the graph need not track mutexes (their lock and unlock stay off the graph's lock);
/// an rwlock's readers are tracked in the graph.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Holders {
    OwnerField,
    Tracked,
}

/// What a task waits for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wait {
    /// A lock for itself alone: a mutex, an rwlock's write lock.
    Lock(u64),
    /// An rwlock's read lock: it waits only for the writer that holds the lock and the
    /// writers that wait for it (new readers queue behind them), not for other readers.
    Read(u64),
    Task(u64),
}

struct Node {
    kind: &'static str,
    addr: usize,
}

/// How an edge was first seen.
struct Edge {
    task: String,
    trace: String,
}

#[derive(Default)]
struct Graph {
    next_node: u64,
    /// Live locks by address; a destroyed lock leaves, a reused address is a new node.
    by_addr: HashMap<usize, u64>,
    nodes: HashMap<u64, Node>,
    edges: HashMap<(u64, u64), Edge>,
    /// In node order (the order the locks were first seen), so that the path a report
    /// names is the same in every run of the same schedule (on sim, of the same seed).
    successors: HashMap<u64, BTreeSet<u64>>,
    /// The reverse of `successors`, so that forgetting a lock touches its own edges only
    /// (it scanned every lock's and every edge).
    predecessors: HashMap<u64, BTreeSet<u64>>,
    /// Pairs of locks whose inversion was reported (each once); a pair goes with either
    /// lock (it grew by one pair per reported pair of locks destroyed).
    reported: HashSet<(u64, u64)>,
    /// Who holds each lock (deadlock checks): context ids, one entry per hold.
    holders: HashMap<u64, Vec<u64>>,
    /// What each context waits for now, and its name for reports.
    waits: HashMap<u64, Waiting>,
}

/// A context's recorded wait.
struct Waiting {
    wait: Wait,
    name: String,
    /// The waiter's cancellation flag, for a wait that is a cancellation point (a
    /// join): once set, the waiter is on its way out (`WEFT_ECANCELED`), and no cycle
    /// runs through it. Valid while the entry is in the graph: the waiter removes it
    /// (`done_waiting`) before it returns, and its context outlives that.
    cancelled: Option<*const AtomicBool>,
}

impl Waiting {
    /// Whether the waiter still waits: not a cancellable wait whose task was cancelled.
    fn stuck(&self) -> bool {
        // SAFETY: see `cancelled`.
        self.cancelled.is_none_or(|flag| !unsafe { &*flag }.load(SeqCst))
    }
}

/// Names given with `weft_mutex_set_name` / `weft_rwlock_set_name`, by address.
static NAMES: ForkMutex<Option<HashMap<usize, CString>>> = ForkMutex::new(None);

/// The names' lock, for the fork handlers (which hold every global lock across a fork).
pub(crate) fn names_lock() -> &'static weft_platform::fork_lock::RawForkLock {
    // SAFETY: only the raw lock is handed out; the names stay behind the Mutex.
    unsafe { NAMES.raw() }
}
/// Whether any name was ever given: a destroy looks in NAMES only then.
static ANY_NAMES: AtomicBool = AtomicBool::new(false);

/// The lock at `addr` was destroyed: it loses its name.
pub(crate) fn forget_name(addr: usize) {
    if ANY_NAMES.load(Relaxed) {
        set_name(addr, None);
    }
}

/// Sets (or, with None, clears) the name reports use for the lock at `addr`.
pub(crate) fn set_name(addr: usize, name: Option<CString>) {
    ANY_NAMES.store(true, Relaxed);
    let mut names = NAMES.lock();
    let names = names.get_or_insert_with(HashMap::new);
    match name {
        Some(name) => names.insert(addr, name),
        None => names.remove(&addr),
    };
}

fn lock_label(kind: &str, addr: usize) -> String {
    match NAMES.lock().as_ref().and_then(|n| n.get(&addr)) {
        Some(name) => format!("{kind} {addr:#x} (\"{}\")", name.to_string_lossy()),
        None => format!("{kind} {addr:#x}"),
    }
}

/// How a context is shown in reports.
pub(crate) fn task_label(ctx: &Context) -> String {
    // A host thread that named itself (`weft_task_set_name`) is still no task.
    match (ctx.name(), ctx.task.is_null()) {
        (Some(name), false) => format!("task {} \"{name}\"", ctx.id),
        (None, false) => format!("task {}", ctx.id),
        (Some(name), true) => format!("thread {} \"{name}\" (not a task)", ctx.id),
        (None, true) => format!("thread {} (not a task)", ctx.id),
    }
}

/// The bits of `$WEFT_CHECKS` ("lock-order", "deadlock", "all", comma-separated).
pub(crate) fn parse_env(value: &[u8]) -> Result<u32> {
    let mut flags = 0;
    for word in value.split(|b| *b == b',').map(|w| w.trim_ascii()).filter(|w| !w.is_empty()) {
        flags |= match word {
            b"lock-order" => WEFT_CHECK_LOCK_ORDER,
            b"deadlock" => WEFT_CHECK_DEADLOCK,
            b"all" => WEFT_CHECK_LOCK_ORDER | WEFT_CHECK_DEADLOCK,
            other => fail!(
                WEFT_EINVAL,
                "$WEFT_CHECKS names an unknown check \"{}\" (known: lock-order, deadlock, all)",
                String::from_utf8_lossy(other)
            ),
        };
    }
    Ok(flags)
}

impl Checks {
    pub(crate) fn new(flags: u32, report: weft_check_report_fn, report_ud: *mut c_void) -> Checks {
        Checks { flags, report, report_ud, graph: ForkMutex::new(Graph::default()), departures: AtomicU64::new(0) }
    }

    /// The runtime closed: the graph's memory goes (a closed runtime keeps only its
    /// shell; the graph of a runtime that had seen a thousand locks kept some 400 KB
    /// after the close). Locks still held or destroyed later are simply not found.
    pub(crate) fn release(&self) {
        if !self.on() {
            return;
        }
        let mut graph = self.graph.lock();
        *graph = Graph { next_node: graph.next_node, ..Graph::default() };
        self.departures.fetch_add(1, SeqCst);
    }

    /// Any check on: the one branch the lock paths pay when checks are off.
    #[inline(always)]
    pub(crate) fn on(&self) -> bool {
        self.flags != 0
    }

    fn lock_order(&self) -> bool {
        self.flags & WEFT_CHECK_LOCK_ORDER != 0
    }

    fn deadlock(&self) -> bool {
        self.flags & WEFT_CHECK_DEADLOCK != 0
    }

    /// A lock was initialised at `addr`: a new node.
    pub(crate) fn created(&self, kind: &'static str, addr: usize) {
        let mut g = self.graph.lock();
        g.next_node += 1;
        let id = g.next_node;
        if let Some(old) = g.by_addr.insert(addr, id) {
            g.forget(old);
            self.departures.fetch_add(1, Release);
        }
        g.nodes.insert(id, Node { kind, addr });
    }

    /// The lock at `addr` was destroyed: its node and edges leave the graph.
    pub(crate) fn destroyed(&self, addr: usize) {
        let mut g = self.graph.lock();
        if let Some(id) = g.by_addr.remove(&addr) {
            g.forget(id);
            self.departures.fetch_add(1, Release);
        }
    }

    /// `ctx` took the lock at `addr`. `ordered`: by a call that can wait (its order with
    /// the locks held counts); a try-lock cannot deadlock and adds no edge into the lock.
    pub(crate) fn acquired(&self, ctx: &Context, addr: usize, ordered: bool, holders: Holders) {
        // The held list keeps addresses, so that a lock taken while nothing else is
        // held costs no trip to the graph when only the lock order is checked.
        let edges = ordered && self.lock_order() && ctx.held_locks().iter().any(|&h| h != addr);
        let tracked = self.deadlock() && holders == Holders::Tracked;
        if edges && !tracked && self.all_known(ctx, addr) {
            ctx.held_locks().push(addr);
            return;
        }
        if edges || tracked {
            let mut reports = Vec::new();
            // The held locks of this graph: only their edges are remembered (a held lock
            // of another runtime has none here, and a pair remembered with it hid the
            // edge once its memory became a lock of this runtime).
            let mut in_graph = Vec::new();
            {
                let mut g = self.graph.lock();
                let Some(&node) = g.by_addr.get(&addr) else { return };
                if edges {
                    for &held in ctx.held_locks().iter() {
                        let Some(&from) = g.by_addr.get(&held) else { continue };
                        in_graph.push(held);
                        if from != node {
                            reports.extend(g.add_edge(from, node, ctx));
                        }
                    }
                }
                if tracked {
                    g.holders.entry(node).or_default().push(ctx.id);
                }
            }
            for report in reports {
                self.emit(&report);
            }
            if edges {
                self.remember(ctx, addr, &in_graph);
            }
        }
        ctx.held_locks().push(addr);
    }

    /// Whether every edge from a lock `ctx` holds into `addr` is one it put in the graph
    /// already (so adding them again would change nothing and report nothing).
    fn all_known(&self, ctx: &Context, addr: usize) -> bool {
        let known = ctx.known_edges();
        let departures = self.departures.load(Acquire);
        if known.checks != self as *const Checks as usize || known.departures != departures {
            *known = KnownEdges { checks: self as *const Checks as usize, departures, pairs: Vec::new() };
            return false;
        }
        ctx.held_locks().iter().filter(|&&h| h != addr).all(|&h| known.pairs.contains(&(h, addr)))
    }

    /// Records the edges from `held` (locks `ctx` holds, of this graph) into `addr`,
    /// just put in the graph.
    fn remember(&self, ctx: &Context, addr: usize, held: &[usize]) {
        let known = ctx.known_edges();
        let departures = self.departures.load(Acquire);
        if known.checks != self as *const Checks as usize || known.departures != departures {
            // The edges just added involve only locks the context holds, which cannot
            // leave the graph meanwhile: they are valid under the departures seen now.
            *known = KnownEdges { checks: self as *const Checks as usize, departures, pairs: Vec::new() };
        }
        for &h in held.iter().filter(|&&h| h != addr) {
            if !known.pairs.contains(&(h, addr)) {
                if known.pairs.len() == KNOWN_EDGES_MAX {
                    known.pairs.clear();
                }
                known.pairs.push((h, addr));
            }
        }
    }

    /// The common case of `acquired` for a mutex taken by a call that could wait, with
    /// no trip to the graph: true if it was enough (no other lock held, every order edge
    /// into the lock known already, or only the deadlock check on); false, with nothing
    /// done, if `acquired` must run.
    #[inline]
    pub(crate) fn acquired_quickly(&self, ctx: &Context, addr: usize) -> bool {
        if self.lock_order() && ctx.held_locks().iter().any(|&h| h != addr) && !self.all_known(ctx, addr) {
            return false;
        }
        ctx.held_locks().push(addr);
        true
    }

    /// `ctx` released the lock at `addr` (one hold of it).
    pub(crate) fn released(&self, ctx: &Context, addr: usize, holders: Holders) {
        let held = ctx.held_locks();
        // Locks are mostly released in the reverse order of their taking: the last one
        // held goes without a search or a shift of the rest.
        if held.last() == Some(&addr) {
            held.pop();
        } else if let Some(at) = held.iter().rposition(|&a| a == addr) {
            held.remove(at);
        }
        if self.deadlock() && holders == Holders::Tracked {
            let mut g = self.graph.lock();
            let Some(&node) = g.by_addr.get(&addr) else { return };
            if let Some(holders) = g.holders.get_mut(&node) {
                if let Some(at) = holders.iter().rposition(|&c| c == ctx.id) {
                    holders.swap_remove(at);
                }
            }
        }
    }

    /// `ctx` is about to wait for the lock at `addr` (`shared`: an rwlock's read lock):
    /// refused with `WEFT_EDEADLK` if that closes a cycle of waits. Pair with
    /// `done_waiting`.
    pub(crate) fn wait_for_lock(&self, ctx: &Context, addr: usize, shared: bool) -> Result<()> {
        if !self.deadlock() {
            return Ok(());
        }
        let node = self.graph.lock().by_addr.get(&addr).copied();
        match node {
            Some(node) if shared => self.wait(ctx, Wait::Read(node)),
            Some(node) => self.wait(ctx, Wait::Lock(node)),
            None => Ok(()),
        }
    }

    /// `ctx`, which holds the mutex at `addr`, is about to wait on a condition with it:
    /// whatever ends the wait, the waiter takes the mutex back before it returns, so it
    /// waits for the mutex's next holder to let go. Recorded without a look for a cycle
    /// (the caller holds the mutex still, and no walk from another waiter counts a
    /// context that waits for its own lock); a lock that closes a cycle through the
    /// waiter finds it. `done_waiting` once the wait returned.
    pub(crate) fn waiting_in_cond(&self, ctx: &Context, addr: usize) {
        if !self.deadlock() {
            return;
        }
        let mut g = self.graph.lock();
        if let Some(node) = g.by_addr.get(&addr).copied() {
            g.waits.insert(ctx.id, Waiting { wait: Wait::Lock(node), name: task_label(ctx), cancelled: None });
        }
    }

    /// `ctx` is about to wait for the task whose context id is `task`.
    /// A join is a cancellation point: a cancelled caller does not wait (the join
    /// returns `WEFT_ECANCELED`), and one cancelled while it waits leaves the wait.
    pub(crate) fn wait_for_task(&self, ctx: &Context, task: u64) -> Result<()> {
        if !self.deadlock() {
            return Ok(());
        }
        self.wait(ctx, Wait::Task(task))
    }

    fn wait(&self, ctx: &Context, wait: Wait) -> Result<()> {
        let cancellable = matches!(wait, Wait::Task(_));
        let cycle = {
            let mut g = self.graph.lock();
            // Read under the graph's lock: a cancel that comes later is seen by the
            // walks through this wait (`Waiting::stuck`).
            if cancellable && ctx.is_cancelled() {
                return Ok(());
            }
            match g.cycle_from(ctx.id, &task_label(ctx), wait) {
                Some(cycle) => Some(cycle),
                None => {
                    let cancelled = cancellable.then_some(&ctx.cancelled as *const AtomicBool);
                    g.waits.insert(ctx.id, Waiting { wait, name: task_label(ctx), cancelled });
                    None
                }
            }
        };
        let Some(cycle) = cycle else { return Ok(()) };
        let report = format!(
            "weft: deadlock\n  {} would wait forever; the cycle of waits:\n{}\n  the call returns WEFT_EDEADLK; the others keep waiting\n",
            task_label(ctx),
            cycle
        );
        self.emit(&report);
        fail!(WEFT_EDEADLK, "this wait would close a cycle of waits (a deadlock):\n{cycle}")
    }

    /// The wait recorded by `wait_for_lock` / `wait_for_task` ended (however).
    pub(crate) fn done_waiting(&self, ctx: &Context) {
        if self.deadlock() {
            self.graph.lock().waits.remove(&ctx.id);
        }
    }

    fn emit(&self, report: &str) {
        match (self.report, CString::new(report.replace('\0', "\\0"))) {
            (Some(callback), Ok(text)) => {
                let callback = may_unwind!(callback, fn(*const c_char, *mut c_void));
                // SAFETY: the host's callback, with a string valid for the call.
                host_call("the on_check_report hook", || unsafe { callback(text.as_ptr(), self.report_ud) })
            }
            _ => eprint!("{report}"),
        }
    }
}

impl Graph {
    fn forget(&mut self, id: u64) {
        self.nodes.remove(&id);
        self.holders.remove(&id);
        for to in self.successors.remove(&id).unwrap_or_default() {
            self.edges.remove(&(id, to));
            if let Some(preds) = self.predecessors.get_mut(&to) {
                preds.remove(&id);
            }
        }
        for from in self.predecessors.remove(&id).unwrap_or_default() {
            self.edges.remove(&(from, id));
            if let Some(succ) = self.successors.get_mut(&from) {
                succ.remove(&id);
            }
        }
        if !self.reported.is_empty() {
            self.reported.retain(|&(a, b)| a != id && b != id);
        }
    }

    fn label(&self, id: u64) -> String {
        match self.nodes.get(&id) {
            Some(n) => lock_label(n.kind, n.addr),
            None => format!("lock #{id}"),
        }
    }

    /// Adds `from -> to`; the report if this edge is new and closes a cycle not reported.
    fn add_edge(&mut self, from: u64, to: u64, ctx: &Context) -> Option<String> {
        if self.edges.contains_key(&(from, to)) {
            return None;
        }
        self.edges.insert((from, to), Edge { task: task_label(ctx), trace: host_frames(&Backtrace::force_capture()) });
        self.successors.entry(from).or_default().insert(to);
        self.predecessors.entry(to).or_default().insert(from);
        let pair = (from.min(to), from.max(to));
        if self.reported.contains(&pair) || !self.reaches(to, from) {
            return None;
        }
        self.reported.insert(pair);
        let path = self.path(to, from).unwrap_or_default();
        let back = self.edges.get(&(to, path.get(1).copied().unwrap_or(from)));
        let new = &self.edges[&(from, to)];
        let mut report = format!(
            "weft: lock-order inversion\n  {} takes {} while holding {},\n  but the opposite order was seen before: {}\n",
            new.task,
            self.label(to),
            self.label(from),
            path.iter().map(|&n| self.label(n)).collect::<Vec<_>>().join(" then ")
        );
        if let Some(back) = back {
            report.push_str(&format!(
                "  first {} -> {} ({}):\n{}",
                self.label(to),
                self.label(path.get(1).copied().unwrap_or(from)),
                back.task,
                back.trace
            ));
        }
        report.push_str(&format!("  first {} -> {} ({}):\n{}", self.label(from), self.label(to), new.task, new.trace));
        Some(report)
    }

    fn reaches(&self, from: u64, to: u64) -> bool {
        self.path(from, to).is_some()
    }

    /// A path of edges from `from` to `to` (both included), if there is one.
    fn path(&self, from: u64, to: u64) -> Option<Vec<u64>> {
        let mut parent: HashMap<u64, u64> = HashMap::new();
        let mut stack = vec![from];
        let mut seen = HashSet::from([from]);
        while let Some(n) = stack.pop() {
            if n == to {
                let mut path = vec![to];
                let mut at = to;
                while at != from {
                    at = parent[&at];
                    path.push(at);
                }
                path.reverse();
                return Some(path);
            }
            for &next in self.successors.get(&n).into_iter().flatten() {
                if seen.insert(next) {
                    parent.insert(next, n);
                    stack.push(next);
                }
            }
        }
        None
    }

    /// If `waiter` waiting for `wait` closes a cycle of waits, its description: one
    /// line per wait along the cycle.
    fn cycle_from(&self, waiter: u64, waiter_name: &str, wait: Wait) -> Option<String> {
        let mut steps = Vec::new();
        let mut seen = HashSet::new();
        let ends = (waiter, waiter_name);
        self.walk(ends, waiter_name.to_string(), wait, &mut steps, &mut seen)
            .then(|| steps.iter().map(|s| format!("    {s}")).collect::<Vec<_>>().join("\n"))
    }

    /// Depth-first along "who waits for what, held by whom" (bounded: a chain of more
    /// than MAX_CHAIN waits is not followed). With a stack of its own, not recursion: a
    /// frame of the recursive walk took some 430 bytes, and a chain of 135 waiting tasks
    /// overflowed the 64 KiB stack of the task whose wait was checked.
    fn walk(
        &self,
        ends: (u64, &str),
        who: String,
        wait: Wait,
        steps: &mut Vec<String>,
        seen: &mut HashSet<u64>,
    ) -> bool {
        /// One waiter on the chain: its line's start and the contexts it waits for.
        struct Frame<'a> {
            who: String,
            what: String,
            next: Vec<(u64, &'a str)>,
            /// The next of `next` to follow; the step of the one before is on `steps`.
            at: usize,
        }
        const MAX_CHAIN: usize = 10_000;
        let (waiter, waiter_name) = ends;
        let frame = |who: String, wait: Wait| {
            let (what, next): (String, Vec<(u64, &str)>) = match wait {
                Wait::Lock(node) => (
                    format!("waits for {}", self.label(node)),
                    self.holders_of(node).into_iter().map(|c| (c, "held by")).collect(),
                ),
                Wait::Read(node) => (format!("waits to read {}", self.label(node)), self.read_blockers(node)),
                Wait::Task(task) => (format!("joins task {task}"), vec![(task, "which is")]),
            };
            Frame { who, what, next, at: 0 }
        };
        let mut stack = vec![frame(who, wait)];
        while let Some(top) = stack.last_mut() {
            if top.at > 0 {
                // The chain through the last one followed closed no cycle.
                steps.pop();
            }
            let Some(&(ctx, verb)) = top.next.get(top.at) else {
                stack.pop();
                continue;
            };
            top.at += 1;
            let holder = if ctx == waiter { waiter_name.to_string() } else { self.context_name(ctx) };
            steps.push(format!("{} {}, {verb} {holder}", top.who, top.what));
            if ctx == waiter {
                return true;
            }
            if stack.len() < MAX_CHAIN && seen.insert(ctx) {
                if let Some(next) = self.waits.get(&ctx).filter(|w| w.stuck()) {
                    let deeper = frame(holder, next.wait);
                    stack.push(deeper);
                }
            }
        }
        false
    }

    /// Who a reader of rwlock `node` waits for: its writer (the object's writer field)
    /// and the writers waiting for it.
    fn read_blockers(&self, node: u64) -> Vec<(u64, &'static str)> {
        let mut blockers = Vec::new();
        if let Some(n) = self.nodes.get(&node) {
            // SAFETY: a node in the graph is a live rwlock (see `holders_of`); the writer
            // field is atomic.
            let writer = unsafe { &*(n.addr as *const RwLockObject) }.writer();
            if writer != 0 {
                blockers.push((writer, "held for writing by"));
            }
        }
        let mut writers: Vec<u64> =
            self.waits.iter().filter(|(_, w)| w.wait == Wait::Lock(node)).map(|(&ctx, _)| ctx).collect();
        writers.sort_unstable();
        blockers.extend(writers.into_iter().map(|ctx| (ctx, "queued behind the writer")));
        blockers
    }

    /// Who holds lock `node`: a mutex's owner field, or the tracked holders.
    fn holders_of(&self, node: u64) -> Vec<u64> {
        match self.nodes.get(&node) {
            Some(n) if n.kind == MutexKind::KIND => {
                // SAFETY: a node in the graph is a live mutex: a destroy takes it out,
                // under the graph lock the caller holds, before the host may reuse the
                // memory; the owner field is atomic.
                let owner = unsafe { &*(n.addr as *const MutexObject) }.owner();
                if owner == 0 {
                    Vec::new()
                } else {
                    vec![owner]
                }
            }
            _ => self.holders.get(&node).cloned().unwrap_or_default(),
        }
    }

    fn context_name(&self, ctx: u64) -> String {
        self.waits.get(&ctx).map_or_else(|| format!("context {ctx}"), |w| w.name.clone())
    }
}

/// The host's part of a backtrace: from the weft function it called (`weft_...`) on,
/// without the frames of weft's and Rust's own machinery, at most 12 frames. A fast path
/// that ended in a tail call left no frame of the function the host called (release
/// builds): the trace then starts at the host's caller (it started at the thread's
/// start, past every frame of the host, when it looked for that function's frame).
fn host_frames(trace: &Backtrace) -> String {
    let text = trace.to_string();
    let mut frames: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let starts_frame = trimmed.split_once(": ").is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
        match frames.last_mut() {
            Some(frame) if !starts_frame => frame.push(trimmed),
            _ => frames.push(vec![trimmed.split_once(": ").map_or(trimmed, |(_, symbol)| symbol)]),
        }
    }
    let internal = |symbol: &str| {
        ["weft::", "std::", "core::", "<core::", "<alloc::", "alloc::", "__rust", "<std::"]
            .iter()
            .any(|p| symbol.starts_with(p))
    };
    // Below the host's frames: how its task started (the plugin's crates, the
    // coroutine library), which is not the host's code either.
    let task_start = |symbol: &str| {
        ["weft_", "<weft_", "corosensei::", "<corosensei::", "stacker::"].iter().any(|p| symbol.starts_with(p))
            && symbol.contains("::")
    };
    // Weft's own crates (`weft_native::...`) above the host are machinery too; the
    // exported function the host called (`weft_mutex_lock`) is the first frame shown.
    let machinery = |symbol: &str| {
        internal(symbol) || symbol.starts_with("<weft") || symbol.starts_with("weft_") && symbol.contains("::")
    };
    let shown: Vec<String> = frames
        .iter()
        .skip_while(|f| machinery(f[0]))
        .filter(|f| !internal(f[0]) && !task_start(f[0]))
        .take(12)
        .map(|f| f.join(" "))
        .collect();
    if shown.is_empty() {
        return "      (no backtrace: build with debug info, or set RUST_BACKTRACE=1)\n".into();
    }
    shown.iter().map(|l| format!("      {l}\n")).collect()
}

/// The flags a runtime opens with: the config's, merged with `$WEFT_CHECKS`.
pub(crate) fn flags_for(config_flags: u32, env: Option<Vec<u8>>) -> Result<u32> {
    let known = WEFT_CHECK_LOCK_ORDER | WEFT_CHECK_DEADLOCK;
    if config_flags & !known != 0 {
        fail!(WEFT_EINVAL, "unknown weft_config_t.flags 0x{:x}", config_flags & !known);
    }
    Ok(config_flags | env.map(|v| parse_env(&v)).transpose()?.unwrap_or(0))
}

/// A C string for a name given by the host (copied), or None for NULL.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
pub(crate) unsafe fn copy_name(name: *const c_char) -> Option<CString> {
    // SAFETY: see above.
    (!name.is_null()).then(|| unsafe { CStr::from_ptr(name) }.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_names_the_checks() {
        assert_eq!(parse_env(b"lock-order").unwrap(), WEFT_CHECK_LOCK_ORDER);
        assert_eq!(parse_env(b" deadlock , lock-order").unwrap(), WEFT_CHECK_LOCK_ORDER | WEFT_CHECK_DEADLOCK);
        assert_eq!(parse_env(b"all").unwrap(), WEFT_CHECK_LOCK_ORDER | WEFT_CHECK_DEADLOCK);
        assert_eq!(parse_env(b"").unwrap(), 0);
        let e = parse_env(b"races").unwrap_err();
        assert!(e.detail.contains("unknown check \"races\""), "{}", e.detail);
        assert_eq!(flags_for(0, Some(b"deadlock".to_vec())).unwrap(), WEFT_CHECK_DEADLOCK);
        assert!(flags_for(0x80, None).is_err());
    }

    /// `from -> to` in both directions of the graph, as `add_edge` puts it.
    fn link(g: &mut Graph, from: u64, to: u64) {
        g.successors.entry(from).or_default().insert(to);
        g.predecessors.entry(to).or_default().insert(from);
    }

    #[test]
    fn paths_are_found_through_the_edges() {
        let mut g = Graph::default();
        for (a, b) in [(1, 2), (2, 3), (3, 4)] {
            link(&mut g, a, b);
        }
        assert_eq!(g.path(1, 4), Some(vec![1, 2, 3, 4]));
        assert!(g.path(4, 1).is_none());
        g.forget(3);
        assert!(g.path(1, 4).is_none());
    }

    #[test]
    fn a_forgotten_lock_leaves_nothing_behind() {
        // A lock destroyed after its inversion was reported left the reported pair
        // behind for good: 29 bytes a pair, one pair per reported pair destroyed.
        let mut g = Graph::default();
        for (a, b) in [(1, 2), (2, 1), (2, 3)] {
            link(&mut g, a, b);
        }
        g.reported.insert((1, 2));
        g.forget(2);
        assert!(g.reported.is_empty());
        assert!(g.successors.values().all(|s| !s.contains(&2)));
        assert!(g.predecessors.values().all(|p| !p.contains(&2)));
        assert!(!g.successors.contains_key(&2) && !g.predecessors.contains_key(&2));
        assert!(g.path(1, 3).is_none());
    }

    #[test]
    fn of_several_paths_every_graph_names_the_same() {
        // 1 -> {2, 3, 4, 5} -> 6, built afresh each time: a hash set's order changes
        // from one set to the next, and so did the path a lock-order report named (on
        // sim, from one run of a seed to the next).
        let path = || {
            let mut g = Graph::default();
            for mid in 2..=5 {
                link(&mut g, 1, mid);
                link(&mut g, mid, 6);
            }
            g.path(1, 6).expect("a path")
        };
        let first = path();
        assert!((0..20).all(|_| path() == first));
    }
}
