//! Readers-writer locks in host memory. Writers are not starved (the platform queues
//! new readers behind a waiting writer). The runtime tracks the writer and the number
//! of readers, so a relock by the writer is `WEFT_EDEADLK` and an unlock by a thread that
//! holds nothing is `WEFT_EPERM`.
use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering::AcqRel, Ordering::Relaxed, Ordering::Release};

use weft_platform::*;

use crate::context;
use crate::error::{check_plugin, fail, ffi, Result};
use crate::loader::plat_call;
use crate::runtime::{open_runtime, weft_runtime_t};
use crate::safepoint;
use crate::sync_object::{live_object, TAG_DESTROYED};

const TAG_RWLOCK: u32 = 0x5752_574c;

#[repr(C)]
struct RwLockRepr {
    tag: AtomicU32,
    readers: AtomicU32,
    /// Context id of the writer; 0 when none.
    writer: AtomicU64,
    rt: AtomicPtr<weft_runtime_t>,
    plugin: [u64; WEFT_PLATFORM_RWLOCK_BYTES as usize / 8],
}

const _: () = assert!(std::mem::size_of::<RwLockRepr>() == WEFT_RWLOCK_SIZE);

impl RwLockRepr {
    fn plugin_bytes(&self) -> *mut c_void {
        self.plugin.as_ptr() as *mut c_void
    }
}

fn rwlock_ref<'a>(l: *mut weft_rwlock_t, allow_closed: bool) -> Result<(&'a RwLockRepr, &'static weft_runtime_t)> {
    // SAFETY: a non-NULL pointer from the host addresses WEFT_RWLOCK_SIZE bytes.
    let Some(repr) = (unsafe { (l as *const RwLockRepr).as_ref() }) else { fail!(WEFT_EINVAL, "rwlock is NULL") };
    let rt = live_object(&repr.tag, repr.rt.load(Relaxed), &[TAG_RWLOCK], "rwlock", l as *const u8, allow_closed)?;
    Ok((repr, rt))
}

/// Initialises the rwlock in host memory at `l`. The host owns the memory; it must stay
/// in place until `weft_rwlock_destroy`.
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_init(rt: *mut weft_runtime_t, l: *mut weft_rwlock_t) -> weft_status_t {
    ffi("weft_rwlock_init", || {
        let rt = open_runtime(rt)?;
        if l.is_null() {
            fail!(WEFT_EINVAL, "rwlock is NULL");
        }
        let repr = l as *mut RwLockRepr;
        repr.write(RwLockRepr {
            tag: AtomicU32::new(0),
            readers: AtomicU32::new(0),
            writer: AtomicU64::new(0),
            rt: AtomicPtr::new(rt as *const _ as *mut _),
            plugin: [0; WEFT_PLATFORM_RWLOCK_BYTES as usize / 8],
        });
        let repr = &*repr;
        check_plugin(plat_call!(rt.table, rwlock_init(rt.prt, repr.plugin_bytes())), || {
            "the platform could not initialise the rwlock".into()
        })?;
        repr.tag.store(TAG_RWLOCK, Release);
        Ok(())
    })
}

/// Destroys an rwlock nobody holds (`WEFT_EBUSY` otherwise). Later calls on it are
/// `WEFT_EINVAL`. Allowed after the runtime closed.
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_destroy(l: *mut weft_rwlock_t) -> weft_status_t {
    ffi("weft_rwlock_destroy", || {
        let (repr, rt) = rwlock_ref(l, true)?;
        let readers = repr.readers.load(Relaxed);
        if repr.writer.load(Relaxed) != 0 || readers != 0 {
            fail!(WEFT_EBUSY, "rwlock {l:p} is held ({} reader(s), writer {})", readers, repr.writer.load(Relaxed));
        }
        check_plugin(plat_call!(rt.table, rwlock_destroy(repr.plugin_bytes())), || {
            format!("the platform could not destroy rwlock {l:p}")
        })?;
        repr.tag.store(TAG_DESTROYED, Release);
        Ok(())
    })
}

fn refuse_writer_relock(repr: &RwLockRepr, l: *mut weft_rwlock_t, me: u64) -> Result<()> {
    if repr.writer.load(Relaxed) == me {
        fail!(WEFT_EDEADLK, "rwlock {l:p} is write-locked by the caller");
    }
    Ok(())
}

fn read_acquired(repr: &RwLockRepr) {
    repr.readers.fetch_add(1, Relaxed);
    context::current().read_locks_held.fetch_add(1, Relaxed);
}

fn acquire(function: &'static str, l: *mut weft_rwlock_t, write: bool, try_only: bool) -> weft_status_t {
    ffi(function, || {
        let (repr, rt) = rwlock_ref(l, false)?;
        let me = context::current().id;
        refuse_writer_relock(repr, l, me)?;
        let bytes = repr.plugin_bytes();
        let tried = match write {
            false => plat_call!(rt.table, rwlock_try_read_lock(bytes)),
            true => plat_call!(rt.table, rwlock_try_write_lock(bytes)),
        };
        // A try first, so that an uncontended lock costs no blocking region; then a wait
        // that never ends holding the lock while the world is stopped (see
        // safepoint::lock_outside_stop).
        let status = match (write, tried) {
            (_, status) if status != WEFT_EBUSY || try_only => status,
            (false, _) => safepoint::lock_outside_stop(
                rt,
                || plat_call!(rt.table, rwlock_read_lock(bytes)),
                || {
                    plat_call!(rt.table, rwlock_read_unlock(bytes));
                },
            ),
            (true, _) => safepoint::lock_outside_stop(
                rt,
                || plat_call!(rt.table, rwlock_write_lock(bytes)),
                || {
                    plat_call!(rt.table, rwlock_write_unlock(bytes));
                },
            ),
        };
        if status == WEFT_EBUSY {
            fail!(WEFT_EBUSY, "rwlock {l:p} is held{}", if write { "" } else { " or wanted by a writer" });
        }
        check_plugin(status, || format!("cannot lock rwlock {l:p}"))?;
        if write {
            repr.writer.store(me, Relaxed);
        } else {
            read_acquired(repr);
        }
        Ok(())
    })
}

/// Takes shared (read) access, waiting while a writer holds or waits for the lock.
/// `WEFT_EDEADLK` if the caller holds the write lock. Taking a second read lock while a
/// writer waits deadlocks (as with every writer-preferring lock): do not nest reads.
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_read_lock(l: *mut weft_rwlock_t) -> weft_status_t {
    acquire("weft_rwlock_read_lock", l, false, false)
}

/// Takes shared access if no writer holds or waits for it; `WEFT_EBUSY` otherwise, and
/// `WEFT_EDEADLK` if the caller holds the write lock.
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_try_read_lock(l: *mut weft_rwlock_t) -> weft_status_t {
    acquire("weft_rwlock_try_read_lock", l, false, true)
}

/// Takes exclusive (write) access, waiting for readers and writers to leave.
/// `WEFT_EDEADLK` if the caller holds the write lock already. There is no upgrade: a
/// caller that holds a read lock on `l` and asks for the write lock waits for itself
/// forever (weft counts read locks per task, not per lock, so it cannot tell).
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_write_lock(l: *mut weft_rwlock_t) -> weft_status_t {
    acquire("weft_rwlock_write_lock", l, true, false)
}

/// Takes exclusive access if nobody holds the lock; `WEFT_EBUSY` otherwise, and
/// `WEFT_EDEADLK` if the caller holds the write lock already.
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_try_write_lock(l: *mut weft_rwlock_t) -> weft_status_t {
    acquire("weft_rwlock_try_write_lock", l, true, true)
}

/// Releases the caller's write lock, or one of its read locks. `WEFT_EPERM` if the
/// caller holds neither (read locks are counted per task, not per lock: a task that
/// holds a read lock on another rwlock is not caught).
#[no_mangle]
pub unsafe extern "C" fn weft_rwlock_unlock(l: *mut weft_rwlock_t) -> weft_status_t {
    ffi("weft_rwlock_unlock", || {
        let (repr, rt) = rwlock_ref(l, false)?;
        let ctx = context::current();
        if repr.writer.load(Relaxed) == ctx.id {
            repr.writer.store(0, Relaxed);
            return check_plugin(plat_call!(rt.table, rwlock_write_unlock(repr.plugin_bytes())), || {
                format!("cannot unlock rwlock {l:p}")
            });
        }
        let held = ctx.read_locks_held.load(Relaxed);
        let readers = repr.readers.load(Relaxed);
        if held == 0 || readers == 0 {
            fail!(WEFT_EPERM, "rwlock {l:p} is not held by the caller");
        }
        if repr.readers.fetch_update(AcqRel, Relaxed, |r| r.checked_sub(1)).is_err() {
            fail!(WEFT_EPERM, "rwlock {l:p} is not read-locked");
        }
        ctx.read_locks_held.fetch_sub(1, Relaxed);
        check_plugin(plat_call!(rt.table, rwlock_read_unlock(repr.plugin_bytes())), || {
            format!("cannot unlock rwlock {l:p}")
        })
    })
}
