//! Mutexes, condition variables and rwlocks in the plugin bytes of host memory. One
//! task runs at a time, so their state is plain words (atomics only for the interior
//! mutability of host memory); every operation is a switch point, and a contended one
//! blocks the task through `wait`.
//!
//! * A mutex is its owner: 0 free, else the owning task's id + 1 (named in the
//!   deadlock report; an id, not the task's slot in the scheduler's table, which a
//!   later task takes once the owner ended).
//! * A condition is a sequence number.
//! * An rwlock is three words: readers, the writer (index + 1), waiting writers.
//!   Writers are preferred: once one waits, new readers wait too, until it gets the
//!   lock or gives up (a timed wait).
use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use weft_platform::*;

use crate::sched::{Call, Obj, Sim};
use crate::wait::{self, Wake};
use crate::{clock, on_sim, on_sim_or_closed, HOST};

pub(crate) const MUTEX_SIZE: u32 = 8;
pub(crate) const COND_SIZE: u32 = 4;
pub(crate) const RWLOCK_SIZE: u32 = 12;
pub(crate) const SYNC_ALIGN: u32 = 8;

unsafe fn words<'a, const N: usize>(obj: *mut c_void) -> &'a [AtomicU32; N] {
    // SAFETY: the runtime hands 8-aligned plugin bytes, at least as many as the table
    // declares for the object, initialised by `*_init`.
    unsafe { &*(obj as *const [AtomicU32; N]) }
}

unsafe fn mutex_word<'a>(m: *mut c_void) -> &'a AtomicU64 {
    // SAFETY: 8-aligned plugin bytes, `MUTEX_SIZE` of them, initialised by `mutex_init`.
    unsafe { &*(m as *const AtomicU64) }
}

/// The id of the task holding the mutex at `m`, if any (for the deadlock report).
///
/// # Safety
/// `m` is an initialised mutex of this plugin.
pub(crate) unsafe fn mutex_owner(m: usize) -> Option<u64> {
    // SAFETY: as the caller promises.
    unsafe { mutex_word(m as *mut c_void) }.load(Relaxed).checked_sub(1)
}

/// Makes the running task the owner of the free mutex `w`.
fn take(sim: &Sim, w: &AtomicU64) {
    w.store(sim.current_id() + 1, Relaxed);
    sim.took_mutex();
}

fn lock_call(name: &'static str, m: *mut c_void) -> Call {
    Call { name, obj: Obj::Mutex(m as usize) }
}

/// Takes the mutex, waiting until the deadline. True if taken.
fn lock(sim: &Sim, call: Call, m: *mut c_void, deadline: i64) -> bool {
    // SAFETY: an initialised mutex.
    let w = unsafe { mutex_word(m) };
    loop {
        if w.load(Relaxed) == 0 {
            take(sim, w);
            return true;
        }
        if let Wake::TimedOut = wait::park_in(sim, call, m as usize, || w.load(Relaxed) != 0, deadline, false) {
            if w.load(Relaxed) == 0 {
                take(sim, w);
                return true;
            }
            return false;
        }
    }
}

/// `sim`: the scheduler of the running task, None once the last runtime closed.
fn unlock(sim: Option<&Sim>, m: *mut c_void) {
    // SAFETY: an initialised mutex.
    unsafe { mutex_word(m) }.store(0, Relaxed);
    if let Some(sim) = sim {
        sim.released_mutex();
    }
    wait::wake_one(m as usize);
}

pub(crate) unsafe extern "C" fn mutex_init(_rt: *mut weft_plat_rt_t, obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the object's plugin bytes.
        unsafe { (obj as *mut AtomicU64).write(AtomicU64::new(0)) };
        if let Some(sim) = crate::sched::here() {
            sim.register(obj as usize);
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn sync_destroy(_obj: *mut c_void) -> weft_status_t {
    WEFT_OK
}

pub(crate) unsafe extern "C" fn mutex_lock(obj: *mut c_void) -> weft_status_t {
    on_sim(|sim| {
        let call = lock_call("weft_mutex_lock", obj);
        sim.step(call);
        lock(sim, call, obj, WEFT_FOREVER);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn mutex_trylock(obj: *mut c_void) -> weft_status_t {
    on_sim(|sim| {
        sim.step(lock_call("weft_mutex_try_lock", obj));
        // SAFETY: an initialised mutex.
        let w = unsafe { mutex_word(obj) };
        if w.load(Relaxed) != 0 {
            return WEFT_EBUSY;
        }
        take(sim, w);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn mutex_lock_until(obj: *mut c_void, deadline: i64) -> weft_status_t {
    on_sim(|sim| {
        let call = lock_call("weft_mutex_lock_until", obj);
        sim.step(call);
        if lock(sim, call, obj, deadline) {
            WEFT_OK
        } else {
            WEFT_ETIMEDOUT
        }
    })
}

pub(crate) unsafe extern "C" fn mutex_unlock(obj: *mut c_void) -> weft_status_t {
    on_sim_or_closed(|sim| {
        unlock(sim, obj);
        if let Some(sim) = sim {
            sim.step(lock_call("weft_mutex_unlock", obj));
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cond_init(_rt: *mut weft_plat_rt_t, obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the object's plugin bytes.
        unsafe { (obj as *mut AtomicU32).write(AtomicU32::new(0)) };
        if let Some(sim) = crate::sched::here() {
            sim.register(obj as usize);
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cond_wait_until(cond: *mut c_void, mutex: *mut c_void, deadline: i64) -> weft_status_t {
    on_sim(|sim| {
        let call = Call { name: "weft_cond_wait", obj: Obj::Cond(cond as usize, mutex as usize) };
        sim.step(call);
        if wait::cancelled() {
            return WEFT_ECANCELED;
        }
        if clock::expired(deadline) {
            // Timed out before it waited (its own step took the time), the wait still
            // gives the mutex up for a switch point, as a timed wait on threads does:
            // a host that loops on short timed waits until another task, which needs
            // the mutex, makes its predicate true would otherwise keep the mutex for
            // ever (a wait shorter than $WEFT_SIM_STEP_NS always ends here).
            crate::HOST.blocking(|| {
                unlock(Some(sim), mutex);
                let relock = lock_call("weft_cond_wait (relock)", mutex);
                sim.step(relock);
                lock(sim, relock, mutex, WEFT_FOREVER);
            });
            return WEFT_ETIMEDOUT;
        }
        // SAFETY: an initialised condition.
        let [seq] = unsafe { words::<1>(cond) };
        let seen = seq.load(Relaxed);
        let woke = crate::HOST.blocking(|| {
            unlock(Some(sim), mutex);
            let woke = wait::park_in(sim, call, cond as usize, || seq.load(Relaxed) == seen, deadline, true);
            lock(sim, lock_call("weft_cond_wait (relock)", mutex), mutex, WEFT_FOREVER);
            woke
        });
        match woke {
            Wake::Woken => WEFT_OK,
            Wake::TimedOut => WEFT_ETIMEDOUT,
            Wake::Cancelled => WEFT_ECANCELED,
        }
    })
}

pub(crate) unsafe extern "C" fn cond_signal(obj: *mut c_void) -> weft_status_t {
    on_sim(|sim| {
        // SAFETY: an initialised condition.
        let [seq] = unsafe { words::<1>(obj) };
        seq.store(seq.load(Relaxed).wrapping_add(1), Relaxed);
        wait::wake_one(obj as usize);
        sim.step(Call { name: "weft_cond_signal", obj: Obj::Cond(obj as usize, 0) });
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cond_broadcast(obj: *mut c_void) -> weft_status_t {
    on_sim(|sim| {
        // SAFETY: an initialised condition.
        let [seq] = unsafe { words::<1>(obj) };
        seq.store(seq.load(Relaxed).wrapping_add(1), Relaxed);
        wait::wake_all(obj as usize);
        sim.step(Call { name: "weft_cond_broadcast", obj: Obj::Cond(obj as usize, 0) });
        WEFT_OK
    })
}

const READERS: usize = 0;
const WRITER: usize = 1;
const WAITING_WRITERS: usize = 2;

fn readers_key(l: *mut c_void) -> usize {
    l as usize
}

fn writers_key(l: *mut c_void) -> usize {
    l as usize + 4
}

fn rw_call(name: &'static str, l: *mut c_void) -> Call {
    Call { name, obj: Obj::Rwlock(l as usize) }
}

pub(crate) unsafe extern "C" fn rwlock_init(_rt: *mut weft_plat_rt_t, obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the object's plugin bytes, 12 of them.
        unsafe { (obj as *mut [AtomicU32; 3]).write([AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)]) };
        if let Some(sim) = crate::sched::here() {
            sim.register(obj as usize);
        }
        WEFT_OK
    })
}

fn may_read(w: &[AtomicU32; 3]) -> bool {
    w[WRITER].load(Relaxed) == 0 && w[WAITING_WRITERS].load(Relaxed) == 0
}

fn may_write(w: &[AtomicU32; 3]) -> bool {
    w[WRITER].load(Relaxed) == 0 && w[READERS].load(Relaxed) == 0
}

pub(crate) unsafe extern "C" fn rwlock_read_lock(obj: *mut c_void) -> weft_status_t {
    on_sim(|sim| read_until(sim, rw_call("weft_rwlock_read_lock", obj), obj, WEFT_FOREVER))
}

pub(crate) unsafe extern "C" fn rwlock_read_lock_until(obj: *mut c_void, deadline: i64) -> weft_status_t {
    on_sim(|sim| read_until(sim, rw_call("weft_rwlock_read_lock_until", obj), obj, deadline))
}

/// Takes shared access, waiting until `deadline`.
fn read_until(sim: &Sim, call: Call, obj: *mut c_void, deadline: i64) -> weft_status_t {
    sim.step(call);
    // SAFETY: an initialised rwlock.
    let w = unsafe { words::<3>(obj) };
    while !may_read(w) {
        if let Wake::TimedOut = wait::park_in(sim, call, readers_key(obj), || !may_read(w), deadline, false) {
            if !may_read(w) {
                return WEFT_ETIMEDOUT;
            }
        }
    }
    w[READERS].fetch_add(1, Relaxed);
    WEFT_OK
}

pub(crate) unsafe extern "C" fn rwlock_try_read_lock(obj: *mut c_void) -> weft_status_t {
    on_sim(|sim| {
        sim.step(rw_call("weft_rwlock_try_read_lock", obj));
        // SAFETY: an initialised rwlock.
        let w = unsafe { words::<3>(obj) };
        if !may_read(w) {
            return WEFT_EBUSY;
        }
        w[READERS].fetch_add(1, Relaxed);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn rwlock_write_lock(obj: *mut c_void) -> weft_status_t {
    on_sim(|sim| write_until(sim, rw_call("weft_rwlock_write_lock", obj), obj, WEFT_FOREVER))
}

pub(crate) unsafe extern "C" fn rwlock_write_lock_until(obj: *mut c_void, deadline: i64) -> weft_status_t {
    on_sim(|sim| write_until(sim, rw_call("weft_rwlock_write_lock_until", obj), obj, deadline))
}

/// Takes exclusive access, counted among the waiting writers while it waits, until
/// `deadline`. A writer that gives up lets in the readers it held back.
fn write_until(sim: &Sim, call: Call, obj: *mut c_void, deadline: i64) -> weft_status_t {
    sim.step(call);
    // SAFETY: an initialised rwlock.
    let w = unsafe { words::<3>(obj) };
    if !may_write(w) {
        w[WAITING_WRITERS].fetch_add(1, Relaxed);
        while !may_write(w) {
            if let Wake::TimedOut = wait::park_in(sim, call, writers_key(obj), || !may_write(w), deadline, false) {
                if !may_write(w) {
                    w[WAITING_WRITERS].fetch_sub(1, Relaxed);
                    wake_next(obj, w);
                    return WEFT_ETIMEDOUT;
                }
            }
        }
        w[WAITING_WRITERS].fetch_sub(1, Relaxed);
    }
    w[WRITER].store(sim.current() as u32 + 1, Relaxed);
    WEFT_OK
}

pub(crate) unsafe extern "C" fn rwlock_try_write_lock(obj: *mut c_void) -> weft_status_t {
    on_sim(|sim| {
        sim.step(rw_call("weft_rwlock_try_write_lock", obj));
        // SAFETY: an initialised rwlock.
        let w = unsafe { words::<3>(obj) };
        if !may_write(w) {
            return WEFT_EBUSY;
        }
        w[WRITER].store(sim.current() as u32 + 1, Relaxed);
        WEFT_OK
    })
}

/// Wakes who may go on now: a waiting writer first, else every waiting reader.
fn wake_next(obj: *mut c_void, w: &[AtomicU32; 3]) {
    if w[WAITING_WRITERS].load(Relaxed) != 0 {
        if may_write(w) {
            wait::wake_one(writers_key(obj));
        }
    } else {
        wait::wake_all(readers_key(obj));
    }
}

pub(crate) unsafe extern "C" fn rwlock_read_unlock(obj: *mut c_void) -> weft_status_t {
    on_sim_or_closed(|sim| {
        // SAFETY: an initialised rwlock the caller reads.
        let w = unsafe { words::<3>(obj) };
        w[READERS].fetch_sub(1, Relaxed);
        wake_next(obj, w);
        if let Some(sim) = sim {
            sim.step(rw_call("weft_rwlock_read_unlock", obj));
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn rwlock_write_unlock(obj: *mut c_void) -> weft_status_t {
    on_sim_or_closed(|sim| {
        // SAFETY: an initialised rwlock the caller writes.
        let w = unsafe { words::<3>(obj) };
        w[WRITER].store(0, Relaxed);
        wake_next(obj, w);
        if let Some(sim) = sim {
            sim.step(rw_call("weft_rwlock_write_unlock", obj));
        }
        WEFT_OK
    })
}
