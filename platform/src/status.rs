//! Items shared by the host API (`weft.h`) and the plugin ABI (`weft_platform.h`):
//! status codes, time, capability bits and the host-memory sync objects.
//!
//! cbindgen emits these into `weft.h`; `weft_platform.h` includes `weft.h` and does not
//! repeat them.

/// The result of every fallible weft call: `WEFT_OK` (0) or one of the `WEFT_E*` codes.
/// The numbers are stable and never reused; `weft_strerror` names each.
pub type weft_status_t = i32;

/// Success.
pub const WEFT_OK: weft_status_t = 0;
/// An argument is invalid: NULL, an uninitialised or destroyed object, an unknown flag,
/// a closed runtime.
pub const WEFT_EINVAL: weft_status_t = 1;
/// The deadline passed before the operation could complete.
pub const WEFT_ETIMEDOUT: weft_status_t = 2;
/// The object is in use: a mutex held by another task (trylock), a runtime with running
/// tasks (close), a held mutex (destroy).
pub const WEFT_EBUSY: weft_status_t = 3;
/// The call would wait for the caller itself: a non-recursive relock by the owner, a task
/// joining itself.
pub const WEFT_EDEADLK: weft_status_t = 4;
/// The caller does not own what it tries to release: an unlock by a non-owner, a
/// condition wait without the mutex, a thread that is not a mutator.
pub const WEFT_EPERM: weft_status_t = 5;
/// The channel is closed.
pub const WEFT_ECLOSED: weft_status_t = 6;
/// Memory or another resource (threads, keys, a recursive mutex's levels) ran out.
pub const WEFT_ENOMEM: weft_status_t = 7;
/// The calling task was cancelled with `weft_cancel`; the call did not complete.
pub const WEFT_ECANCELED: weft_status_t = 8;
/// The loaded platform does not offer this operation.
pub const WEFT_ENOTSUP: weft_status_t = 9;
/// A platform plugin could not be found, loaded or accepted.
pub const WEFT_EPLUGIN: weft_status_t = 10;
/// A bug inside weft or a plugin (a caught panic, a broken invariant).
pub const WEFT_EINTERNAL: weft_status_t = 11;

/// A deadline that never expires.
pub const WEFT_FOREVER: i64 = i64::MAX;

/// Capability bit: tasks are OS threads (blocking in foreign code blocks only that task).
pub const WEFT_CAP_OS_THREADS: u64 = 1 << 0;
/// Capability bit: the platform runs many tasks on a few OS threads (M:N).
pub const WEFT_CAP_GREEN_TASKS: u64 = 1 << 1;
/// Capability bit: the clock is virtual (`weft_now` advances only when every task waits).
pub const WEFT_CAP_VIRTUAL_TIME: u64 = 1 << 2;
/// Capability bit: scheduling is deterministic and replayable from the configured seed.
pub const WEFT_CAP_DETERMINISTIC: u64 = 1 << 3;
/// Capability bit: `weft_cancel` wakes a task blocked in a cancellation point.
pub const WEFT_CAP_CANCEL: u64 = 1 << 4;
/// Capability bit: the plugin's mutex is one byte (`mutex_size` 1), a byte lock that
/// libweft may take and release itself, without calling the plugin: 0 is free, 1 is held
/// with nobody waiting, every other value is the plugin's (held with waiters, say).
/// libweft keeps the byte in the first 8-byte word of the `weft_mutex_t`, beside its
/// tag (the plugin's bytes are then 4-aligned), takes a free mutex by one
/// compare-and-swap of that word (byte 0 -> 1, acquire) and releases an uncontended one
/// the same way (1 -> 0, release); when a swap fails it calls `mutex_try_lock` or
/// `mutex_unlock`, and it always calls `mutex_lock` / `mutex_lock_until` to wait. The
/// plugin changes the byte only by atomic read-modify-writes, or by a store of the byte
/// alone while it holds the lock. `parking_lot::RawMutex` and a futex word used as a
/// byte follow it. A deterministic platform must not claim it (its locks must be switch
/// points).
pub const WEFT_CAP_MUTEX_BYTE: u64 = 1 << 5;
/// Capability bit: the platform's `now` is `CLOCK_MONOTONIC` in nanoseconds, so libweft
/// may read that clock itself instead of calling `now` (`weft_now` then costs what
/// `clock_gettime` costs). A virtual-time platform must not claim it.
pub const WEFT_CAP_MONOTONIC_CLOCK: u64 = 1 << 6;
/// Capability bit: `fd_wait` takes `WEFT_IO_DRAINED` in its events (and makes use of
/// it). libweft removes the bit before calling a platform that does not claim this: a
/// level-triggered wait is a correct drained wait.
pub const WEFT_CAP_IO_DRAINED: u64 = 1 << 7;
/// Capability bit: the platform's `yield` is `sched_yield()` on the calling OS thread
/// and nothing else, so libweft may make that call itself (`weft_yield` then costs what
/// `sched_yield` costs: no call through the table, and libweft's frame is gone before
/// the system call returns). Only with `WEFT_CAP_OS_THREADS`; a deterministic platform
/// must not claim it (its yields must be switch points).
pub const WEFT_CAP_SCHED_YIELD: u64 = 1 << 8;

/// Size in bytes of `weft_mutex_t`; part of the ABI.
pub const WEFT_MUTEX_SIZE: usize = 64;
/// Size in bytes of `weft_cond_t`; part of the ABI.
pub const WEFT_COND_SIZE: usize = 64;
/// Size in bytes of `weft_rwlock_t`; part of the ABI.
pub const WEFT_RWLOCK_SIZE: usize = 80;

/// A mutex that lives in host memory (a global, a struct member, the heap).
/// Initialise it with `weft_mutex_init`, destroy it with `weft_mutex_destroy`; the host
/// owns the memory, weft owns the contents between the two calls. Never copy or move an
/// initialised mutex.
#[repr(C)]
pub struct weft_mutex_t {
    pub _opaque: [u64; 8],
}

/// A condition variable that lives in host memory; same rules as `weft_mutex_t`.
#[repr(C)]
pub struct weft_cond_t {
    pub _opaque: [u64; 8],
}

/// A readers-writer lock that lives in host memory; same rules as `weft_mutex_t`.
#[repr(C)]
pub struct weft_rwlock_t {
    pub _opaque: [u64; 10],
}

const _: () = assert!(core::mem::size_of::<weft_mutex_t>() == WEFT_MUTEX_SIZE);
const _: () = assert!(core::mem::size_of::<weft_cond_t>() == WEFT_COND_SIZE);
const _: () = assert!(core::mem::size_of::<weft_rwlock_t>() == WEFT_RWLOCK_SIZE);

/// `weft_chan_new` capacity: the channel never fills; a send never waits (it fails
/// with `WEFT_ENOMEM` only when memory runs out).
pub const WEFT_CHAN_UNBOUNDED: usize = usize::MAX;

/// `weft_select_case_t.op`: send `elem_size` bytes from `buf` on the case's channel.
pub const WEFT_SELECT_SEND: i32 = 1;
/// `weft_select_case_t.op`: receive `elem_size` bytes into `buf` from the case's channel.
pub const WEFT_SELECT_RECV: i32 = 2;
/// `weft_select` flag: among the cases ready at once, take the first in array order
/// instead of a uniformly random one.
pub const WEFT_SELECT_ORDERED: u32 = 1;

/// `weft_fd_wait` events and ready events: the fd is readable, or the peer hung up
/// (end of file is readable: the next read returns 0 or the error).
pub const WEFT_IO_READ: u32 = 1;
/// `weft_fd_wait` events and ready events: the fd is writable.
pub const WEFT_IO_WRITE: u32 = 2;
/// In `weft_fd_wait`'s ready events only (asking for it changes nothing): the fd has an
/// error or hang-up condition; it is reported whichever events were asked for.
pub const WEFT_IO_ERROR: u32 = 4;
/// In `weft_fd_wait`'s events only, beside `WEFT_IO_READ` / `WEFT_IO_WRITE`: the
/// caller promises that since its last wait on this fd returned it read (for
/// `WEFT_IO_READ`) or wrote (for `WEFT_IO_WRITE`) until the fd answered `EAGAIN`. The
/// platform may then wait for the fd's readiness to change instead of checking it now:
/// green then makes no system call to wait, as Go's netpoller (an fd that is still
/// ready may otherwise sleep until more data or room comes). Requires `weft_fd_forget`
/// before every close of the fd.
pub const WEFT_IO_DRAINED: u32 = 8;
