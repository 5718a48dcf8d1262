//! Task-local keys: process-wide (like pthread keys), each with an optional destructor.
//! The values live in each context, so a task keeps its values wherever it runs.
use std::sync::atomic::{AtomicU32, Ordering::Acquire, Ordering::Release};

use parking_lot::Mutex;
use weft_platform::*;

use crate::ffi::error::{fail, Result};
use crate::types::{weft_key_dtor_fn, weft_key_t, WEFT_KEYS_MAX};

pub(crate) static KEYS: Mutex<Vec<weft_key_dtor_fn>> = Mutex::new(Vec::new());
/// `KEYS.len()`, readable without the lock: the get/set fast path takes no lock.
static KEY_COUNT: AtomicU32 = AtomicU32::new(0);

/// Registers a key with its destructor.
pub(crate) fn create(dtor: weft_key_dtor_fn) -> Result<weft_key_t> {
    let mut keys = KEYS.lock();
    if keys.len() as u32 >= WEFT_KEYS_MAX {
        fail!(WEFT_ENOMEM, "all {WEFT_KEYS_MAX} task-local keys are in use");
    }
    keys.push(dtor);
    let key = keys.len() as weft_key_t;
    KEY_COUNT.store(key, Release);
    Ok(key)
}

/// The destructor registered for slot `index`.
pub(crate) fn destructor(index: usize) -> weft_key_dtor_fn {
    KEYS.lock().get(index).copied().flatten()
}

/// The slot of a key that exists, or None. Loads only (the fast path).
#[inline(always)]
pub(crate) fn slot_of(key: weft_key_t) -> Option<usize> {
    (key != 0 && key <= KEY_COUNT.load(Acquire)).then(|| key as usize - 1)
}

/// The slot of `key`, or the error that says it was never created.
pub(crate) fn slot_index(key: weft_key_t) -> Result<usize> {
    match slot_of(key) {
        Some(index) => Ok(index),
        None => fail!(WEFT_EINVAL, "key {key} was not created by weft_key_create"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_count_from_one_and_unknown_keys_are_refused() {
        let key = create(None).unwrap();
        assert!(key >= 1);
        assert_eq!(slot_of(key), Some(key as usize - 1));
        assert_eq!(slot_of(0), None);
        assert_eq!(slot_index(WEFT_KEYS_MAX + 1).unwrap_err().code, WEFT_EINVAL);
        assert!(destructor(key as usize - 1).is_none());
    }
}
