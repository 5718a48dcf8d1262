//! `fork()`: what a child process inherits, and what it may do.
//!
//! A child has one thread, the one that called `fork()`; every task and thread of the
//! parent's runtimes is gone from it. So in the child:
//! * every runtime the parent had open is left behind: calls on it (and on tasks,
//!   channels and sync objects of it) are refused with `WEFT_EINVAL` ("opened by the
//!   parent process before fork()"), so a child never waits for a task that does not
//!   exist in it or trusts a registry full of phantom tasks;
//! * the child may open a new runtime and use it like any other;
//! * weft's own global locks (the loaded plugins, the closed-runtime list, the handle
//!   and key registries, the names of sync objects) are never inherited held:
//!   `pthread_atfork` handlers take them all before the fork, release them in the
//!   parent and reset them in the child. They are `ForkMutex`es, whose waiters sleep on
//!   the lock's own futex word: with parking_lot's locks, a thread of the parent queueing
//!   on one of them at the instant of the fork left parking_lot's shared wait table
//!   locked for ever in the child, and the child hung in its first unlock (one fork in
//!   a few thousand while another thread opened runtimes).
//!
//! * nothing of weft waits in a table the child cannot reset: the runtime's own locks
//!   (per runtime and per object) are `ForkMutex`es too, and so are the plugins' internal
//!   locks; native parks its threads in `weft_platform::parking` and green its tasks in
//!   its own buckets, and both empty their tables in the child. Before, the native
//!   plugin and the runtime parked through parking_lot's process-wide table, and a
//!   thread of the parent inside it at the fork (a contended wait or wake) left a bucket
//!   locked for ever: the child hung in 5 of 160 forks while the parent's tasks pinged a
//!   condition, inside `fork()` itself, where native took its parent's waiters out of
//!   that table;
//! * native tasks and green workers start with `pthread_create` itself, behind a gate a
//!   fork waits on (`weft_platform::os_thread`).
//!
//! The handlers are registered when the first runtime opens, or a `weft_once` first
//! runs its function (a once running at a fork runs again in the child: `sem.rs`).
//! (The dynamic linker's own lock is not weft's to take; weft only makes sure not to
//! need it in a child: see `plugin_dirs::own_object`.) A child forked while another thread registered them
//! registers them itself (`ForkSafeOnce`), unless their child handler ran in it.
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

use weft_platform::fork_lock::{ForkMutex, RawForkLock};
use weft_platform::once::ForkSafeOnce;

use crate::runtime::Runtime;

/// The runtimes open in this process (addresses; runtimes are never freed).
static OPEN: ForkMutex<Vec<usize>> = ForkMutex::new(Vec::new());
/// The runtimes a parent had open when this process was forked from it.
static LEFT_IN_PARENT: ForkMutex<Vec<usize>> = ForkMutex::new(Vec::new());
static HANDLERS: ForkSafeOnce = ForkSafeOnce::new();

/// How many forks lie between this process and the first that ran libweft's handlers:
/// what a `weft_once` running at a fork tells its runner's process by.
static GENERATION: AtomicU32 = AtomicU32::new(0);

pub(crate) fn runtime_opened(rt: *const Runtime) {
    install_handlers();
    OPEN.lock().push(rt as usize);
}

/// Registers the fork handlers, once: when the first runtime opens, or a `weft_once`
/// first runs its function (which needs no runtime).
pub(crate) fn install_handlers() {
    HANDLERS.call_once(|| {
        // SAFETY: the three handlers are plain functions that live as long as libweft,
        // which is never unloaded while it has a runtime.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

/// This process's fork generation (see `GENERATION`).
pub(crate) fn generation() -> u32 {
    GENERATION.load(SeqCst)
}

pub(crate) fn runtime_closed(rt: *const Runtime) {
    OPEN.lock().retain(|r| *r != rt as usize);
}

/// The runtimes open now (runtimes are never freed: each stays valid).
pub(crate) fn open_runtimes() -> Vec<&'static Runtime> {
    // SAFETY: each was a live runtime when it opened, and runtimes are never freed.
    OPEN.lock().iter().map(|&rt| unsafe { &*(rt as *const Runtime) }).collect()
}

/// Whether `rt` was inherited from the parent process (and is therefore refused).
pub(crate) fn left_in_parent(rt: *const Runtime) -> bool {
    LEFT_IN_PARENT.lock().contains(&(rt as usize))
}

/// Why `rt`, which is not open, is refused, for an error about `what` ("runtime 0x..",
/// "the runtime of mutex 0x.."): closed, or left behind in the parent of this process.
pub(crate) fn not_open(rt: *const Runtime, what: std::fmt::Arguments) -> String {
    if left_in_parent(rt) {
        format!("{what} was opened by the parent process before fork(): a child may only open a new runtime")
    } else {
        format!("{what} was closed")
    }
}

/// weft's global locks, in the one order the handlers take them.
fn global_locks() -> [&'static RawForkLock; 13] {
    // SAFETY: only the raw lock is handed out; the data stays behind the Mutex.
    unsafe {
        [
            // First: a binding takes some of the others (the default runtime, names).
            crate::runtime::sync::binding_lock(),
            OPEN.raw(),
            LEFT_IN_PARENT.raw(),
            // A load holds it, then takes LOADED.
            crate::plugin::loader::LOADING.raw(),
            crate::plugin::loader::LOADED.raw(),
            crate::runtime::CLOSED.raw(),
            crate::runtime::chan::shells_lock(),
            crate::runtime::task::shells_lock(),
            crate::runtime::blob::shells_lock(),
            crate::runtime::group::shells_lock(),
            crate::runtime::keys::KEYS.raw(),
            crate::runtime::checks::names_lock(),
            crate::runtime::owner_token::pool_lock(),
        ]
    }
}

extern "C" fn prepare() {
    use lock_api::RawMutex as _;
    crate::plugin::dirs::find_own_object_before_fork();
    for lock in global_locks() {
        lock.lock();
    }
}

extern "C" fn parent() {
    use lock_api::RawMutex as _;
    for lock in global_locks().into_iter().rev() {
        // SAFETY: `prepare` took every one of these on this thread.
        unsafe { lock.unlock() };
    }
}

/// In the child, threads of the parent may have been queued on the locks when it
/// forked: the locks are reset, not unlocked, so that no one is woken (the data behind
/// them is consistent: this thread took them all in `prepare`).
extern "C" fn child() {
    HANDLERS.mark_done();
    GENERATION.fetch_add(1, SeqCst);
    for lock in global_locks() {
        // SAFETY: the child of a fork, whose one thread (this one) holds every lock.
        unsafe { lock.reset_in_child() };
    }
    let open = std::mem::take(&mut *OPEN.lock());
    for &rt in &open {
        // SAFETY: the addresses of runtimes, which are never freed.
        unsafe { (*(rt as *const Runtime)).leave_in_parent() };
    }
    LEFT_IN_PARENT.lock().extend(open);
    // The forking thread may have been a task of a parent's runtime, or a thread
    // attached to one, even held in a stop of it: in the child it is a plain thread
    // again, and may attach to the child's own runtimes.
    if let Some(ctx) = crate::runtime::context::current_if_any() {
        crate::runtime::safepoint::forget_parent_in_child(ctx);
    }
    crate::runtime::context::enter(std::ptr::null());
}
