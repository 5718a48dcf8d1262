//! Channels. A buffered channel (a bound of at least 1, or unbounded) keeps its elements
//! in a lock-free buffer (`chan/buffer.rs`: crossbeam-channel's array, list, and a bare
//! counter for 0-byte elements), so that a send or receive that can complete at once
//! touches no lock. A rendezvous channel has no buffer: every element is handed from a
//! sender straight to a receiver, as in Go's `hchan`. Each channel also has one lock and
//! two queues of waiting calls, used only by calls that must wait and by whoever
//! completes them.
//!
//! A waiter is a call blocked on the channel: a pointer to its buffer and to a [`Sel`],
//! the decision word shared by every case of one waiting call (one case for a send or a
//! receive, one per case for a select). Whoever completes a waiter first claims its
//! `Sel` (WAITING -> CLAIMED), so at most one case of a select ever completes; then,
//! holding the channel lock, it copies the element to or from the waiter's buffer (on a
//! rendezvous channel straight from its own; on a buffered one by popping into it or
//! pushing from it), publishes DONE and wakes the waiter. A waiter that times out or
//! is cancelled tries WAITING -> ABORTED; if that fails, its operation was completed and
//! it reports that instead, so an element handed over is never lost.
//!
//! Buffered channels: each queue has a flag, set under the lock while the queue is not
//! empty. A call that pushes or pops without the lock then reads the other side's flag
//! and, if set, takes the lock to "pump": serve the queued waiters, oldest first, for as
//! long as the buffer lets their operations complete. A call about to wait queues
//! itself, sets its flag and pumps too (which checks the buffer again): either its
//! check sees the other side's push or pop, or that side sees its flag (both SeqCst), so
//! a wake-up is never lost. The pump claims a waiter only after seeing that its
//! operation can complete; when a lock-free call took the element or the room first,
//! a single send or receive is put back to WAITING (only this channel's lock holders
//! claim it) and keeps its place, a select is told to try again (RETRY) since other
//! channels may have skipped it meanwhile. A sender that finds senders queued queues
//! behind them, so that senders blocked on a full channel complete in the order they
//! blocked.
//!
//! Waiters and their `Sel` live on the waiting caller's stack. The queues hold raw
//! pointers to them, read only under the channel's lock; the caller takes them out of
//! every queue (under the locks) before returning, except for the waiter the completer
//! already popped. The completer touches neither after publishing DONE: it wakes the
//! waiter by address (a stale wake-up is harmless, every waiter loops).
//!
//! A select first tries its cases in a random order (or in array order) as single calls
//! would; if none completes, it locks its channels in address order (each once), tries
//! again, and otherwise queues one waiter per case.
mod array;
mod buffer;
mod list;

use std::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release, Ordering::SeqCst,
};

use lock_api::RawMutex as _;
use smallvec::SmallVec;
use weft_platform::fork_lock::RawForkLock;
use weft_platform::parking::watch;
use weft_platform::*;

use crate::clock;
use crate::wait::{self, Wake};
use crate::HOST;
use buffer::{copy_elem, Backoff, Buffer, CachePadded, Pop, Push};

const WAITING: usize = 0;
const CLAIMED: usize = 1;
const ABORTED: usize = 2;
/// `DONE + OUTCOMES * case + how`: decided for case `case`, `how` one of the `HOW_*`.
const DONE: usize = 3;
const OUTCOMES: usize = 3;
/// Completed.
const HOW_OK: usize = 0;
/// Completed by a close: nothing taken or delivered.
const HOW_CLOSED: usize = 1;
/// Nothing done; a select must try its cases again (see the module comment).
const HOW_RETRY: usize = 2;

/// The decision word of one waiting call (see the module comment).
struct Sel {
    state: AtomicUsize,
    /// A select: other channels' completers may claim it too.
    select: bool,
}

impl Sel {
    fn new(select: bool) -> Sel {
        Sel { state: AtomicUsize::new(WAITING), select }
    }

    fn key(&self) -> usize {
        self as *const Sel as usize
    }

    /// The completer's claim; only one ever succeeds, and not after an abort.
    fn claim(&self) -> bool {
        self.state.compare_exchange(WAITING, CLAIMED, Acquire, Relaxed).is_ok()
    }

    /// Gives a claimed single call back to waiting (its channel's lock held: nobody
    /// else can have seen the claim).
    fn unclaim(&self) {
        debug_assert!(!self.select);
        self.state.store(WAITING, Release);
    }

    /// Publishes the decision of a claimed call and returns the key to wake. The
    /// waiter may return at once: the caller must not touch it afterwards.
    fn finish(&self, case: usize, how: usize) -> usize {
        let key = self.key();
        self.state.store(DONE + OUTCOMES * case + how, Release);
        key
    }
}

/// One case of a waiting call, queued on its channel.
struct Waiter {
    sel: *const Sel,
    /// Send: the element to take. Receive: where to put it.
    buf: *mut u8,
    case: usize,
}

type Queue = VecDeque<*const Waiter>;

/// Keys of waiters to wake once the locks are released.
type Keys = SmallVec<[usize; 8]>;

fn wake(keys: Keys) {
    for key in keys {
        wait::wake_one(key);
    }
}

/// A channel's waiting calls; only touched under its lock.
struct Queues {
    sendq: Queue,
    recvq: Queue,
    /// Rendezvous channels only (a buffer keeps its own closed mark).
    closed: bool,
}

impl Queues {
    fn of(&mut self, send: bool) -> &mut Queue {
        if send {
            &mut self.sendq
        } else {
            &mut self.recvq
        }
    }
}

/// The lock, the queues and the flags that say, without the lock, whether each queue
/// holds waiters; on a cache line of their own, apart from the buffer's head and tail.
struct Waiters {
    lock: RawForkLock,
    send_waiting: AtomicBool,
    recv_waiting: AtomicBool,
    /// Watches in a row that nobody answered, of the calls that waited on this channel
    /// (`parking::watch`; a select keeps it on the first of its channels by address).
    unanswered: AtomicU32,
    queues: UnsafeCell<Queues>,
}

/// A native channel; `*mut weft_plat_chan_t` is a `*mut Chan`.
struct Chan {
    /// None for a rendezvous channel.
    buffer: Option<Buffer>,
    elem: usize,
    waiters: CachePadded<Waiters>,
}

// SAFETY: `queues` (and the waiters it points to) is only touched under `lock`, by
// whichever thread holds it; the buffer is made for concurrent use.
unsafe impl Send for Chan {}
// SAFETY: shared use goes through `lock` (the queues) or the buffer's lock-free protocol;
// everything else is atomic or immutable.
unsafe impl Sync for Chan {}

impl Chan {
    /// # Safety
    /// `ch` was made by `chan_new` and is not freed while the reference is used.
    unsafe fn from<'a>(ch: *mut weft_plat_chan_t) -> &'a Chan {
        // SAFETY: `chan_new` made `ch` from a boxed `Chan`, still live (the caller's
        // contract).
        unsafe { &*(ch as *const Chan) }
    }

    fn lock(&self) -> Locked<'_> {
        self.waiters.lock.lock();
        Locked(self)
    }

    /// # Safety
    /// The lock is held, the reference does not outlive it, and no other reference to
    /// the queues is in use meanwhile.
    #[allow(clippy::mut_from_ref)]
    unsafe fn queues(&self) -> &mut Queues {
        // SAFETY: the queues are only touched under the lock, which the caller holds,
        // through this one reference (the caller's contract).
        unsafe { &mut *self.waiters.queues.get() }
    }

    /// The flag of the senders' (or receivers') queue.
    fn waiting(&self, send: bool) -> &AtomicBool {
        if send {
            &self.waiters.send_waiting
        } else {
            &self.waiters.recv_waiting
        }
    }

    /// Makes the flags say what the queues hold. Lock held.
    fn update_flags(&self, queues: &Queues) {
        for (flag, queue) in [(&self.waiters.send_waiting, &queues.sendq), (&self.waiters.recv_waiting, &queues.recvq)]
        {
            let waiting = !queue.is_empty();
            // Only lock holders store: a relaxed load sees the last store.
            if flag.load(Relaxed) != waiting {
                flag.store(waiting, SeqCst);
            }
        }
    }
}

struct Locked<'a>(&'a Chan);

impl Locked<'_> {
    fn queues(&mut self) -> &mut Queues {
        // SAFETY: the lock is held for the guard's life; `&mut self` keeps it unique.
        unsafe { self.0.queues() }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: locked by `Chan::lock`.
        unsafe { self.0.waiters.lock.unlock() }
    }
}

fn no_memory() -> weft_status_t {
    HOST.fail(WEFT_ENOMEM, "an unbounded channel could not grow its buffer")
}

// ---- rendezvous channels -------------------------------------------------------------

/// Pops the first waiter of `queue` that can still be claimed, claiming it; waiters of
/// calls already decided (completed elsewhere, or given up) are dropped on the way.
///
/// # Safety
/// `queue` is a queue of a channel whose lock is held (queued waiters are alive while
/// they are queued). The waiter returned is claimed: it stays alive until the caller
/// publishes its decision (`Sel::finish`), after which the caller must not touch it.
unsafe fn claim_first<'a>(queue: &mut Queue) -> Option<&'a Waiter> {
    while let Some(waiter) = queue.pop_front() {
        // SAFETY: it was queued until just now, under the lock the caller holds; its
        // owner takes it out of the queue under that lock before returning, so it is
        // alive here.
        let waiter = unsafe { &*waiter };
        // SAFETY: a waiter's `Sel` lives on the same stack frame as the waiter and
        // outlives it.
        if unsafe { &*waiter.sel }.claim() {
            // A claimed call waits for DONE before returning: the waiter stays alive
            // until the caller finishes it.
            return Some(waiter);
        }
    }
    None
}

/// A rendezvous send or receive that does not wait: a hand-off to or from a queued
/// partner. Lock held. None when nobody waits on the other side.
///
/// # Safety
/// `chan`'s lock is held and `queues` are its queues; `buf` points to `chan.elem`
/// bytes, readable for a send and writable for a receive, apart from any waiter's.
unsafe fn rendezvous_attempt(
    chan: &Chan,
    queues: &mut Queues,
    buf: *mut u8,
    send: bool,
    keys: &mut Keys,
) -> Option<weft_status_t> {
    if send && queues.closed {
        return Some(WEFT_ECLOSED);
    }
    // SAFETY: a queue of `chan`, whose lock is held; the partner is finished below and
    // not touched afterwards.
    if let Some(partner) = unsafe { claim_first(queues.of(!send)) } {
        if send {
            // SAFETY: `buf` covers `chan.elem` readable bytes (the caller's contract); a
            // queued receiver's buffer covers `chan.elem` writable bytes and stays valid
            // while its call, claimed, waits for DONE.
            unsafe { copy_elem(buf, partner.buf, chan.elem) };
        } else {
            // SAFETY: a queued sender's buffer covers `chan.elem` readable bytes and stays
            // valid while its call, claimed, waits for DONE; `buf` covers `chan.elem`
            // writable bytes (the caller's contract).
            unsafe { copy_elem(partner.buf, buf, chan.elem) };
        }
        // SAFETY: the claimed partner's `Sel` is alive until DONE is published here;
        // neither is touched afterwards.
        keys.push(unsafe { &*partner.sel }.finish(partner.case, HOW_OK));
        return Some(WEFT_OK);
    }
    if queues.closed {
        return Some(WEFT_ECLOSED);
    }
    None
}

// ---- buffered channels ---------------------------------------------------------------

/// Completes the waiters at the front of `queue` (senders if `send`) for as long as the
/// buffer lets their operations complete; true if any was. Lock held.
///
/// # Safety
/// `buffer` and `queue` (its senders' if `send`, else its receivers') belong to one
/// channel, whose lock is held.
unsafe fn serve(buffer: &Buffer, queue: &mut Queue, send: bool, keys: &mut Keys) -> bool {
    let mut served = false;
    while let Some(&front) = queue.front() {
        let ready = if send { buffer.push_ready() } else { buffer.pop_ready() };
        if !ready {
            break;
        }
        // SAFETY: queued under the lock the caller holds; its owner takes it out under
        // that lock before returning, so it is alive here.
        let waiter = unsafe { &*front };
        // SAFETY: a waiter's `Sel` lives on the same stack frame as the waiter and
        // outlives it.
        let sel = unsafe { &*waiter.sel };
        if !sel.claim() {
            queue.pop_front();
            continue;
        }
        let how = if send {
            // SAFETY: a queued sender's buffer covers the channel's `elem_size` readable
            // bytes, apart from the buffer's, and stays valid while its call, claimed,
            // waits for a decision.
            match unsafe { buffer.push(waiter.buf) } {
                Push::Done => Some(HOW_OK),
                Push::Closed => Some(HOW_CLOSED),
                Push::Full | Push::NoMemory => None,
            }
        } else {
            // SAFETY: a queued receiver's buffer covers the channel's `elem_size` writable
            // bytes, apart from the buffer's, and stays valid while its call, claimed,
            // waits for a decision.
            match unsafe { buffer.pop(waiter.buf) } {
                Pop::Done => Some(HOW_OK),
                Pop::Closed => Some(HOW_CLOSED),
                Pop::Empty => None,
            }
        };
        match how {
            Some(how) => {
                queue.pop_front();
                keys.push(sel.finish(waiter.case, how));
                served = true;
            }
            // A lock-free call took the room or the element since the check.
            None if sel.select => {
                queue.pop_front();
                keys.push(sel.finish(waiter.case, HOW_RETRY));
                break;
            }
            None => {
                sel.unclaim();
                break;
            }
        }
    }
    served
}

/// Serves both queues until neither can move, then updates the flags. Lock held.
///
/// # Safety
/// `chan`'s lock is held; `buffer` is its buffer and `queues` its queues.
unsafe fn pump(chan: &Chan, buffer: &Buffer, queues: &mut Queues, keys: &mut Keys) {
    loop {
        // SAFETY: `chan`'s buffer and senders' queue, its lock held (the caller's contract).
        let senders = !queues.sendq.is_empty() && unsafe { serve(buffer, &mut queues.sendq, true, keys) };
        // SAFETY: `chan`'s buffer and receivers' queue, its lock held (the caller's
        // contract).
        let receivers = !queues.recvq.is_empty() && unsafe { serve(buffer, &mut queues.recvq, false, keys) };
        if !senders && !receivers {
            break;
        }
    }
    chan.update_flags(queues);
}

/// After a lock-free push (or pop): if receivers (senders) are queued, serve them.
///
/// # Safety
/// `buffer` is `chan`'s buffer; the caller does not hold `chan`'s lock.
#[inline(always)]
unsafe fn after(chan: &Chan, buffer: &Buffer, pushed: bool) {
    if chan.waiting(!pushed).load(SeqCst) {
        // SAFETY: `chan`'s buffer, its lock not held (the caller's contract).
        unsafe { pump_locked(chan, buffer) };
    }
}

/// Takes `chan`'s lock and pumps.
///
/// # Safety
/// `buffer` is `chan`'s buffer; the caller does not hold `chan`'s lock.
#[cold]
#[inline(never)]
unsafe fn pump_locked(chan: &Chan, buffer: &Buffer) {
    let mut keys = Keys::new();
    {
        let mut locked = chan.lock();
        // SAFETY: `chan`'s lock is held by `locked`, `buffer` is its buffer (the caller's
        // contract) and the queues are its own.
        unsafe { pump(chan, buffer, locked.queues(), &mut keys) };
    }
    wake(keys);
}

/// What a lock-free attempt gave.
enum Fast {
    Done(weft_status_t),
    NotReady,
    /// Senders are queued: a send must go through the lock (behind them).
    Locked,
}

/// A buffered send or receive without the lock.
///
/// # Safety
/// `buffer` is `chan`'s buffer, whose lock the caller does not hold; `buf` points to
/// `chan.elem` bytes, readable for a send and writable for a receive, apart from the
/// buffer's.
#[inline(always)]
unsafe fn fast_attempt(chan: &Chan, buffer: &Buffer, buf: *mut u8, send: bool) -> Fast {
    if send {
        if chan.waiters.send_waiting.load(Relaxed) {
            return Fast::Locked;
        }
        // SAFETY: `buf` covers the channel's `elem_size` readable bytes (the caller's
        // contract).
        match unsafe { buffer.push(buf) } {
            Push::Done => {
                // SAFETY: `chan`'s buffer, its lock not held (the caller's contract).
                unsafe { after(chan, buffer, true) };
                Fast::Done(WEFT_OK)
            }
            Push::Full => Fast::NotReady,
            Push::Closed => Fast::Done(WEFT_ECLOSED),
            Push::NoMemory => Fast::Done(no_memory()),
        }
    } else {
        // SAFETY: `buf` covers the channel's `elem_size` writable bytes (the caller's
        // contract).
        match unsafe { buffer.pop(buf) } {
            Pop::Done => {
                // SAFETY: `chan`'s buffer, its lock not held (the caller's contract).
                unsafe { after(chan, buffer, false) };
                Fast::Done(WEFT_OK)
            }
            Pop::Empty => Fast::NotReady,
            Pop::Closed => Fast::Done(WEFT_ECLOSED),
        }
    }
}

/// A buffered send or receive that does not wait, lock held: serves the queues first,
/// then a send only if no sender is still queued (it would come first).
///
/// # Safety
/// `chan`'s lock is held; `buffer` is its buffer and `queues` its queues; `buf` points
/// to `chan.elem` bytes, readable for a send and writable for a receive, apart from the
/// buffer's.
unsafe fn buffered_attempt(
    chan: &Chan,
    buffer: &Buffer,
    queues: &mut Queues,
    buf: *mut u8,
    send: bool,
    keys: &mut Keys,
) -> Option<weft_status_t> {
    if !queues.sendq.is_empty() || !queues.recvq.is_empty() {
        // SAFETY: `chan`'s lock held, its buffer and queues (the caller's contract).
        unsafe { pump(chan, buffer, queues, keys) };
    }
    let status = if send {
        if !queues.sendq.is_empty() {
            return buffer.is_closed().then_some(WEFT_ECLOSED);
        }
        // SAFETY: `buf` covers the channel's `elem_size` readable bytes (the caller's
        // contract).
        match unsafe { buffer.push(buf) } {
            Push::Done => WEFT_OK,
            Push::Full => return None,
            Push::Closed => WEFT_ECLOSED,
            Push::NoMemory => no_memory(),
        }
    } else {
        // SAFETY: `buf` covers the channel's `elem_size` writable bytes (the caller's
        // contract).
        match unsafe { buffer.pop(buf) } {
            Pop::Done => WEFT_OK,
            Pop::Empty => return None,
            Pop::Closed => WEFT_ECLOSED,
        }
    };
    if status == WEFT_OK && !queues.of(!send).is_empty() {
        // SAFETY: `chan`'s lock held, its buffer and queues (the caller's contract).
        unsafe { pump(chan, buffer, queues, keys) };
    }
    Some(status)
}

// ---- waiting -------------------------------------------------------------------------

// Before parking: on an OS thread with a CPU to spare, a watch of the decision word
// (`parking::watch`, the condition's); then a back-off, `1 << step` spins for the first
// steps, then yields, as the platform's `wait::backoff()` says (spinning is worth it
// where the partner runs on another CPU, not where it is a task queued on the same
// worker).

/// How a wait ended.
enum Outcome {
    Done {
        case: usize,
        closed: bool,
    },
    /// A select must try again (HOW_RETRY).
    Retry,
    GaveUp(weft_status_t),
}

/// Waits until `sel` is decided, the deadline passes or the task is cancelled (inside a
/// blocking region). Giving up succeeds only if nobody claimed `sel` first. `history`
/// is the channel's count of unanswered watches.
fn wait_for(sel: &Sel, history: &AtomicU32, deadline: i64) -> Outcome {
    let decided = || sel.state.load(Acquire) >= DONE;
    // On an OS thread with a CPU to spare, watch for the decision first: the partner of
    // a hand-over (a receiver taking from a rendezvous, a sender filling a slot) runs on
    // another CPU and often answers within a microsecond, and then nobody sleeps or
    // wakes (a sleeping thread's wake-up costs 20-40 us on the machines weft is
    // measured on). The watch is a blocking region, as the park is: a stop-the-world
    // does not wait for it. A task of green never watches: its worker runs others.
    if wait::may_watch() && HOST.blocking(|| watch::watch(history, deadline, decided)) {
        return decision(sel.state.load(Acquire));
    }
    // A partner is often about to complete the call (a receiver draining a full
    // channel, a sender arriving at a rendezvous): back off briefly, as crossbeam does,
    // before paying for a park and a wake-up. A select only spins: it is typically the
    // one consumer of many producers, and a yield hands the CPU to producers that can
    // make no progress without it.
    let backoff = wait::backoff();
    let steps = if sel.select { backoff.spin_steps } else { backoff.steps };
    for step in 0..steps {
        if sel.state.load(Acquire) != WAITING {
            break;
        }
        if step < backoff.spin_steps {
            (0..1u32 << step).for_each(|_| std::hint::spin_loop());
        } else if wait::yielding_pays() {
            wait::backoff_yield();
        } else {
            break; // overloaded: a yield would send us behind every runnable thread
        }
    }
    let (mut claimed_yields, mut giving_up) = (0, false);
    loop {
        let state = sel.state.load(Acquire);
        if state >= DONE {
            return decision(state);
        }
        // The completer is copying under its lock; it publishes DONE (and wakes us) or
        // gives the call back right after. Let it run a few times; if it still has not
        // (it is not running: more threads than CPUs), park until it wakes us rather
        // than yield in a loop, which burns the CPU the completer needs. Past our
        // deadline (the give-up found it claimed) we can only wait for the outcome, and
        // a give-back wakes nobody: yield then.
        if state == CLAIMED && (giving_up || (claimed_yields < 3 && wait::yielding_pays())) {
            claimed_yields += 1;
            wait::backoff_yield();
            continue;
        }
        let woke = HOST.blocking(|| wait::park(sel.key(), || sel.state.load(Acquire) == state, deadline));
        let give_up = match woke {
            Wake::Woken => continue,
            Wake::TimedOut => WEFT_ETIMEDOUT,
            Wake::Cancelled => WEFT_ECANCELED,
        };
        if sel.state.compare_exchange(WAITING, ABORTED, Acquire, Acquire).is_ok() {
            return Outcome::GaveUp(give_up);
        }
        giving_up = true;
    }
}

/// The outcome a decided state word (`DONE` or above) tells.
fn decision(state: usize) -> Outcome {
    let (case, how) = ((state - DONE) / OUTCOMES, (state - DONE) % OUTCOMES);
    if how == HOW_RETRY {
        Outcome::Retry
    } else {
        Outcome::Done { case, closed: how == HOW_CLOSED }
    }
}

/// Why a call that could not complete at once does not wait: a pending cancellation,
/// or a deadline already past.
fn must_not_wait(deadline: i64) -> Option<weft_status_t> {
    if wait::cancelled() {
        Some(WEFT_ECANCELED)
    } else if clock::expired(deadline) {
        Some(WEFT_ETIMEDOUT)
    } else {
        None
    }
}

fn remove(queue: &mut Queue, waiter: *const Waiter) {
    if let Some(at) = queue.iter().position(|w| ptr::eq(*w, waiter)) {
        queue.remove(at);
    }
}

fn closed_status(closed: bool) -> weft_status_t {
    if closed {
        WEFT_ECLOSED
    } else {
        WEFT_OK
    }
}

// ---- the plugin's channel members ----------------------------------------------------

// The runtime hands every member a channel made by our `chan_new` and not yet freed
// (`chan_free` runs when no other call on it runs or will run), element buffers of the
// channel's `elem_size` bytes (readable for a send, writable for a receive, apart from
// the channel's memory) that stay valid until the call returns, and valid
// out-parameters: the table's contract (`weft_platform_t`), which the members rely on.

pub(crate) unsafe extern "C" fn chan_new(
    _rt: *mut weft_plat_rt_t,
    elem_size: usize,
    capacity: usize,
    out: *mut *mut weft_plat_chan_t,
) -> weft_status_t {
    HOST.guard(|| {
        let buffer = match capacity {
            0 => None,
            WEFT_CHAN_UNBOUNDED => Some(Buffer::new(elem_size, None)),
            bound => Some(Buffer::new(elem_size, Some(bound))),
        };
        let buffer = match buffer {
            None => None,
            Some(Some(buffer)) => Some(buffer),
            Some(None) if capacity == WEFT_CHAN_UNBOUNDED => {
                return HOST.fail(
                    WEFT_ENOMEM,
                    &format!("cannot allocate the first block of an unbounded channel of {elem_size}-byte elements"),
                )
            }
            Some(None) => {
                return HOST
                    .fail(WEFT_ENOMEM, &format!("cannot allocate a buffer of {capacity} slots of {elem_size} bytes"))
            }
        };
        let queues = Queues { sendq: VecDeque::new(), recvq: VecDeque::new(), closed: false };
        let chan = Chan {
            buffer,
            elem: elem_size,
            waiters: CachePadded(Waiters {
                lock: RawForkLock::INIT,
                send_waiting: AtomicBool::new(false),
                recv_waiting: AtomicBool::new(false),
                unanswered: AtomicU32::new(0),
                queues: UnsafeCell::new(queues),
            }),
        };
        // SAFETY: the runtime's out-parameter (the table contract above).
        unsafe { *out = Box::into_raw(Box::new(chan)) as *mut weft_plat_chan_t };
        WEFT_OK
    })
}

/// A single send or receive on a rendezvous channel: try, else queue one waiter and wait.
///
/// # Safety
/// The caller does not hold `chan`'s lock; `buf` points to `chan.elem` bytes, readable
/// for a send and writable for a receive, apart from any other call's, valid until the
/// call returns.
unsafe fn rendezvous_single(chan: &Chan, buf: *mut u8, deadline: i64, send: bool) -> weft_status_t {
    let sel = Sel::new(false);
    let waiter = Waiter { sel: &sel, buf, case: 0 };
    let mut keys = Keys::new();
    let early = {
        let mut locked = chan.lock();
        let queues = locked.queues();
        // SAFETY: `chan`'s lock is held by `locked` and these are its queues; `buf` as
        // the caller promised.
        let early =
            unsafe { rendezvous_attempt(chan, queues, buf, send, &mut keys) }.or_else(|| must_not_wait(deadline));
        if early.is_none() {
            queues.of(send).push_back(&waiter);
        }
        early
    };
    wake(keys);
    if let Some(status) = early {
        return status;
    }
    match wait_for(&sel, &chan.waiters.unanswered, deadline) {
        Outcome::Done { closed, .. } => closed_status(closed),
        Outcome::Retry => WEFT_EINTERNAL,
        Outcome::GaveUp(status) => {
            let mut locked = chan.lock();
            remove(locked.queues().of(send), &waiter);
            status
        }
    }
}

/// A single send or receive on a buffered channel: lock-free attempts with a short
/// back-off, then (through the lock) queue one waiter and wait.
///
/// # Safety
/// `buffer` is `chan`'s buffer, whose lock the caller does not hold; `buf` points to
/// `chan.elem` bytes, readable for a send and writable for a receive, apart from any
/// other call's and the buffer's, valid until the call returns.
unsafe fn buffered_single(chan: &Chan, buffer: &Buffer, buf: *mut u8, deadline: i64, send: bool) -> weft_status_t {
    let mut backoff = Backoff::new();
    let mut may_wait = None;
    loop {
        // SAFETY: `chan`'s buffer, its lock not held; `buf` as the caller promised.
        match unsafe { fast_attempt(chan, buffer, buf, send) } {
            Fast::Done(status) => return status,
            Fast::Locked => break,
            Fast::NotReady => {}
        }
        if !wait::backoff().snooze_before_queueing
            || backoff.is_completed()
            || (backoff.would_yield() && !wait::yielding_pays())
            || !*may_wait.get_or_insert_with(|| !clock::expired(deadline))
        {
            break;
        }
        backoff.snooze();
    }
    // A try (or a deadline already past) with nobody queued: the lock would see what the
    // attempt above saw.
    if may_wait == Some(false) && !chan.waiters.send_waiting.load(SeqCst) && !chan.waiters.recv_waiting.load(SeqCst) {
        return must_not_wait(deadline).unwrap_or(WEFT_ETIMEDOUT);
    }
    let sel = Sel::new(false);
    let waiter = Waiter { sel: &sel, buf, case: 0 };
    let mut keys = Keys::new();
    let early = {
        let mut locked = chan.lock();
        let queues = locked.queues();
        // SAFETY: `chan`'s lock is held by `locked`, `buffer` and `queues` are its own;
        // `buf` as the caller promised.
        let early =
            unsafe { buffered_attempt(chan, buffer, queues, buf, send, &mut keys) }.or_else(|| must_not_wait(deadline));
        if early.is_none() {
            queues.of(send).push_back(&waiter);
            chan.waiting(send).store(true, SeqCst);
            // Looks at the buffer again (see the module comment); may complete this
            // very call.
            // SAFETY: `chan`'s lock is held by `locked`, `buffer` and `queues` are its own.
            unsafe { pump(chan, buffer, queues, &mut keys) };
        }
        early
    };
    wake(keys);
    if let Some(status) = early {
        return status;
    }
    match wait_for(&sel, &chan.waiters.unanswered, deadline) {
        Outcome::Done { closed, .. } => closed_status(closed),
        Outcome::Retry => WEFT_EINTERNAL,
        Outcome::GaveUp(status) => {
            let mut locked = chan.lock();
            let queues = locked.queues();
            remove(queues.of(send), &waiter);
            chan.update_flags(queues);
            status
        }
    }
}

/// Every rendezvous call, and a buffered one that found no element or room at once
/// (or senders queued).
///
/// # Safety
/// The caller does not hold `chan`'s lock; `buf` points to `chan.elem` bytes, readable
/// for a send and writable for a receive, apart from any other call's and the
/// channel's memory, valid until the call returns.
#[cold]
#[inline(never)]
unsafe fn single(chan: &Chan, buf: *mut u8, deadline: i64, send: bool) -> weft_status_t {
    match &chan.buffer {
        // SAFETY: `chan`'s own buffer, its lock not held; `buf` as the caller promised.
        Some(buffer) => unsafe { buffered_single(chan, buffer, buf, deadline, send) },
        // SAFETY: `chan`'s lock not held; `buf` as the caller promised.
        None => unsafe { rendezvous_single(chan, buf, deadline, send) },
    }
}

pub(crate) unsafe extern "C" fn chan_send(
    ch: *mut weft_plat_chan_t,
    elem: *const c_void,
    deadline: i64,
) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: a live channel of this plugin (the table contract above).
        let chan = unsafe { Chan::from(ch) };
        // The common case first, inline: room in the buffer and nobody queued.
        if let Some(buffer) = &chan.buffer {
            if !chan.waiters.send_waiting.load(Relaxed) {
                // SAFETY: `elem` covers the channel's `elem_size` readable bytes (the
                // table contract above).
                match unsafe { buffer.push(elem as *const u8) } {
                    Push::Done => {
                        // SAFETY: `chan`'s own buffer; no lock is held here.
                        unsafe { after(chan, buffer, true) };
                        return WEFT_OK;
                    }
                    Push::Closed => return WEFT_ECLOSED,
                    Push::Full | Push::NoMemory => {}
                }
            }
        }
        // SAFETY: no lock held; `elem` covers the channel's `elem_size` readable bytes
        // until the call returns (the table contract above), and a send only reads it.
        unsafe { single(chan, elem as *mut u8, deadline, true) }
    })
}

pub(crate) unsafe extern "C" fn chan_recv(ch: *mut weft_plat_chan_t, out: *mut c_void, deadline: i64) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: a live channel of this plugin (the table contract above).
        let chan = unsafe { Chan::from(ch) };
        if let Some(buffer) = &chan.buffer {
            // SAFETY: `out` covers the channel's `elem_size` writable bytes (the table
            // contract above).
            match unsafe { buffer.pop(out as *mut u8) } {
                Pop::Done => {
                    // SAFETY: `chan`'s own buffer; no lock is held here.
                    unsafe { after(chan, buffer, false) };
                    return WEFT_OK;
                }
                Pop::Closed => return WEFT_ECLOSED,
                Pop::Empty => {}
            }
        }
        // SAFETY: no lock held; `out` covers the channel's `elem_size` writable bytes
        // until the call returns (the table contract above).
        unsafe { single(chan, out as *mut u8, deadline, false) }
    })
}

pub(crate) unsafe extern "C" fn chan_close(ch: *mut weft_plat_chan_t) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: a live channel of this plugin (the table contract above).
        let chan = unsafe { Chan::from(ch) };
        let mut keys = Keys::new();
        {
            match &chan.buffer {
                Some(buffer) => {
                    // Marked first: from now on every push fails, so the pump below
                    // gives queued senders ECLOSED and queued receivers what is left.
                    buffer.close();
                    let mut locked = chan.lock();
                    // SAFETY: `chan`'s lock is held by `locked`; its own buffer and queues.
                    unsafe { pump(chan, buffer, locked.queues(), &mut keys) };
                }
                None => {
                    let mut locked = chan.lock();
                    let queues = locked.queues();
                    queues.closed = true;
                    for send in [true, false] {
                        // SAFETY: a queue of `chan`, whose lock `locked` holds; the waiter
                        // is finished below and not touched afterwards.
                        while let Some(waiter) = unsafe { claim_first(queues.of(send)) } {
                            // SAFETY: the claimed waiter's `Sel` is alive until DONE is
                            // published here; neither is touched afterwards.
                            keys.push(unsafe { &*waiter.sel }.finish(waiter.case, HOW_CLOSED));
                        }
                    }
                }
            }
        }
        wake(keys);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn chan_len(ch: *mut weft_plat_chan_t) -> usize {
    HOST.guard_or(0, || {
        // SAFETY: a live channel of this plugin (the table contract above).
        unsafe { Chan::from(ch) }.buffer.as_ref().map_or(0, Buffer::len)
    })
}

pub(crate) unsafe extern "C" fn chan_free(ch: *mut weft_plat_chan_t, drop_fn: weft_plat_elem_drop_fn, ud: *mut c_void) {
    HOST.guard_or((), || {
        // SAFETY: `chan_new` made `ch` with `Box::into_raw`; the runtime frees it exactly
        // once, when no other call on it runs or will run (the table contract above).
        let mut chan = unsafe { Box::from_raw(ch as *mut Chan) };
        if let (Some(buffer), Some(drop_fn)) = (chan.buffer.as_mut(), drop_fn) {
            // SAFETY: the runtime's drop callback, given a buffered element (valid for the
            // call) and the `ud` it passed with it, once per element (the table contract).
            buffer.for_each_left(|elem| unsafe { drop_fn(elem as *mut c_void, ud) });
        }
    })
}

// ---- select --------------------------------------------------------------------------

thread_local! {
    static RANDOM: Cell<u64> = const { Cell::new(0) };
}

/// The thread's random state (a fresh seed from the clock and the Cell's own address
/// if never drawn), or None during the thread's exit. Not inlined, like `put_random`:
/// on the green platform (which shares this file) a select may move to another worker
/// thread between the two, and a cached thread-local address would be the old one's.
#[inline(never)]
fn take_random() -> Option<u64> {
    let seed = |at: usize| (clock::now() as u64 ^ (at as u64).rotate_left(32)) | 1;
    RANDOM
        .try_with(|state| match state.take() {
            0 => seed(state as *const Cell<u64> as usize),
            x => x,
        })
        .ok()
}

#[inline(never)]
fn put_random(random: u64) {
    let _ = RANDOM.try_with(|state| state.set(random));
}

/// Up to 16 cases without an allocation.
type Cases<T> = SmallVec<[T; 16]>;

/// A select's poll order: a uniformly random permutation of the cases (so the first
/// ready case met is uniform among the ready ones), drawn lazily from the front
/// (Fisher-Yates: place `i` gets a case drawn among those not placed yet), so that a
/// select whose first pick is ready draws one number; or the array order.
struct PollOrder {
    order: SmallVec<[u32; 16]>,
    drawn: usize,
    /// The thread's xorshift64* state, taken for the call (0: array order).
    random: u64,
}

impl PollOrder {
    fn new(n: usize, random: bool) -> PollOrder {
        const FIRST: [u32; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
        let order = if n <= FIRST.len() { SmallVec::from_buf_and_len(FIRST, n) } else { (0..n as u32).collect() };
        let random = if random {
            // A deterministic platform draws the order from its own seeded stream.
            if let Some(drawn) = clock::select_random() {
                drawn | 1
            } else {
                // One thread-local access per call; a new thread's stream starts from
                // the clock and the thread's own address.
                let seed = |at: usize| (clock::now() as u64 ^ (at as u64).rotate_left(32)) | 1;
                take_random().unwrap_or_else(|| seed(&n as *const usize as usize))
            }
        } else {
            0
        };
        PollOrder { order, drawn: 0, random }
    }

    /// The case to poll `i`-th.
    #[inline]
    fn at(&mut self, i: usize) -> usize {
        if self.random != 0 {
            let n = self.order.len();
            while self.drawn <= i {
                let pick = self.drawn + self.below(n - self.drawn);
                self.order.swap(self.drawn, pick);
                self.drawn += 1;
            }
        }
        self.order[i] as usize
    }

    /// A uniformly distributed number below `bound` (xorshift64*).
    fn below(&mut self, bound: usize) -> usize {
        let mut x = self.random;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random = x;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((r as u128 * bound as u128) >> 64) as usize
    }
}

impl Drop for PollOrder {
    fn drop(&mut self) {
        if self.random != 0 {
            let random = self.random;
            put_random(random);
        }
    }
}

/// Locks every channel of `chans`, in order.
///
/// # Safety
/// Every pointer is to a live channel.
unsafe fn lock_all(chans: &[*const Chan]) {
    for &chan in chans {
        // SAFETY: a live channel (the caller's contract).
        let chan: &Chan = unsafe { &*chan };
        chan.waiters.lock.lock();
    }
}

/// Unlocks every channel of `chans`, in reverse order.
///
/// # Safety
/// Every pointer is to a live channel whose lock this thread holds (from `lock_all`),
/// and no reference to its queues is in use any more.
unsafe fn unlock_all(chans: &[*const Chan]) {
    for &chan in chans.iter().rev() {
        // SAFETY: a live channel (the caller's contract).
        let chan: &Chan = unsafe { &*chan };
        // SAFETY: this thread holds the lock (the caller's contract).
        unsafe { chan.waiters.lock.unlock() };
    }
}

fn is_send(case: &weft_plat_select_case_t) -> bool {
    case.op == WEFT_SELECT_SEND
}

/// The channel of a case.
///
/// # Safety
/// `case.chan` is a live channel of this plugin while the reference is used.
unsafe fn chan_of<'a>(case: &weft_plat_select_case_t) -> &'a Chan {
    // SAFETY: `chan_new` made it from a boxed `Chan`, still live (the caller's contract).
    unsafe { &*(case.chan as *const Chan) }
}

/// One case as a call that does not wait, taking its channel's lock if needed.
///
/// # Safety
/// `case` is a case as `chan_select` receives it (a live channel; `buf` covers its
/// `elem_size` bytes, readable for a send and writable for a receive, apart from the
/// channel's memory), and the caller holds no channel lock.
unsafe fn attempt_alone(case: &weft_plat_select_case_t) -> Option<weft_status_t> {
    // SAFETY: a live channel (the caller's contract).
    let chan = unsafe { chan_of(case) };
    let buf = case.buf as *mut u8;
    let send = is_send(case);
    if let Some(buffer) = &chan.buffer {
        // SAFETY: `chan`'s own buffer, its lock not held; `buf` as the caller promised.
        match unsafe { fast_attempt(chan, buffer, buf, send) } {
            Fast::Done(status) => return Some(status),
            Fast::NotReady => return None,
            Fast::Locked => {}
        }
    }
    let mut keys = Keys::new();
    let status = {
        let mut locked = chan.lock();
        // SAFETY: the case's channel's lock is held by `locked`, and these are its queues.
        unsafe { attempt_locked(case, locked.queues(), &mut keys) }
    };
    wake(keys);
    status
}

/// One case as a call that does not wait, its channel's lock held.
///
/// # Safety
/// `case` is a case as `chan_select` receives it (see `attempt_alone`); its channel's
/// lock is held and `queues` are that channel's queues.
unsafe fn attempt_locked(
    case: &weft_plat_select_case_t,
    queues: &mut Queues,
    keys: &mut Keys,
) -> Option<weft_status_t> {
    // SAFETY: a live channel (the caller's contract).
    let chan = unsafe { chan_of(case) };
    match &chan.buffer {
        // SAFETY: `chan`'s lock held, its own buffer and queues; the case's `buf` covers
        // its `elem_size` bytes (the caller's contract).
        Some(buffer) => unsafe { buffered_attempt(chan, buffer, queues, case.buf as *mut u8, is_send(case), keys) },
        // SAFETY: `chan`'s lock held, its own queues; the case's `buf` covers its
        // `elem_size` bytes (the caller's contract).
        None => unsafe { rendezvous_attempt(chan, queues, case.buf as *mut u8, is_send(case), keys) },
    }
}

/// A case's outcome: its index goes to `chosen` when it completed (also by a close).
///
/// # Safety
/// `chosen` is valid for a write.
unsafe fn decided(status: weft_status_t, index: usize, chosen: *mut usize) -> weft_status_t {
    if status == WEFT_OK || status == WEFT_ECLOSED {
        // SAFETY: valid for a write (the caller's contract).
        unsafe { *chosen = index };
    }
    status
}

pub(crate) unsafe extern "C" fn chan_select(
    cases: *const weft_plat_select_case_t,
    n: usize,
    deadline: i64,
    flags: u32,
    chosen: *mut usize,
) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: `n` (at least 1) cases, borrowed for the call (the table contract above).
        let cases = unsafe { std::slice::from_raw_parts(cases, n) };
        let mut order = PollOrder::new(n, flags & WEFT_SELECT_ORDERED == 0);
        // Lock order (each channel once, by address), made when first needed.
        let mut chans: Cases<*const Chan> = Cases::new();
        // Without a buffered case, the locked pass below is all there is to try.
        // SAFETY: each case's channel is live (the table contract above).
        let any_buffered = cases.iter().any(|case| unsafe { chan_of(case) }.buffer.is_some());

        loop {
            if any_buffered {
                for i in 0..n {
                    let index = order.at(i);
                    // SAFETY: a case as the runtime handed it (the table contract above);
                    // no channel lock is held here.
                    if let Some(status) = unsafe { attempt_alone(&cases[index]) } {
                        // SAFETY: the runtime's out-parameter (the table contract above).
                        return unsafe { decided(status, index, chosen) };
                    }
                }
            }
            if chans.is_empty() {
                // SAFETY: each case's channel is live (the table contract above).
                chans.extend(cases.iter().map(|case| unsafe { chan_of(case) } as *const Chan));
                chans.sort_unstable();
                chans.dedup();
            }

            let mut keys = Keys::new();
            // SAFETY: the cases' channels, live (the table contract above).
            unsafe { lock_all(&chans) };
            for i in 0..n {
                let index = order.at(i);
                let case = &cases[index];
                // SAFETY: the case's channel is live (the table contract above).
                let chan = unsafe { chan_of(case) };
                // SAFETY: its lock is held (`lock_all` above); the reference is used for the
                // attempt below only.
                let queues = unsafe { chan.queues() };
                // SAFETY: a case as the runtime handed it, its channel's lock held and these
                // its queues.
                if let Some(status) = unsafe { attempt_locked(case, queues, &mut keys) } {
                    // SAFETY: this thread locked them all above; no queues reference remains.
                    unsafe { unlock_all(&chans) };
                    wake(keys);
                    // SAFETY: the runtime's out-parameter (the table contract above).
                    return unsafe { decided(status, index, chosen) };
                }
            }
            if let Some(status) = must_not_wait(deadline) {
                // SAFETY: this thread locked them all above; no queues reference remains.
                unsafe { unlock_all(&chans) };
                wake(keys);
                return status;
            }

            let sel = Sel::new(true);
            let waiters: Cases<Waiter> =
                cases.iter().enumerate().map(|(case, c)| Waiter { sel: &sel, buf: c.buf as *mut u8, case }).collect();
            for (case, waiter) in cases.iter().zip(&waiters) {
                // SAFETY: the case's channel is live (the table contract above).
                let chan = unsafe { chan_of(case) };
                // SAFETY: its lock is held (`lock_all` above); the reference is used for this
                // push only. The waiter (and `sel`) outlive their time in the queue: they
                // are taken out below, under the locks, before this call returns.
                unsafe { chan.queues() }.of(is_send(case)).push_back(waiter);
                if chan.buffer.is_some() {
                    chan.waiting(is_send(case)).store(true, SeqCst);
                }
            }
            // Look at the buffers again (see the module comment).
            for chan in &chans {
                // SAFETY: a live channel (the table contract above).
                let chan = unsafe { &**chan };
                if let Some(buffer) = &chan.buffer {
                    // SAFETY: its lock is held (`lock_all` above); the reference is used for
                    // the pump below only.
                    let queues = unsafe { chan.queues() };
                    // SAFETY: `chan`'s lock held, its own buffer and queues.
                    unsafe { pump(chan, buffer, queues, &mut keys) };
                }
            }
            // SAFETY: this thread locked them all above; no queues reference remains.
            unsafe { unlock_all(&chans) };
            wake(keys);

            // SAFETY: a live channel (the table contract above); `chans` is not empty.
            let history = &unsafe { &*chans[0] }.waiters.unanswered;
            let outcome = wait_for(&sel, history, deadline);

            // SAFETY: the cases' channels, live (the table contract above).
            unsafe { lock_all(&chans) };
            for (case, waiter) in cases.iter().zip(&waiters) {
                // SAFETY: the case's channel is live (the table contract above).
                let chan = unsafe { chan_of(case) };
                // SAFETY: its lock is held (`lock_all` above); the reference is used for this
                // removal only.
                remove(unsafe { chan.queues() }.of(is_send(case)), waiter);
            }
            for chan in &chans {
                // SAFETY: a live channel (the table contract above).
                let chan = unsafe { &**chan };
                if chan.buffer.is_some() {
                    // SAFETY: its lock is held (`lock_all` above); the reference is used for
                    // this call only.
                    chan.update_flags(unsafe { chan.queues() });
                }
            }
            // SAFETY: this thread locked them all above; no queues reference remains.
            unsafe { unlock_all(&chans) };
            match outcome {
                Outcome::Done { case, closed } => {
                    // SAFETY: the runtime's out-parameter (the table contract above).
                    unsafe { *chosen = case };
                    return closed_status(closed);
                }
                Outcome::GaveUp(status) => return status,
                Outcome::Retry => {}
            }
        }
    })
}
