//! The running context's slot: three words per OS thread, read on every fast path.
//!
//! The slot is an initial-exec TLS variable (`weft_platform::tls_slot!`): a read is two
//! instructions, where a Rust `thread_local!` in a shared library calls `__tls_get_addr`
//! (11 instructions and a call, twice per mutex lock+unlock pair).
//!
//! Word 0 is the running context (what `context::current` returns), word 1 that
//! context's state pointer (`weft_task_set_state`), word 2 its owner token placed where
//! a mutex's first word holds it (`sync::mutex::owner_bits`: the mutex fast paths
//! swap it in and out with no other load). Every switch of the running context
//! (`context::enter`, which green and sim call through `host->context_set` when they
//! switch tasks on a worker) writes all three. Because the variable is initial-exec, its
//! offset from the thread pointer is the same on every thread: libweft publishes the
//! offset of word 1 (`weft_state_tls_offset_`, set by a constructor when the library
//! loads), and weft.h's inline `weft_task_state()` reads the word with one load through
//! the thread pointer, with no call into libweft. Elsewhere than x86-64 and aarch64
//! Linux the slot is a `thread_local!` and the offset is 0 (weft.h then calls
//! `weft_task_state_get`).
use std::ffi::c_void;

/// Word 0 of the slot: the running context.
const CONTEXT: usize = 0;
/// Word 1 of the slot: the running context's state pointer.
const STATE: usize = 1;
/// Word 2 of the slot: the running context's owner token, in place for a mutex's first
/// word (0: no context yet, or none with a token).
const OWNER: usize = 2;

/// Owned by libweft, for weft.h's inline `weft_task_state()` only (read it, never write
/// it): the offset of the running task's state word from the thread pointer, the same
/// on every thread; 0 until published, and where weft.h does not read it inline.
#[no_mangle]
#[used]
pub static mut weft_state_tls_offset_: isize = 0;

weft_platform::tls_slot!(
    /// This thread's running context and its state pointer.
    mod slot: 3 words in weft_tls_slot
);

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod publish {
    use std::sync::atomic::Ordering::Relaxed;

    /// Publishes the state word's offset for weft.h. Not a `Once`: every writer writes
    /// the same value, and a child forked during another thread's `call_once` would
    /// wait for it for ever.
    pub(super) fn offset() {
        // SAFETY: an aligned word that libweft accesses only here, atomically; weft.h
        // reads it, and takes 0 (before the first write) as "not published: call
        // weft_task_state_get".
        let word =
            unsafe { std::sync::atomic::AtomicIsize::from_ptr(std::ptr::addr_of_mut!(super::weft_state_tls_offset_)) };
        if word.load(Relaxed) == 0 {
            word.store(super::slot::offset() + (super::STATE * 8) as isize, Relaxed);
        }
    }

    extern "C" fn at_load() {
        offset();
    }

    // When the library loads. (Linked from libweft.a, a constructor in an object
    // nothing else pulls in may be left out: `set_state` publishes it too.)
    #[used]
    #[link_section = ".init_array"]
    static PUBLISH_OFFSET: extern "C" fn() = at_load;
}

/// The running context of this thread (NULL: none yet).
#[inline(always)]
pub(crate) fn context() -> *mut c_void {
    slot::read::<CONTEXT>() as *mut c_void
}

/// Makes `ctx` (with its state pointer `state` and its owner token's bits `owner`) the
/// running context of this thread.
#[inline(always)]
pub(crate) fn set(ctx: *mut c_void, state: *mut c_void, owner: u64) {
    slot::write::<CONTEXT>(ctx as usize);
    slot::write::<STATE>(state as usize);
    slot::write::<OWNER>(owner as usize);
}

/// The running context's owner token, placed as a mutex's first word holds it; 0 when
/// no context is running yet (or it has no token).
#[inline(always)]
pub(crate) fn owner_bits() -> u64 {
    slot::read::<OWNER>() as u64
}

/// The running context's state pointer, as this thread's slot holds it.
#[inline(always)]
pub(crate) fn state() -> *mut c_void {
    slot::read::<STATE>() as *mut c_void
}

/// Sets the running context's state pointer in this thread's slot.
#[inline(always)]
pub(crate) fn set_state(state: *mut c_void) {
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    publish::offset();
    slot::write::<STATE>(state as usize);
}
