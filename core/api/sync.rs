//! Mutexes, condition variables and readers-writer locks in host memory.
use std::ffi::c_char;

use weft_platform::*;

use super::{non_null, open_runtime};
use std::sync::atomic::{AtomicPtr, Ordering::Acquire, Ordering::Release};

use crate::ffi::error::{fail, ffi, Result};
use crate::ffi::handle::{self, Handle};
use crate::runtime::checks::Holders;
use crate::runtime::sync::cond::{CondKind, CondObject};
use crate::runtime::sync::mutex::{MutexKind, MutexObject};
use crate::runtime::sync::rwlock::{Access, Patience, RwLockKind, RwLockObject};
use crate::runtime::sync::{SyncKind, SyncObject};
use crate::runtime::{checks, context, current, implicit_runtime, Runtime};
use crate::types::weft_runtime_t;

/// A live object of kind `K` in host memory, whose runtime is open.
fn live<'a, K: SyncKind>(ptr: *mut impl Sized) -> Result<&'a SyncObject<K>> {
    let obj = destroyable::<K>(ptr)?;
    obj.open_runtime()?;
    Ok(obj)
}

/// A live object for a destroy: its runtime may be closed. A statically initialised
/// object (`WEFT_MUTEX_INIT`...) binds to the default runtime on this first use.
fn destroyable<'a, K: SyncKind>(ptr: *mut impl Sized) -> Result<&'a SyncObject<K>> {
    match handle::check::<SyncObject<K>>(ptr.cast()) {
        Ok(obj) => Ok(obj),
        Err(_)
            if !ptr.is_null()
                && ptr.cast::<SyncObject<K>>().is_aligned()
                // SAFETY: the host's object memory, non-NULL, aligned, of the public
                // type's size.
                && unsafe { SyncObject::<K>::bind_static(ptr.cast(), default_runtime)? } =>
        {
            handle::check::<SyncObject<K>>(ptr.cast())
        }
        Err(e) => Err(e),
    }
}

/// A static object never used, destroyed: nothing to give back.
fn destroyed_unbound<K: SyncKind>(ptr: *mut impl Sized) -> bool {
    let object = ptr as *const SyncObject<K>;
    !object.is_null()
        && object.is_aligned()
        // SAFETY: as in `destroyable`; only the atomic tag is read and changed.
        && unsafe { &*object }.destroy_unbound()
}

static DEFAULT_RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(std::ptr::null_mut());

/// The runtime a static object binds to: the one set with `weft_set_default_runtime`,
/// else the caller's (a task's, an attached thread's), else the one opened last.
fn default_runtime() -> Result<&'static Runtime> {
    // SAFETY: runtimes are never freed.
    let chosen = unsafe { DEFAULT_RUNTIME.load(Acquire).as_ref() };
    match chosen.filter(|rt| rt.is_open()).or_else(implicit_runtime) {
        Some(rt) => Ok(rt),
        None => fail!(
            WEFT_EINVAL,
            "a statically initialised object binds to a runtime on first use, and none is open \
             (open one, or name it with weft_set_default_runtime)"
        ),
    }
}

/// Names the runtime that statically initialised mutexes, conditions and rwlocks
/// (`WEFT_MUTEX_INIT`, `WEFT_COND_INIT`, `WEFT_RWLOCK_INIT`) bind to on their first use.
/// Without it they bind to the caller's runtime (a task's, an attached thread's), else to
/// the runtime opened last. NULL forgets the choice.
#[no_mangle]
pub unsafe extern "C" fn weft_set_default_runtime(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_set_default_runtime", || {
        let chosen =
            if rt.is_null() { std::ptr::null_mut() } else { open_runtime(rt)? as *const Runtime as *mut Runtime };
        DEFAULT_RUNTIME.store(chosen, Release);
        Ok(())
    })
}

/// Writes a fresh object of kind `K` at `ptr` for `init`.
fn place<'a, K: SyncKind>(rt: *mut weft_runtime_t, ptr: *mut impl Sized) -> Result<&'a SyncObject<K>> {
    let rt = open_runtime(rt)?;
    non_null(ptr, <SyncObject<K> as Handle>::KIND)?;
    // SAFETY: the host's object memory, non-NULL, of the public type's size and
    // alignment (asserted in runtime::sync), and not live (initialising a live object
    // is undefined, as documented).
    Ok(unsafe { SyncObject::<K>::place(ptr.cast(), rt) })
}

// ---- mutex ----

/// Initialises the mutex in host memory at `m` (`WEFT_MUTEX_RECURSIVE` or 0). The host
/// owns the memory; it must stay in place, and not be copied, until
/// `weft_mutex_destroy`. Initialising a mutex that is in use is undefined.
#[no_mangle]
pub unsafe extern "C" fn weft_mutex_init(rt: *mut weft_runtime_t, m: *mut weft_mutex_t, flags: u32) -> weft_status_t {
    ffi("weft_mutex_init", || {
        // Before `place` writes the host's memory: a refused init leaves it as it was.
        MutexObject::check_flags(flags)?;
        let mutex: &MutexObject = place(rt, m)?;
        mutex.init_mutex(mutex.runtime(), flags)
    })
}

/// Destroys an unlocked mutex; its memory is the host's again. `WEFT_EBUSY` while it is
/// held, and while a lock or unlock of it is seen under way (a destroy must not race
/// with other calls on the mutex, a task blocked in its lock among them: docs/rules.md).
/// Later calls on it are `WEFT_EINVAL`. Allowed after the runtime closed.
#[no_mangle]
pub unsafe extern "C" fn weft_mutex_destroy(m: *mut weft_mutex_t) -> weft_status_t {
    ffi("weft_mutex_destroy", || {
        if destroyed_unbound::<MutexKind>(m) {
            return Ok(());
        }
        destroyable::<_>(m).and_then(MutexObject::destroy_mutex)
    })
}

/// Locks the mutex, waiting as long as it takes (inside a blocking region while it
/// waits). Not a cancellation point. `WEFT_EDEADLK` if the caller already holds a
/// non-recursive mutex (a recursive one counts the level).
#[no_mangle]
pub unsafe extern "C" fn weft_mutex_lock(m: *mut weft_mutex_t) -> weft_status_t {
    // The fast path, for a free mutex in an open runtime without checks: a TLS read of
    // the caller's owner token and one compare-and-swap of the mutex's first word,
    // which checks its tag, takes its byte lock and names the owner at once (see
    // runtime/sync/mutex.rs), then two loads that hit. Nothing in it can panic, so it
    // needs no guard; every other case is one tail call away, so that the fast path
    // saves no registers.
    let owner = current::owner_bits();
    if owner != 0 {
        // SAFETY: the host's pointer to a weft_mutex_t (or NULL).
        if let Some(mutex) = unsafe { MutexObject::take_free(m.cast(), owner) } {
            if mutex.runtime().fast_locks() {
                return WEFT_OK;
            }
            return taken_off_the_fast_path(m, mutex);
        }
    }
    lock_contended(m)
}

/// A mutex the fast path's swap took in a runtime where the fast path cannot end: with
/// the checks on, their bookkeeping; in a closed runtime, the lock given back and the
/// call refused.
///
/// `extern "C"`: the fast path jumps here, keeping no frame (see `lock_contended`).
#[cold]
#[inline(never)]
extern "C" fn taken_off_the_fast_path(m: *mut weft_mutex_t, mutex: &MutexObject) -> weft_status_t {
    let rt = mutex.runtime();
    if !rt.is_open() {
        // Given back as an unlock would (waking a waiter parked before the close); the
        // checked path then says why the call is refused.
        mutex.disown();
        mutex.release(rt);
        return lock_checked(m);
    }
    owned_now(mutex, context::current())
}

/// The end of a lock taken by one try: the caller becomes the owner, and the checks
/// (if on) record it.
#[inline(always)]
fn owned_now(mutex: &MutexObject, ctx: &context::Context) -> weft_status_t {
    mutex.own(mutex.runtime(), ctx);
    let checks = &mutex.runtime().checks;
    if checks.on() && !checks.acquired_quickly(ctx, mutex.addr()) {
        return checked_after_lock(mutex, ctx);
    }
    WEFT_OK
}

/// The lock when the fast path did not take it: on a platform without a byte lock, one
/// try of the plugin's lock; with the checks off, a take of a free mutex that has
/// waiters parked on it (a byte lock the plugin's: its holder, releasing and taking it
/// again while others are parked, comes this way every time); else the checked path,
/// which waits in the plugin. No spin or second try of a held mutex here: the plugin's
/// wait yields before it parks, out of the holder's way (parking_lot's way, see
/// `plugins/native/src/lock.rs`), where a waiter that takes the lock at the first
/// chance keeps the lock's cache line moving between CPUs at every lock and unlock.
///
/// `extern "C"` (as each cold path an exported fast path ends in): a call that cannot
/// unwind needs no landing pad in its caller, which then jumps to it and keeps no frame
/// (docs/performance.md, "The fast paths keep no frame").
#[cold]
#[inline(never)]
extern "C" fn lock_contended(m: *mut weft_mutex_t) -> weft_status_t {
    if let (Some(mutex), Some(ctx)) = (handle::probe::<MutexObject>(m.cast()), context::current_if_any()) {
        let rt = mutex.runtime();
        if rt.is_open() && mutex.take_with_plugin_try(rt, ctx) {
            return owned_now(mutex, ctx);
        }
        if rt.fast_locks() && mutex.lock_free_with_waiters(rt, ctx) {
            return WEFT_OK;
        }
    }
    lock_checked(m)
}

/// The checks' part of a lock taken on the fast path while other locks are held (order
/// edges; maybe a report): under the guard, as it allocates and calls the host.
#[cold]
#[inline(never)]
fn checked_after_lock(mutex: &MutexObject, ctx: &context::Context) -> weft_status_t {
    ffi("weft_mutex_lock", || {
        mutex.runtime().checks.acquired(ctx, mutex.addr(), true, Holders::OwnerField);
        Ok(())
    })
}

#[cold]
#[inline(never)]
fn lock_checked(m: *mut weft_mutex_t) -> weft_status_t {
    ffi("weft_mutex_lock", || {
        let mutex: &MutexObject = live(m)?;
        mutex.lock(mutex.runtime(), context::current(), None)
    })
}

/// Locks the mutex if it is free; `WEFT_EBUSY` if another task holds it. A relock by the
/// owner is counted (recursive) or `WEFT_EDEADLK`.
#[no_mangle]
pub unsafe extern "C" fn weft_mutex_try_lock(m: *mut weft_mutex_t) -> weft_status_t {
    ffi("weft_mutex_try_lock", || {
        let mutex: &MutexObject = live(m)?;
        mutex.try_lock(mutex.runtime(), context::current())
    })
}

/// Locks the mutex, or gives up at `deadline` with `WEFT_ETIMEDOUT` (a deadline already
/// past: one try). A relock by the owner is counted (recursive) or `WEFT_EDEADLK`.
#[no_mangle]
pub unsafe extern "C" fn weft_mutex_lock_until(m: *mut weft_mutex_t, deadline: i64) -> weft_status_t {
    ffi("weft_mutex_lock_until", || {
        let mutex: &MutexObject = live(m)?;
        mutex.lock(mutex.runtime(), context::current(), Some(deadline))
    })
}

/// Unlocks the mutex (one level, if recursive). `WEFT_EPERM` if the caller does not
/// hold it. Allowed after the runtime closed (so that a mutex held then can be released
/// and destroyed). A mutex whose holder ended (a task returned, a thread detached)
/// stays held by it; its owner is a token that a new task or thread may be given once
/// at least 4,096 others have ended, and that one then counts as the holder (as
/// glibc's error-checking mutex counts a new thread with a reused thread id).
#[no_mangle]
pub unsafe extern "C" fn weft_mutex_unlock(m: *mut weft_mutex_t) -> weft_status_t {
    // The fast path, for a plain mutex the caller holds with nobody parked, in a runtime
    // without checks: a TLS read of the caller's owner token and one compare-and-swap
    // of the mutex's first word from "held by the caller" to "free" (tag, byte lock and
    // owner at once). It reads nothing of the runtime: in one with checks the word
    // carries a mark the swap does not expect (runtime/sync/mutex.rs, CHECKED), and
    // after the close the cold path would release the same way. Every other case takes
    // the paths below.
    let owner = current::owner_bits();
    // SAFETY: the host's pointer to a weft_mutex_t (or NULL).
    if owner != 0 && unsafe { MutexObject::release_own(m.cast(), owner) } {
        return WEFT_OK;
    }
    unlock_off_the_fast_path(m)
}

/// The unlock when the fast path did not apply (checks on, waiters parked, levels to
/// count down, a closed runtime, a caller that is not the owner): the owner's last
/// level with the checks' bookkeeping (a mutex's holder is its owner field: the checks
/// drop it from the held list, no trip to the graph), else the checked path.
///
/// `extern "C"`: the fast path jumps here, keeping no frame (see `lock_contended`).
#[cold]
#[inline(never)]
extern "C" fn unlock_off_the_fast_path(m: *mut weft_mutex_t) -> weft_status_t {
    if let (Some(mutex), Some(ctx)) = (handle::probe::<MutexObject>(m.cast()), context::current_if_any()) {
        if mutex.is_last_level_of(ctx) {
            let checks = &mutex.runtime().checks;
            if checks.on() {
                checks.released(ctx, mutex.addr(), Holders::OwnerField);
            }
            mutex.disown();
            return release_disowned(mutex);
        }
    }
    unlock_checked(m)
}

/// The release of a mutex the caller has disowned: a swap of the byte lock if nobody is
/// parked on it, else the plugin's unlock (which wakes a waiter; the only release on a
/// platform without a byte lock).
///
/// `extern "C"`: the fast path jumps here, keeping no frame (see `lock_contended`).
#[inline(never)]
extern "C" fn release_disowned(mutex: &MutexObject) -> weft_status_t {
    match mutex.release(mutex.runtime()) {
        WEFT_OK => WEFT_OK,
        status => ffi("weft_mutex_unlock", || mutex.unlocked(status)),
    }
}

#[cold]
#[inline(never)]
fn unlock_checked(m: *mut weft_mutex_t) -> weft_status_t {
    ffi("weft_mutex_unlock", || {
        // Allowed after the runtime closed, so that a mutex held at the close can still
        // be released and destroyed.
        let mutex: &MutexObject = destroyable(m)?;
        mutex.unlock(mutex.runtime(), context::current())
    })
}

/// Names the mutex in the reports of the checks (`WEFT_CHECK_*`): `name` is copied;
/// NULL clears it. The name goes when the mutex is destroyed.
#[no_mangle]
pub unsafe extern "C" fn weft_mutex_set_name(m: *mut weft_mutex_t, name: *const c_char) -> weft_status_t {
    ffi("weft_mutex_set_name", || {
        let mutex: &MutexObject = destroyable(m)?;
        // SAFETY: NULL or the host's NUL-terminated string, copied.
        checks::set_name(mutex.addr(), unsafe { checks::copy_name(name) });
        Ok(())
    })
}

// ---- condition ----

/// Initialises the condition variable in host memory at `c`. The host owns the memory;
/// it must stay in place, and not be copied, until `weft_cond_destroy`.
#[no_mangle]
pub unsafe extern "C" fn weft_cond_init(rt: *mut weft_runtime_t, c: *mut weft_cond_t) -> weft_status_t {
    ffi("weft_cond_init", || {
        let cond: &CondObject = place(rt, c)?;
        cond.init_cond(cond.runtime())
    })
}

/// Destroys a condition variable nobody is blocked on (`WEFT_EBUSY` while a task waits
/// on it and no signal or broadcast woke it). As POSIX allows, the destroy may follow a
/// broadcast (or a signal to the only waiter) at once, before the woken waiters have
/// taken their mutex back: it waits for them to leave their waits, after which the
/// memory is the host's again (to free, say). They need their mutex back to leave: a
/// destroy by the holder of that mutex returns `WEFT_EBUSY` once none left for 200 ms.
/// Later calls on it are `WEFT_EINVAL`. Allowed after the runtime closed.
#[no_mangle]
pub unsafe extern "C" fn weft_cond_destroy(c: *mut weft_cond_t) -> weft_status_t {
    ffi("weft_cond_destroy", || {
        if destroyed_unbound::<CondKind>(c) {
            return Ok(());
        }
        destroyable::<_>(c).and_then(CondObject::destroy_cond)
    })
}

fn wait(function: &'static str, c: *mut weft_cond_t, m: *mut weft_mutex_t, deadline: i64) -> weft_status_t {
    ffi(function, || {
        let cond: &CondObject = live(c)?;
        let mutex: &MutexObject = live(m)?;
        cond.wait(mutex, context::current(), deadline)
    })
}

/// Atomically unlocks `m` (held by the caller) and waits for a signal; `m` is locked
/// again on every return. Spurious wake-ups happen: wait in a loop on your predicate.
/// A cancellation point (`WEFT_ECANCELED`, with `m` locked again). `WEFT_EPERM` if the
/// caller does not hold `m`. The waiting caller is in a blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_cond_wait(c: *mut weft_cond_t, m: *mut weft_mutex_t) -> weft_status_t {
    wait("weft_cond_wait", c, m, WEFT_FOREVER)
}

/// As `weft_cond_wait`, giving up at `deadline` with `WEFT_ETIMEDOUT` (`m` locked again).
#[no_mangle]
pub unsafe extern "C" fn weft_cond_wait_until(
    c: *mut weft_cond_t,
    m: *mut weft_mutex_t,
    deadline: i64,
) -> weft_status_t {
    wait("weft_cond_wait_until", c, m, deadline)
}

/// As `weft_cond_wait`, giving up `ns` nanoseconds after the call with `WEFT_ETIMEDOUT`
/// (`m` locked again), on the clock of `c`'s runtime (virtual on a virtual-time
/// platform): for a host whose timed waits take a relative timeout (as libuv's
/// `uv_cond_timedwait`) and that does not keep the runtime at hand. `ns <= 0` does not
/// wait; `WEFT_FOREVER` waits for ever.
#[no_mangle]
pub unsafe extern "C" fn weft_cond_wait_for(c: *mut weft_cond_t, m: *mut weft_mutex_t, ns: i64) -> weft_status_t {
    ffi("weft_cond_wait_for", || {
        let cond: &CondObject = live(c)?;
        let mutex: &MutexObject = live(m)?;
        cond.wait(mutex, context::current(), cond.runtime().deadline_after(ns))
    })
}

/// Wakes at least one task waiting on `c`, if any. The caller need not hold the mutex.
#[no_mangle]
pub unsafe extern "C" fn weft_cond_signal(c: *mut weft_cond_t) -> weft_status_t {
    // The fast path: nobody waits (loads only, no guard needed).
    if let Some(cond) = handle::probe::<CondObject>(c.cast()) {
        let rt = cond.runtime();
        if rt.is_open() && cond.nobody_to_wake(rt) {
            return WEFT_OK;
        }
    }
    signal_checked(c)
}

/// `extern "C"`: the fast path jumps here, keeping no frame (see `lock_contended`).
#[cold]
#[inline(never)]
extern "C" fn signal_checked(c: *mut weft_cond_t) -> weft_status_t {
    ffi("weft_cond_signal", || live::<_>(c).and_then(CondObject::signal))
}

/// Wakes every task waiting on `c`.
#[no_mangle]
pub unsafe extern "C" fn weft_cond_broadcast(c: *mut weft_cond_t) -> weft_status_t {
    ffi("weft_cond_broadcast", || live::<_>(c).and_then(CondObject::broadcast))
}

// ---- rwlock ----

/// Names the rwlock in the reports of the checks (`WEFT_CHECK_*`): `name` is copied;
/// NULL clears it. The name goes when the rwlock is destroyed.
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_set_name(l: *mut weft_rwlock_t, name: *const c_char) -> weft_status_t {
    ffi("weft_rwlock_set_name", || {
        let lock: &RwLockObject = destroyable(l)?;
        // SAFETY: NULL or the host's NUL-terminated string, copied.
        checks::set_name(lock.addr(), unsafe { checks::copy_name(name) });
        Ok(())
    })
}

/// Initialises the rwlock in host memory at `l`. The host owns the memory; it must stay
/// in place, and not be copied, until `weft_rwlock_destroy`.
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_init(rt: *mut weft_runtime_t, l: *mut weft_rwlock_t) -> weft_status_t {
    ffi("weft_rwlock_init", || {
        let lock: &RwLockObject = place(rt, l)?;
        lock.init_rwlock(lock.runtime())
    })
}

/// Destroys an rwlock nobody holds (`WEFT_EBUSY` otherwise). Later calls on it are
/// `WEFT_EINVAL`. Allowed after the runtime closed.
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_destroy(l: *mut weft_rwlock_t) -> weft_status_t {
    ffi("weft_rwlock_destroy", || {
        if destroyed_unbound::<RwLockKind>(l) {
            return Ok(());
        }
        destroyable::<_>(l).and_then(RwLockObject::destroy_rwlock)
    })
}

fn acquire(function: &'static str, l: *mut weft_rwlock_t, access: Access, patience: Patience) -> weft_status_t {
    ffi(function, || live::<_>(l).and_then(|lock: &RwLockObject| lock.acquire(context::current(), access, patience)))
}

/// Takes shared (read) access, waiting while a writer holds or waits for the lock.
/// `WEFT_EDEADLK` if the caller holds the write lock. Taking a second read lock while a
/// writer waits deadlocks (as with every writer-preferring lock): do not nest reads.
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_read_lock(l: *mut weft_rwlock_t) -> weft_status_t {
    acquire("weft_rwlock_read_lock", l, Access::Read, Patience::Forever)
}

/// As `weft_rwlock_read_lock`, giving up at `deadline` (of the rwlock's runtime's
/// clock, `weft_now`) with `WEFT_ETIMEDOUT`; a deadline already past makes one try.
/// `WEFT_ENOTSUP` on a platform without timed rwlock locks (a plugin's optional table
/// members).
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_read_lock_until(l: *mut weft_rwlock_t, deadline: i64) -> weft_status_t {
    acquire("weft_rwlock_read_lock_until", l, Access::Read, Patience::Until(deadline))
}

/// Takes shared access if no writer holds or waits for it; `WEFT_EBUSY` otherwise, and
/// `WEFT_EDEADLK` if the caller holds the write lock.
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_try_read_lock(l: *mut weft_rwlock_t) -> weft_status_t {
    acquire("weft_rwlock_try_read_lock", l, Access::Read, Patience::Try)
}

/// Takes exclusive (write) access, waiting for readers and writers to leave.
/// `WEFT_EDEADLK` if the caller holds the write lock already, or a read lock of `l`
/// (there is no upgrade: the write lock would wait for the caller's own read lock).
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_write_lock(l: *mut weft_rwlock_t) -> weft_status_t {
    acquire("weft_rwlock_write_lock", l, Access::Write, Patience::Forever)
}

/// As `weft_rwlock_write_lock`, giving up at `deadline` with `WEFT_ETIMEDOUT` (a
/// deadline already past: one try). A writer that gives up no longer holds new readers
/// back. `WEFT_ENOTSUP` on a platform without timed rwlock locks.
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_write_lock_until(l: *mut weft_rwlock_t, deadline: i64) -> weft_status_t {
    acquire("weft_rwlock_write_lock_until", l, Access::Write, Patience::Until(deadline))
}

/// Takes exclusive access if nobody holds the lock; `WEFT_EBUSY` otherwise, and
/// `WEFT_EDEADLK` if the caller holds the write lock already.
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_try_write_lock(l: *mut weft_rwlock_t) -> weft_status_t {
    acquire("weft_rwlock_try_write_lock", l, Access::Write, Patience::Try)
}

/// Releases the caller's write lock, or one of its read locks. `WEFT_EPERM` if the
/// caller holds neither (a read lock of another rwlock, or another task's read lock of
/// this one, does not count). Allowed after the runtime closed
/// (so that a lock held then can be released and destroyed).
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_unlock(l: *mut weft_rwlock_t) -> weft_status_t {
    ffi("weft_rwlock_unlock", || destroyable::<_>(l).and_then(|lock: &RwLockObject| lock.release(context::current())))
}
