//! Mutexes in host memory: error-checking always, recursive on request.
//!
//! The owner (the holding context's owner token, runtime/owner_token.rs) sits beside
//! the plugin's lock, and the recursion depth in the object, so every platform gets the
//! same checks: a relock by the owner is `WEFT_EDEADLK` (or counted, if recursive), an
//! unlock by anyone else `WEFT_EPERM`. In a runtime that runs the lock-order checks, the
//! word also carries `CHECKED`, so that the unlock's fast path, which swaps the word
//! from "held by the caller" to "free" and reads nothing of the runtime, never ends
//! there and the checks' bookkeeping runs.
//!
//! The first word of a mutex is its tag and its `count`:
//!
//! ```text
//! | tag (u32) | byte lock (u8) | owner token (23 bits) | CHECKED (1 bit) |
//! ```
//!
//! With the owner in the word, the lock fast path's swap (free -> held by the caller)
//! and the unlock's (held by the caller, nobody parked -> free) are each the whole
//! operation: an owner kept in a field of its own cost a store after the lock and a
//! load, a compare and a store before the unlock, 12-17 % of the contended throughput
//! from Rust (docs/performance.md, "The owner in the lock word"). The owner's extra
//! levels (`extra`) are written by the owner only.
//!
//! On a platform whose mutex is a byte lock (`WEFT_CAP_MUTEX_BYTE`), that lock is the
//! plugin's whole mutex, kept beside the tag so that the lock fast path is one
//! compare-and-swap of the word: it checks the tag and takes the lock at once, and the
//! first touch of the mutex's cache line is a write. A read of the tag first moved the
//! line twice when another CPU had written it last (shared for the read, then
//! exclusive for the swap; a `prefetchw` before the read did not help), and that was
//! most of the gap to parking_lot on contended locks (docs/performance.md, "The first
//! touch is the swap"). Elsewhere the byte is `NO_BYTE_LOCK`, so the swap fails and the
//! plugin's try-lock takes the mutex.
//!
//! libweft writes the word only whole, 8 bytes at a time (its narrower loads of the tag
//! or the byte lie inside such a store, which the store buffer forwards): a byte-wide
//! release followed by the next lock's word-wide swap cannot be forwarded and stalls
//! the pair, uncontended, from about 6 to about 9.7 ns.
//!
//! The plugin changes its byte lock (on the contended paths) while libweft swaps the
//! whole word and changes the levels in it: mixed-size atomic accesses, each an aligned
//! atomic read-modify-write or the lock holder's store of the byte alone, which x86-64
//! and AArch64 make atomic with respect to each other (Linux's queued spinlock relies on
//! the same).
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use weft_platform::*;

use super::{SyncKind, SyncObject};
use crate::ffi::error::{check_plugin, fail, Result};
use crate::plugin::plat_call;
use crate::runtime::checks::Holders;
use crate::runtime::context::Context;
use crate::runtime::owner_token::{self, MAX_TOKEN};
use crate::runtime::safepoint;
use crate::runtime::Runtime;
use crate::types::WEFT_MUTEX_RECURSIVE;

pub(crate) struct MutexKind;

const TAG_PLAIN: u32 = 0x574d_5458;
const TAG_RECURSIVE: u32 = 0x574d_5452;

#[cfg(not(target_endian = "little"))]
compile_error!("the first word of a weft mutex (tag, byte lock, owner) is laid out for little-endian targets");

/// `count` on a platform without a byte lock: the byte is not a lock, and no swap of
/// the fast path takes it.
const NO_BYTE_LOCK: u32 = 0xff;
/// Where the byte lock and the owner token are in the first word.
const LOCK_SHIFT: u32 = 32;
const OWNER_SHIFT: u32 = 40;
const OWNER_MASK: u64 = (MAX_TOKEN as u64) << OWNER_SHIFT;
/// Set in the first word beside the owner's token when the mutex's runtime runs the
/// checks (fixed when the runtime opens): the unlock's fast path (`release_own`), which
/// expects the word without it, fails there, and the cold path records the release.
const CHECKED: u64 = 1 << 63;
/// The most extra levels a recursive mutex counts.
const MAX_LEVELS: u32 = (1 << 24) - 1;

/// A context's owner token as a mutex's first word holds it (see the module comment).
#[inline(always)]
pub(crate) const fn owner_bits(token: u32) -> u64 {
    (token as u64) << OWNER_SHIFT
}

/// The first word of a mutex with `tag`, the byte lock at `lock` and no owner
/// (little-endian: the tag first).
#[inline(always)]
const fn first_word(tag: u32, lock: u8) -> u64 {
    tag as u64 | (lock as u64) << LOCK_SHIFT
}

/// What a mutex's first word says about destroying it.
#[derive(Debug, PartialEq)]
enum InUse {
    No,
    /// It names an owner.
    Held,
    /// No owner, but the byte lock is not free: a lock through the plugin that has
    /// taken the byte but not named its owner yet, an unlock between the two, or
    /// waiters parked on a free lock.
    Busy,
}

/// Whether the mutex whose first word is `word` is in use; `byte_lock` on a platform
/// whose mutex is the byte in the word (elsewhere the plugin's destroy tells).
const fn in_use(word: u64, byte_lock: bool) -> InUse {
    if word & OWNER_MASK != 0 {
        InUse::Held
    } else if byte_lock && (word >> LOCK_SHIFT) as u8 != 0 {
        InUse::Busy
    } else {
        InUse::No
    }
}

/// A first word with its owner (token and `CHECKED`) replaced by `owner`; its tag and
/// byte lock kept.
const fn with_owner(word: u64, owner: u64) -> u64 {
    word & !(OWNER_MASK | CHECKED) | owner
}

impl SyncKind for MutexKind {
    const KIND: &'static str = "mutex";
    const INIT_FN: &'static str = "weft_mutex_init";
    const STATIC: u32 = 0x574d_5453;
    const STATIC_LIVE: u32 = TAG_PLAIN;
    const LIVE: &'static [u32] = &[TAG_PLAIN, TAG_RECURSIVE];
    /// The owner's extra levels (a recursive mutex's), written by the owner only.
    type Extra = AtomicU64;
    type Bytes = [u64; WEFT_PLATFORM_MUTEX_BYTES as usize / 8];
    fn new_extra() -> AtomicU64 {
        AtomicU64::new(0)
    }
    fn new_bytes() -> Self::Bytes {
        [0; WEFT_PLATFORM_MUTEX_BYTES as usize / 8]
    }
    fn plugin_init(table: &weft_platform_t) -> weft_plat_init_fn {
        table.mutex_init
    }
    fn plugin_destroy(table: &weft_platform_t) -> weft_plat_obj_fn {
        table.mutex_destroy
    }
    fn plugin_in_count(table: &weft_platform_t) -> bool {
        table.caps & WEFT_CAP_MUTEX_BYTE != 0
    }
    fn fresh_count(table: &weft_platform_t) -> u32 {
        if Self::plugin_in_count(table) {
            0
        } else {
            NO_BYTE_LOCK
        }
    }
}

/// A mutex; `count` holds the byte lock and the owner's extra levels (recursive mutexes,
/// changed only by the owner), `extra` the owner.
pub(crate) type MutexObject = SyncObject<MutexKind>;

impl MutexObject {
    /// The flags are checked before the object's memory is written (`check_flags`).
    pub(crate) fn init_mutex(&self, rt: &Runtime, flags: u32) -> Result<()> {
        self.init(rt, if flags & WEFT_MUTEX_RECURSIVE != 0 { TAG_RECURSIVE } else { TAG_PLAIN })
    }

    /// `WEFT_EINVAL` for flags `weft_mutex_init` does not know.
    pub(crate) fn check_flags(flags: u32) -> Result<()> {
        if flags & !WEFT_MUTEX_RECURSIVE != 0 {
            fail!(WEFT_EINVAL, "unknown flags 0x{:x}", flags & !WEFT_MUTEX_RECURSIVE);
        }
        Ok(())
    }

    /// A plain mutex of weft's own (see `SyncObject::internal`).
    pub(crate) fn internal_mutex(rt: &'static Runtime) -> Result<&'static MutexObject> {
        SyncObject::internal(rt, TAG_PLAIN)
    }

    pub(crate) fn destroy_mutex(&self) -> Result<()> {
        let byte_lock = MutexKind::plugin_in_count(&self.runtime().table);
        let busy = match in_use(self.first().load(Acquire), byte_lock) {
            InUse::No => None,
            InUse::Held => Some(format!("is held (by context {})", self.owner())),
            InUse::Busy => Some("is being locked or unlocked, or has waiters".to_owned()),
        };
        self.destroy(busy)
    }

    /// The owner's context id; 0 when free.
    pub(crate) fn owner(&self) -> u64 {
        owner_token::owner_id(self.owner_token())
    }

    /// The owner's token; 0 when free.
    fn owner_token(&self) -> u32 {
        ((self.first().load(Relaxed) & OWNER_MASK) >> OWNER_SHIFT) as u32
    }

    /// Whether context `ctx` holds the mutex.
    #[inline(always)]
    pub(crate) fn held_by(&self, ctx: &Context) -> bool {
        ctx.owner_token != 0 && self.owner_token() == ctx.owner_token
    }

    /// `WEFT_ENOMEM` for a context without an owner token (more contexts live than
    /// tokens, runtime/owner_token.rs): it cannot be told apart from "nobody".
    fn check_token(ctx: &Context) -> Result<()> {
        if ctx.owner_token == 0 {
            fail!(
                WEFT_ENOMEM,
                "the calling context has no lock-owner token: more than {MAX_TOKEN} tasks and threads are alive"
            );
        }
        Ok(())
    }

    fn is_recursive(&self) -> bool {
        self.tag_now() == TAG_RECURSIVE
    }

    /// The first word: tag, byte lock and levels (see the module comment).
    #[inline(always)]
    fn first(&self) -> &AtomicU64 {
        // SAFETY: the tag and `count`, the object's first 8 bytes (8-aligned), only
        // accessed atomically.
        unsafe { &*(self as *const Self as *const AtomicU64) }
    }

    /// The owner's extra levels.
    #[inline(always)]
    fn levels(&self) -> u32 {
        self.extra.load(Relaxed) as u32
    }

    /// The byte lock's state (on a platform that has one).
    fn lock_byte(&self) -> u8 {
        (self.first().load(Relaxed) >> LOCK_SHIFT) as u8
    }

    /// One compare-and-swap of the first word of a mutex tagged `tag`, from the byte
    /// lock at `from` with no owner to the byte lock at `to`.
    #[inline(always)]
    fn swap_lock(first: &AtomicU64, tag: u32, from: u8, to: u8) -> bool {
        let order = if to > from { Acquire } else { Release };
        first.compare_exchange(first_word(tag, from), first_word(tag, to), order, Relaxed).is_ok()
    }

    /// The first word of the host's `weft_mutex_t` at `m`, before anything says it is a
    /// live mutex: None if `m` is NULL or not 8-aligned (no `weft_mutex_t` is).
    ///
    /// # Safety
    /// As for `take_free`; the word must only be accessed atomically.
    #[inline(always)]
    unsafe fn first_word_at<'a>(m: *const MutexObject) -> Option<&'a AtomicU64> {
        if m.is_null() || !(m as usize).is_multiple_of(8) {
            return None;
        }
        // SAFETY: the host's memory of a weft_mutex_t's size, 8-aligned (checked).
        Some(unsafe { &*(m as *const AtomicU64) })
    }

    /// Takes the free mutex at `m` for the context whose `owner_bits` are `owner`, with
    /// one compare-and-swap of its first word (see the module comment): the mutex if it
    /// took it, None if `m` is not a live mutex, or is held, or has waiters parked, or
    /// lives on a platform without a byte lock. The caller then owns the mutex (the
    /// checks, if on, are still to be told; in a closed runtime the lock goes back).
    ///
    /// # Safety
    /// `m` is NULL or the host's pointer to memory of a `weft_mutex_t`'s size, as for
    /// `handle::probe`. Its first word is read and swapped atomically, and changed only
    /// if it holds a live mutex's tag with the lock free and no owner.
    #[inline(always)]
    pub(crate) unsafe fn take_free<'a>(m: *const MutexObject, owner: u64) -> Option<&'a MutexObject> {
        // SAFETY: as this function's.
        let first = unsafe { Self::first_word_at(m) }?;
        let held = first_word(TAG_PLAIN, 1) | owner;
        match first.compare_exchange(first_word(TAG_PLAIN, 0), held, Acquire, Relaxed) {
            Ok(_) => {}
            Err(found) if found == first_word(TAG_RECURSIVE, 0) => {
                let held = first_word(TAG_RECURSIVE, 1) | owner;
                if first.compare_exchange(found, held, Acquire, Relaxed).is_err() {
                    return None;
                }
            }
            Err(_) => return None,
        }
        // SAFETY: it holds a live mutex (its tag, read with Acquire by the swap).
        Some(unsafe { &*m })
    }

    /// Frees the plain mutex at `m` if the context whose `owner_bits` are `owner`
    /// holds it with nobody parked on it, in a runtime without the checks: one
    /// compare-and-swap of its first word (see the module comment). False otherwise (a
    /// recursive mutex, waiters, the checks, a platform without a byte lock, a caller
    /// that is not the owner, not a mutex): the cold path sorts those out.
    ///
    /// # Safety
    /// As for `take_free`.
    #[inline(always)]
    pub(crate) unsafe fn release_own(m: *const MutexObject, owner: u64) -> bool {
        // SAFETY: as this function's.
        let Some(first) = (unsafe { Self::first_word_at(m) }) else { return false };
        first.compare_exchange(first_word(TAG_PLAIN, 1) | owner, first_word(TAG_PLAIN, 0), Release, Relaxed).is_ok()
    }

    /// Records context `ctx` as the owner of the plugin's lock it just took (or that the
    /// fast path's swap gave it: then the token is there already), marked if `rt` runs
    /// the checks (`CHECKED`). A read-modify-write, as the plugin may change the byte
    /// lock meanwhile, that replaces the owner bits rather than adding to them: bits left
    /// over (a condition wait whose plugin failed to take the mutex back still marks the
    /// caller) must not merge with the token into a third context's.
    #[inline(always)]
    pub(crate) fn own(&self, rt: &Runtime, ctx: &Context) {
        let mark = if rt.checks.on() { CHECKED } else { 0 };
        let owner = owner_bits(ctx.owner_token) | mark;
        let _ = self.first().fetch_update(Relaxed, Relaxed, |word| Some(with_owner(word, owner)));
    }

    /// Hands ownership over around a condition wait: returns the levels to restore.
    pub(crate) fn release_for_wait(&self, rt: &Runtime, ctx: &Context) -> u32 {
        let depth = self.levels();
        if rt.checks.on() {
            for _ in 0..=depth {
                rt.checks.released(ctx, self.addr(), Holders::OwnerField);
            }
        }
        self.extra.store(0, Relaxed);
        self.disown();
        depth
    }

    pub(crate) fn reacquired_after_wait(&self, rt: &Runtime, ctx: &Context, depth: u32) {
        self.own(rt, ctx);
        self.extra.store(depth as u64, Relaxed);
        if rt.checks.on() {
            // The first level was taken again as a lock is, waiting while the caller
            // held its other locks: an order edge from each, as `weft_mutex_lock`'s
            // (a relock of M by a waiter holding N, against another task's M then N, is
            // a deadlock). The levels above it are recursive relocks: none.
            for level in 0..=depth {
                rt.checks.acquired(ctx, self.addr(), level == 0, Holders::OwnerField);
            }
        }
    }

    /// One try at the plugin's lock: a compare-and-swap of the byte lock where the
    /// platform allows it (`WEFT_EBUSY` if it fails), else the plugin's `mutex_try_lock`.
    #[inline(always)]
    fn plugin_try_lock(&self, rt: &Runtime) -> weft_status_t {
        if rt.table.caps & WEFT_CAP_MUTEX_BYTE != 0 {
            return if Self::swap_lock(self.first(), self.tag_now(), 0, 1) { WEFT_OK } else { WEFT_EBUSY };
        }
        plat_call!(rt.table, mutex_try_lock(self.plugin_bytes()))
    }

    /// `plugin_try_lock`, and where a byte lock's compare-and-swap failed on a value
    /// that is the plugin's (waiters parked on a lock that may be free), the plugin's
    /// `mutex_try_lock`, as `WEFT_CAP_MUTEX_BYTE` says. For the paths after the fast one.
    /// A byte lock is read before it is swapped (a held lock's cache line is not taken
    /// from its holder for a swap bound to fail).
    fn plugin_try_lock_any(&self, rt: &Runtime) -> weft_status_t {
        if rt.table.caps & WEFT_CAP_MUTEX_BYTE == 0 {
            return self.plugin_try_lock(rt);
        }
        match self.lock_byte() {
            0 => self.plugin_try_lock(rt),
            1 => WEFT_EBUSY,
            _ => plat_call!(rt.table, mutex_try_lock(self.plugin_bytes())),
        }
    }

    /// Releases the byte lock of a mutex nobody waits for, where the platform lets
    /// libweft do it (`WEFT_CAP_MUTEX_BYTE`). False if that does not apply: `release`.
    #[inline(always)]
    pub(crate) fn release_uncontended(&self, rt: &Runtime) -> bool {
        rt.table.caps & WEFT_CAP_MUTEX_BYTE != 0 && Self::swap_lock(self.first(), self.tag_now(), 1, 0)
    }

    /// Releases the plugin's lock (without libweft's owner bookkeeping, done before):
    /// `release_uncontended` where it applies, else the plugin's `mutex_unlock` (which
    /// wakes a waiter). The plugin's status.
    pub(crate) fn release(&self, rt: &Runtime) -> weft_status_t {
        if self.release_uncontended(rt) {
            return WEFT_OK;
        }
        plat_call!(rt.table, mutex_unlock(self.plugin_bytes()))
    }

    /// On a platform without a byte lock (where `take_free` never takes a mutex), one
    /// try of the plugin's lock, by a caller not its owner. True if it took it. Not on
    /// a deterministic platform (see `lock`).
    #[inline(always)]
    pub(crate) fn take_with_plugin_try(&self, rt: &Runtime, ctx: &Context) -> bool {
        rt.table.caps & (WEFT_CAP_MUTEX_BYTE | WEFT_CAP_DETERMINISTIC) == 0
            && ctx.owner_token != 0
            && !self.held_by(ctx)
            && self.plugin_try_lock(rt) == WEFT_OK
    }

    /// After a failed `take_free`, where the byte lock holds a value that is the
    /// plugin's (`WEFT_CAP_MUTEX_BYTE`; waiters are parked, and the lock may be free):
    /// the plugin's `mutex_try_lock`. True if it took the mutex. A held lock (1) is left
    /// alone: the caller goes to wait.
    #[inline(always)]
    pub(crate) fn lock_free_with_waiters(&self, rt: &Runtime, ctx: &Context) -> bool {
        if rt.table.caps & WEFT_CAP_MUTEX_BYTE != 0
            && ctx.owner_token != 0
            && !self.held_by(ctx)
            && self.lock_byte() > 1
            && plat_call!(rt.table, mutex_try_lock(self.plugin_bytes())) == WEFT_OK
        {
            self.own(rt, ctx);
            return true;
        }
        false
    }

    /// Relock by the owner: counted if recursive, `WEFT_EDEADLK` otherwise.
    fn relock(&self, rt: &Runtime, ctx: &Context) -> Result<()> {
        if self.is_recursive() {
            if self.levels() == MAX_LEVELS {
                fail!(
                    WEFT_ENOMEM,
                    "recursive mutex {:p} is held {} times already, the most it counts",
                    self,
                    MAX_LEVELS + 1
                );
            }
            self.extra.fetch_add(1, Relaxed);
            if rt.checks.on() {
                rt.checks.acquired(ctx, self.addr(), false, Holders::OwnerField);
            }
            return Ok(());
        }
        fail!(WEFT_EDEADLK, "mutex {:p} is already held by the caller (not recursive)", self)
    }

    /// Locks, waiting as long as it takes (`deadline` None) or until the deadline. A
    /// try first, so that an uncontended lock costs no blocking region; then a wait in
    /// one that never ends holding the mutex while the world is stopped (see
    /// `safepoint::lock_outside_stop`). No try on a deterministic platform: each plugin
    /// call is a switch point there, which its trace names, and a lock must read as the
    /// lock the host called.
    pub(crate) fn lock(&self, rt: &Runtime, ctx: &Context, deadline: Option<i64>) -> Result<()> {
        Self::check_token(ctx)?;
        if self.held_by(ctx) {
            return self.relock(rt, ctx);
        }
        let bytes = self.plugin_bytes();
        let first_try =
            if rt.table.caps & WEFT_CAP_DETERMINISTIC != 0 { WEFT_EBUSY } else { self.plugin_try_lock_any(rt) };
        let status = match first_try {
            WEFT_EBUSY => {
                // Only a wait without deadline can deadlock: a timed one ends
                // (`WEFT_FOREVER` is none: it was never checked).
                let watched = rt.checks.on() && deadline.is_none_or(|d| d == WEFT_FOREVER);
                if watched {
                    rt.checks.wait_for_lock(ctx, self.addr(), false)?;
                }
                let status = safepoint::lock_outside_stop(
                    rt,
                    || match deadline {
                        None => plat_call!(rt.table, mutex_lock(bytes)),
                        Some(deadline) => plat_call!(rt.table, mutex_lock_until(bytes, deadline)),
                    },
                    || {
                        plat_call!(rt.table, mutex_unlock(bytes));
                    },
                );
                if watched {
                    rt.checks.done_waiting(ctx);
                }
                status
            }
            status => status,
        };
        if status == WEFT_ETIMEDOUT {
            fail!(WEFT_ETIMEDOUT, "mutex {:p} was still held at the deadline", self);
        }
        check_plugin(status, || format!("cannot lock mutex {:p}", self))?;
        self.own(rt, ctx);
        if rt.checks.on() {
            rt.checks.acquired(ctx, self.addr(), true, Holders::OwnerField);
        }
        Ok(())
    }

    pub(crate) fn try_lock(&self, rt: &Runtime, ctx: &Context) -> Result<()> {
        Self::check_token(ctx)?;
        if self.held_by(ctx) {
            return self.relock(rt, ctx);
        }
        let status = self.plugin_try_lock_any(rt);
        if status == WEFT_EBUSY {
            fail!(WEFT_EBUSY, "mutex {:p} is held by another task", self);
        }
        check_plugin(status, || format!("cannot lock mutex {:p}", self))?;
        self.own(rt, ctx);
        if rt.checks.on() {
            // A try-lock never waits, so it cannot deadlock: no order edge into it.
            rt.checks.acquired(ctx, self.addr(), false, Holders::OwnerField);
        }
        Ok(())
    }

    /// Whether context `me` holds the mutex at its last level (one unlock releases it).
    #[inline(always)]
    pub(crate) fn is_last_level_of(&self, ctx: &Context) -> bool {
        self.held_by(ctx) && self.levels() == 0
    }

    /// Clears the owner (and `CHECKED`), before the plugin's lock is released (a new
    /// owner sets it as it takes that lock, or after). A read-modify-write: the plugin
    /// may change the byte lock meanwhile.
    #[inline(always)]
    pub(crate) fn disown(&self) {
        self.first().fetch_and(!(OWNER_MASK | CHECKED), Relaxed);
    }

    pub(crate) fn unlock(&self, rt: &Runtime, ctx: &Context) -> Result<()> {
        if !self.held_by(ctx) {
            let owner = self.owner();
            if self.owner_token() == 0 {
                fail!(WEFT_EPERM, "mutex {:p} is not locked", self);
            }
            fail!(WEFT_EPERM, "mutex {:p} is held by context {owner}, not by the caller", self);
        }
        if rt.checks.on() {
            rt.checks.released(ctx, self.addr(), Holders::OwnerField);
        }
        if self.levels() > 0 {
            self.extra.fetch_sub(1, Relaxed);
            return Ok(());
        }
        self.disown();
        self.unlocked(self.release(rt))
    }

    /// The outcome of a plugin unlock.
    pub(crate) fn unlocked(&self, status: weft_status_t) -> Result<()> {
        check_plugin(status, || format!("cannot unlock mutex {:p}", self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_owner_replaces_the_bits_left_over() {
        let (left_over, new) = (owner_bits(0b101) | CHECKED, owner_bits(0b011));
        let word = first_word(TAG_PLAIN, 3) | left_over;
        assert_eq!(with_owner(word, new), first_word(TAG_PLAIN, 3) | new);
        assert_eq!(
            with_owner(first_word(TAG_RECURSIVE, 1), new | CHECKED),
            first_word(TAG_RECURSIVE, 1) | new | CHECKED
        );
        assert_eq!(with_owner(first_word(TAG_PLAIN, 1) | owner_bits(MAX_TOKEN), 0), first_word(TAG_PLAIN, 1));
    }

    #[test]
    fn a_mutex_whose_byte_lock_is_taken_is_in_use_without_an_owner() {
        assert_eq!(in_use(first_word(TAG_PLAIN, 0), true), InUse::No);
        assert_eq!(in_use(first_word(TAG_PLAIN, 0) | CHECKED, true), InUse::No);
        assert_eq!(in_use(first_word(TAG_PLAIN, 1) | owner_bits(7), true), InUse::Held);
        // Locked through the plugin, owner not named yet; or waiters parked on it free.
        assert_eq!(in_use(first_word(TAG_PLAIN, 1), true), InUse::Busy);
        assert_eq!(in_use(first_word(TAG_RECURSIVE, 2), true), InUse::Busy);
        // Without a byte lock the byte is `NO_BYTE_LOCK`, and says nothing.
        assert_eq!(in_use(first_word(TAG_PLAIN, NO_BYTE_LOCK as u8), false), InUse::No);
        assert_eq!(in_use(first_word(TAG_PLAIN, NO_BYTE_LOCK as u8) | owner_bits(1), false), InUse::Held);
    }
}
