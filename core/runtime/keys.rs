//! Task-local keys: process-wide (like pthread keys), each with an optional destructor.
//! The values live in each context, so a task keeps its values wherever it runs.
//!
//! A key names a slot and a generation: `generation << SLOT_BITS | (slot + 1)`. A
//! deleted key's slot goes back to a free list and the next key made there carries the
//! next generation, so a process that makes and deletes keys forever never runs out, and
//! a value set under the deleted key is never seen under the new one (a context records
//! which key set each of its slots). The first key of a slot has generation 0, so a
//! process that never deletes a key sees keys 1, 2, 3, ... and `locals[k - 1]` works
//! for them.
use std::sync::atomic::{AtomicU32, Ordering::Acquire, Ordering::Release};

use weft_platform::fork_lock::ForkMutex;
use weft_platform::*;

use crate::ffi::error::{fail, Result};
use crate::types::{weft_key_dtor_fn, weft_key_t, WEFT_KEYS_MAX, WEFT_KEY_SLOT_BITS};

const SLOT_MASK: u32 = (1 << WEFT_KEY_SLOT_BITS) - 1;
const GENERATIONS: u32 = 1 << (32 - WEFT_KEY_SLOT_BITS);

/// The registry behind the lock: per slot its destructor and the generation of its
/// next key; the slots free for reuse.
pub(crate) struct Registry {
    dtors: Vec<weft_key_dtor_fn>,
    next_generation: Vec<u32>,
    free: Vec<u32>,
}

pub(crate) static KEYS: ForkMutex<Registry> =
    ForkMutex::new(Registry { dtors: Vec::new(), next_generation: Vec::new(), free: Vec::new() });

/// The live key of each slot (0: none), readable without the lock: the get/set fast
/// path takes none. Zero-initialised, so the pages of slots never used are never
/// touched (4 MiB of address space, not of memory).
static KEY_AT: [AtomicU32; WEFT_KEYS_MAX as usize] = [const { AtomicU32::new(0) }; WEFT_KEYS_MAX as usize];

/// Registers a key with its destructor.
pub(crate) fn create(dtor: weft_key_dtor_fn) -> Result<weft_key_t> {
    let mut keys = KEYS.lock();
    let slot = match keys.free.pop() {
        Some(slot) => slot as usize,
        None if keys.dtors.len() < WEFT_KEYS_MAX as usize => {
            keys.dtors.push(None);
            keys.next_generation.push(0);
            keys.dtors.len() - 1
        }
        None => fail!(WEFT_ENOMEM, "all {WEFT_KEYS_MAX} task-local keys are in use"),
    };
    keys.dtors[slot] = dtor;
    let key = keys.next_generation[slot] << WEFT_KEY_SLOT_BITS | (slot as u32 + 1);
    KEY_AT[slot].store(key, Release);
    Ok(key)
}

/// Deletes `key`: its slot is free for a later key, and the values tasks set for it
/// are neither seen nor destroyed any more.
pub(crate) fn delete(key: weft_key_t) -> Result<()> {
    let mut keys = KEYS.lock();
    let slot = slot_index(key)?;
    KEY_AT[slot].store(0, Release);
    keys.dtors[slot] = None;
    keys.next_generation[slot] = (key >> WEFT_KEY_SLOT_BITS).wrapping_add(1) % GENERATIONS;
    keys.free.push(slot as u32);
    Ok(())
}

/// The destructor of `key`, if it is still live and has one.
pub(crate) fn destructor(key: weft_key_t) -> weft_key_dtor_fn {
    // Looked up under the lock that `create` and `delete` hold: a look before it could
    // find `key` live, and then read the destructor of a new key given its slot
    // meanwhile, which would run on a value set for another key.
    let keys = KEYS.lock();
    let slot = slot_of(key)?;
    keys.dtors[slot]
}

/// The slot of a live key, or None. One load (the fast path).
#[inline(always)]
pub(crate) fn slot_of(key: weft_key_t) -> Option<usize> {
    let slot = (key & SLOT_MASK).wrapping_sub(1) as usize;
    (slot < KEY_AT.len() && KEY_AT[slot].load(Acquire) == key).then_some(slot)
}

/// Whether `key` is live (created and not deleted).
pub(crate) fn is_live(key: weft_key_t) -> bool {
    slot_of(key).is_some()
}

/// The slot of `key`, or the error that says it is not live.
pub(crate) fn slot_index(key: weft_key_t) -> Result<usize> {
    match slot_of(key) {
        Some(index) => Ok(index),
        None => fail!(WEFT_EINVAL, "key {key} is not a live key (never made by weft_key_create, or deleted)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_count_from_one_and_unknown_keys_are_refused() {
        let key = create(None).unwrap();
        assert!(key >= 1);
        assert_eq!(slot_of(key), Some((key & SLOT_MASK) as usize - 1));
        assert_eq!(slot_of(0), None);
        assert_eq!(slot_of(u32::MAX), None);
        assert_eq!(slot_index(WEFT_KEYS_MAX + 1).unwrap_err().code, WEFT_EINVAL);
        assert!(destructor(key).is_none());
    }

    #[test]
    fn a_deleted_key_is_dead_and_its_slot_comes_back_with_a_new_generation() {
        let key = create(None).unwrap();
        delete(key).unwrap();
        assert!(!is_live(key));
        assert_eq!(delete(key).unwrap_err().code, WEFT_EINVAL);
        // Other tests make keys too: look for the slot among the next few keys.
        let again: Vec<weft_key_t> = (0..8).map(|_| create(None).unwrap()).collect();
        let reused = again.iter().find(|k| *k & SLOT_MASK == key & SLOT_MASK).copied();
        if let Some(reused) = reused {
            assert_ne!(reused, key);
            assert_eq!(reused >> WEFT_KEY_SLOT_BITS, (key >> WEFT_KEY_SLOT_BITS) + 1);
        }
        for k in again {
            delete(k).unwrap();
        }
    }
}
