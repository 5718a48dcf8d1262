//! Lock-owner tokens: a number of 23 bits per live context, unique among the live
//! contexts, that a mutex's first word carries beside its byte lock while the context
//! holds it (runtime/sync/mutex.rs). With the owner in the word the lock's swap takes the
//! mutex and names its owner at once, and the unlock's swap checks the owner and frees
//! it at once: no owner field to store after the lock, nor to load, compare and clear
//! before the unlock. A context id (64 bits, never reused) does not fit beside the tag
//! and the byte; a token does, and `owner_id` gives the id back for the error messages
//! and the checks' reports.
//!
//! A token goes back to the pool when its context ends, and is taken again only once
//! `QUARANTINE` other tokens have gone back since: a mutex left held by a task that
//! ended keeps refusing other tasks' unlocks (`WEFT_EPERM`) until many contexts later
//! (glibc's error-checking mutex, which stores thread ids, has the same limit when
//! the kernel reuses an id). Tokens are handed out from 1 upwards, so the table from
//! token to id stays as small as the most contexts ever alive at once (plus the
//! quarantine). More than `MAX_TOKEN` live contexts (fewer, by up to the quarantine,
//! once every token was handed out) leave the newest without a token (0): their mutex
//! locks are refused (`WEFT_ENOMEM`).
use std::collections::VecDeque;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::Acquire, Ordering::Release};

use weft_platform::fork_lock::ForkMutex;

/// How many bits a token has: the first word of a mutex has 24 bits beside its tag and
/// byte lock; the top one marks a mutex of a runtime that runs the checks.
pub(crate) const TOKEN_BITS: u32 = 23;
/// The largest token; 0 is none.
pub(crate) const MAX_TOKEN: u32 = (1 << TOKEN_BITS) - 1;
/// Tokens that have gone back wait behind this many others before they are reused.
const QUARANTINE: usize = 4096;

/// The table from token to context id, in chunks made as the tokens in use grow.
const CHUNK: usize = 4096;
type Chunk = [AtomicU64; CHUNK];
static CHUNKS: [AtomicPtr<Chunk>; (MAX_TOKEN as usize + 1).div_ceil(CHUNK)] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; (MAX_TOKEN as usize + 1).div_ceil(CHUNK)];

struct Pool {
    /// The next token never handed out.
    fresh: u32,
    /// Tokens given back, oldest first.
    returned: VecDeque<u32>,
}

static POOL: ForkMutex<Pool> = ForkMutex::new(Pool { fresh: 1, returned: VecDeque::new() });

/// The pool's lock, for `fork`: a child must not find it held by a thread it does not
/// have.
pub(crate) fn pool_lock() -> &'static weft_platform::fork_lock::RawForkLock {
    // SAFETY: only the raw lock is handed out; the pool stays behind the mutex.
    unsafe { POOL.raw() }
}

/// Where the next token comes from.
#[derive(Debug, PartialEq)]
enum Source {
    /// The oldest one given back, which has waited out the quarantine.
    Returned,
    Fresh,
    /// None: the rest are held, or given back too recently to be reused.
    None,
}

fn source(returned: usize, fresh: u32) -> Source {
    if returned > QUARANTINE {
        Source::Returned
    } else if fresh <= MAX_TOKEN {
        Source::Fresh
    } else {
        Source::None
    }
}

/// A token for the context `id`; 0 when every token is held or in quarantine (about
/// `MAX_TOKEN` contexts alive at once).
pub(crate) fn take(id: u64) -> u32 {
    let mut pool = POOL.lock();
    let token = match source(pool.returned.len(), pool.fresh) {
        Source::Returned => match pool.returned.pop_front() {
            Some(token) => token,
            None => return 0,
        },
        Source::Fresh => {
            pool.fresh += 1;
            pool.fresh - 1
        }
        Source::None => return 0,
    };
    entry(token, true).store(id, Release);
    token
}

/// Gives back the token of a context that ended (0: none to give).
pub(crate) fn give_back(token: u32) {
    if token != 0 {
        POOL.lock().returned.push_back(token);
    }
}

/// The id of the context that holds `token` (0 for none), or held it last.
pub(crate) fn owner_id(token: u32) -> u64 {
    if token == 0 {
        return 0;
    }
    entry(token, false).load(Acquire)
}

/// The table's entry for `token`, its chunk made if `make` (under the pool's lock, by
/// `take`). A chunk not made yet reads as an entry of id 0.
fn entry(token: u32, make: bool) -> &'static AtomicU64 {
    static NONE: AtomicU64 = AtomicU64::new(0);
    let (chunk, index) = (token as usize / CHUNK, token as usize % CHUNK);
    let mut table = CHUNKS[chunk].load(Acquire);
    if table.is_null() {
        if !make {
            return &NONE;
        }
        table = Box::into_raw(Box::new([const { AtomicU64::new(0) }; CHUNK]));
        CHUNKS[chunk].store(table, Release);
    }
    // SAFETY: chunks are never freed.
    unsafe { &(*table)[index] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_among_the_living_and_name_their_context() {
        let held: Vec<(u32, u64)> = (0..100).map(|i| (take(1_000_000 + i), 1_000_000 + i)).collect();
        let mut tokens: Vec<u32> = held.iter().map(|&(t, _)| t).collect();
        tokens.sort_unstable();
        tokens.dedup();
        assert_eq!(tokens.len(), held.len());
        for &(token, id) in &held {
            assert!(token != 0 && token <= MAX_TOKEN);
            assert_eq!(owner_id(token), id);
        }
        // Given back, a token is not reused before the quarantine has passed.
        let (gone, _) = held[0];
        give_back(gone);
        let next: Vec<u32> = (0..QUARANTINE as u64).map(|i| take(2_000_000 + i)).collect();
        assert!(!next.contains(&gone));
        assert!(held[1..].iter().all(|&(t, _)| !next.contains(&t)));
        held[1..].iter().for_each(|&(t, _)| give_back(t));
        next.into_iter().for_each(give_back);
    }

    #[test]
    fn the_quarantine_holds_also_once_the_fresh_tokens_are_gone() {
        assert_eq!(source(0, 1), Source::Fresh);
        assert_eq!(source(QUARANTINE, MAX_TOKEN), Source::Fresh);
        assert_eq!(source(QUARANTINE + 1, 1), Source::Returned);
        // Out of fresh tokens: one given back too recently is not reused early.
        assert_eq!(source(QUARANTINE, MAX_TOKEN + 1), Source::None);
        assert_eq!(source(1, MAX_TOKEN + 1), Source::None);
        assert_eq!(source(QUARANTINE + 1, MAX_TOKEN + 1), Source::Returned);
    }
}
