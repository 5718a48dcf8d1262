//! Mutexes, conditions and rwlocks in host memory, over one common layout:
//!
//! ```text
//! | tag (u32) | count (u32) | runtime (ptr) | extra (per kind) | the plugin's bytes |
//! ```
//!
//! The tag says what the memory holds (so uninitialised and destroyed objects are
//! refused); `count` is the kind's counter (a mutex's byte lock and extra levels, a
//! condition's waiters, an rwlock's readers); `extra` is a mutex's owner or an
//! rwlock's writer. A mutex on a platform whose mutex is a byte lock keeps the plugin's
//! bytes in its `count`, beside the tag, not in the plugin's field (see `mutex.rs`).
//! The runtime keeps this bookkeeping beside the plugin's lock, so every platform gets
//! the same error checks.
use std::ffi::c_void;
use std::sync::atomic::{
    AtomicPtr, AtomicU32, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

use weft_platform::fork_lock::ForkMutex;
use weft_platform::*;

use crate::ffi::error::{check_plugin, fail, Result};
use crate::ffi::handle::{Handle, Lifetime};
use crate::runtime::checks;
use crate::runtime::Runtime;

pub(crate) mod cond;
pub(crate) mod mutex;
pub(crate) mod rwlock;

/// The tag of a destroyed object, whatever it was.
const TAG_DESTROYED: u32 = 0xdead_0b1e;
/// The tag of a static object while one caller binds it to a runtime.
const TAG_BINDING: u32 = 0x5742_4e44;

/// Held by the caller that binds a static object, from before it marks the object
/// `TAG_BINDING` until the object is live (or static again). A fork waits for it (it is
/// one of the locks `fork.rs` takes before a fork), so no child inherits an object
/// marked binding by a thread it does not have, which its callers would wait on for
/// ever; and a caller that finds an object binding waits here, not in a loop.
static BINDING: ForkMutex<()> = ForkMutex::new(());

/// The binding lock (see `fork`).
pub(crate) fn binding_lock() -> &'static weft_platform::fork_lock::RawForkLock {
    // SAFETY: only the raw lock is handed out; it guards no data.
    unsafe { BINDING.raw() }
}

/// What distinguishes one kind of sync object from another.
pub(crate) trait SyncKind: 'static {
    /// The name in messages.
    const KIND: &'static str;
    /// The function that initialises one.
    const INIT_FN: &'static str;
    /// The tag of a statically initialised object (`WEFT_MUTEX_INIT`...), and the live
    /// tag it gets when it binds to a runtime on first use.
    const STATIC: u32;
    const STATIC_LIVE: u32;
    const LIVE: &'static [u32];
    /// Per-kind state after the common header.
    type Extra;
    /// The plugin's bytes.
    type Bytes;
    fn new_extra() -> Self::Extra;
    fn new_bytes() -> Self::Bytes;
    fn plugin_init(table: &weft_platform_t) -> weft_plat_init_fn;
    /// Whether the plugin's bytes are those of `count` instead of the `plugin` field:
    /// a mutex on a platform whose mutex is a byte lock (see `mutex.rs`).
    fn plugin_in_count(_table: &weft_platform_t) -> bool {
        false
    }
    /// `count` of a fresh object.
    fn fresh_count(_table: &weft_platform_t) -> u32 {
        0
    }
    fn plugin_destroy(table: &weft_platform_t) -> weft_plat_obj_fn;
}

#[repr(C)]
pub(crate) struct SyncObject<K: SyncKind> {
    tag: AtomicU32,
    pub(crate) count: AtomicU32,
    rt: AtomicPtr<Runtime>,
    pub(crate) extra: K::Extra,
    plugin: K::Bytes,
}

impl<K: SyncKind> Handle for SyncObject<K> {
    const KIND: &'static str = K::KIND;
    const LIVE: &'static [u32] = K::LIVE;
    const DEAD: u32 = TAG_DESTROYED;
    const DEAD_REASON: &'static str = "was destroyed";
    const LIFETIME: Lifetime = Lifetime::HostMemory;
    const INIT_FN: &'static str = K::INIT_FN;
    fn tag(&self) -> &AtomicU32 {
        &self.tag
    }
}

impl<K: SyncKind> SyncObject<K> {
    /// Writes a fresh, not yet live object of `rt` into host memory.
    ///
    /// # Safety
    /// `ptr` is the host's, non-NULL, and addresses `size_of::<Self>()` writable bytes
    /// aligned for it (the public type's size and alignment), not in use by a live
    /// object.
    pub(crate) unsafe fn place<'a>(ptr: *mut Self, rt: &'static Runtime) -> &'a Self {
        // SAFETY: see above.
        unsafe {
            ptr.write(SyncObject {
                tag: AtomicU32::new(0),
                count: AtomicU32::new(K::fresh_count(&rt.table)),
                rt: AtomicPtr::new(rt as *const Runtime as *mut Runtime),
                extra: K::new_extra(),
                plugin: K::new_bytes(),
            });
            &*ptr
        }
    }

    /// Has the plugin initialise its bytes, then makes the object live with `tag`.
    pub(crate) fn init(&self, rt: &Runtime, tag: u32) -> Result<()> {
        self.init_plugin_bytes(rt)?;
        if rt.checks.on() {
            rt.checks.created(K::KIND, self.addr());
        }
        self.tag.store(tag, Release);
        Ok(())
    }

    fn init_plugin_bytes(&self, rt: &Runtime) -> Result<()> {
        self.init_plugin_bytes_from(rt, 0)
    }

    fn init_plugin_bytes_from(&self, rt: &Runtime, tag: u32) -> Result<()> {
        debug_assert!(self.tag.load(Relaxed) == tag);
        check_plugin(plat_init(K::plugin_init(&rt.table), rt.prt, self.plugin_bytes()), || {
            format!("the platform could not initialise the {}", K::KIND)
        })
    }

    /// An object of weft's own (the pool's, the parking table's), live with `tag`:
    /// leaked, as its runtime is never freed either, and left out of the checks, whose
    /// reports are about the host's locks.
    pub(crate) fn internal(rt: &'static Runtime, tag: u32) -> Result<&'static Self> {
        let memory = Box::into_raw(Box::new(std::mem::MaybeUninit::<Self>::zeroed())) as *mut Self;
        // SAFETY: fresh, zeroed memory of the object's size and alignment, used by no one.
        let object: &'static Self = unsafe { Self::place(memory, rt) };
        object.init_plugin_bytes(rt)?;
        object.tag.store(tag, Release);
        Ok(object)
    }

    /// If `ptr` holds this kind's static initialiser, binds it to `rt` on this first use
    /// (or waits while another caller does). False if it holds something else.
    ///
    /// # Safety
    /// `ptr` is the host's, non-NULL, and addresses an object of the public type's size
    /// and alignment.
    pub(crate) unsafe fn bind_static(ptr: *mut Self, rt: impl FnOnce() -> Result<&'static Runtime>) -> Result<bool> {
        // SAFETY: the tag is the first field, read atomically (see above).
        let tag = unsafe { &(*ptr).tag };
        // Neither static nor being bound: nothing to take a lock for (a live object of
        // another kind, a destroyed one, garbage).
        let seen = tag.load(Acquire);
        if seen != K::STATIC && seen != TAG_BINDING {
            return Ok(K::LIVE.contains(&seen));
        }
        let _binding = BINDING.lock();
        if let Err(found) = tag.compare_exchange(K::STATIC, TAG_BINDING, Acquire, Acquire) {
            // Bound (or destroyed) by the caller that held the lock before.
            return Ok(K::LIVE.contains(&found));
        }
        let rt = match rt() {
            Ok(rt) => rt,
            Err(e) => {
                tag.store(K::STATIC, Release);
                return Err(e);
            }
        };
        // SAFETY: this caller won the binding: nobody else writes the object. Others
        // may read its first word meanwhile (a lock's fast path swaps it, and fails:
        // the tag is not live), so the fields they may touch are stored atomically.
        let object = unsafe {
            let object = &*ptr;
            object.count.store(K::fresh_count(&rt.table), Relaxed);
            object.rt.store(rt as *const Runtime as *mut Runtime, Relaxed);
            std::ptr::addr_of_mut!((*ptr).extra).write(K::new_extra());
            std::ptr::addr_of_mut!((*ptr).plugin).write(K::new_bytes());
            object
        };
        if let Err(e) = object.init_plugin_bytes_from(rt, TAG_BINDING) {
            tag.store(K::STATIC, Release);
            return Err(e);
        }
        if rt.checks.on() {
            rt.checks.created(K::KIND, object.addr());
        }
        tag.store(K::STATIC_LIVE, Release);
        Ok(true)
    }

    /// A static object never used: destroying it only marks it destroyed.
    pub(crate) fn destroy_unbound(&self) -> bool {
        self.tag.compare_exchange(K::STATIC, TAG_DESTROYED, AcqRel, Acquire).is_ok()
    }

    /// The object's address: its identity in reports and in the checks' graphs.
    pub(crate) fn addr(&self) -> usize {
        self as *const Self as usize
    }

    /// The runtime of a live object.
    pub(crate) fn runtime(&self) -> &'static Runtime {
        // SAFETY: stored before the live tag (Release, read with Acquire by the check
        // that gave out `self`); runtimes are never freed.
        unsafe { &*self.rt.load(Relaxed) }
    }

    /// The runtime, if it is still open.
    pub(crate) fn open_runtime(&self) -> Result<&'static Runtime> {
        let rt = self.runtime();
        if !rt.is_open() {
            fail!(
                WEFT_EINVAL,
                "{}",
                crate::runtime::fork::not_open(rt, format_args!("the runtime of {} {:p}", K::KIND, self))
            );
        }
        Ok(rt)
    }

    pub(crate) fn tag_now(&self) -> u32 {
        self.tag.load(Relaxed)
    }

    pub(crate) fn plugin_bytes(&self) -> *mut c_void {
        if K::plugin_in_count(&self.runtime().table) {
            return &self.count as *const AtomicU32 as *mut c_void;
        }
        &self.plugin as *const K::Bytes as *mut c_void
    }

    /// Destroys the object unless `busy` names why it is in use (`WEFT_EBUSY`).
    pub(crate) fn destroy(&self, busy: Option<String>) -> Result<()> {
        if let Some(why) = busy {
            fail!(WEFT_EBUSY, "{} {:p} {why}", K::KIND, self);
        }
        let rt = self.runtime();
        let destroy = K::plugin_destroy(&rt.table);
        debug_assert!(destroy.is_some());
        // SAFETY: a member of an accepted table (checked non-NULL by the loader), on
        // this object's initialised plugin bytes.
        let status = unsafe { destroy.unwrap_unchecked()(self.plugin_bytes()) };
        check_plugin(status, || format!("the platform could not destroy {} {:p}", K::KIND, self))?;
        if rt.checks.on() {
            rt.checks.destroyed(self.addr());
        }
        checks::forget_name(self.addr());
        self.tag.store(TAG_DESTROYED, Release);
        Ok(())
    }
}

fn plat_init(init: weft_plat_init_fn, prt: *mut weft_plat_rt_t, bytes: *mut c_void) -> weft_status_t {
    debug_assert!(init.is_some());
    // SAFETY: a member of an accepted table (checked non-NULL by the loader), on zeroed,
    // aligned bytes of the size the plugin asked for.
    unsafe { init.unwrap_unchecked()(prt, bytes) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_fills_its_public_type_exactly() {
        assert_eq!(std::mem::size_of::<mutex::MutexObject>(), WEFT_MUTEX_SIZE);
        assert_eq!(std::mem::size_of::<cond::CondObject>(), WEFT_COND_SIZE);
        assert_eq!(std::mem::size_of::<rwlock::RwLockObject>(), WEFT_RWLOCK_SIZE);
        assert!(std::mem::align_of::<mutex::MutexObject>() <= std::mem::align_of::<weft_mutex_t>());
        assert!(std::mem::align_of::<rwlock::RwLockObject>() <= std::mem::align_of::<weft_rwlock_t>());
    }
}
