//! OS threads started with `pthread_create` itself, for plugins written in Rust.
//!
//! Rust's `std::thread::spawn` registers every new thread, and unregisters it as it
//! ends, in a process-wide table behind a lock of the standard library's (for its
//! stack-overflow messages). A child of `fork()` inherits that lock held whenever a
//! thread of the parent was starting or ending at the instant of the fork, and then
//! hangs in its first thread start or end: a task of the native platform, a worker of
//! green's. glibc makes `pthread_create` itself safe in such a child, so the plugins
//! start their threads with it. What std's spawn adds is not needed there: a plugin's
//! thread catches its own panics (below), and libweft, a library, installs no
//! stack-overflow handler for its threads to register with.
//!
//! glibc leaves one race of its own: a `pthread_create` that reuses a cached stack
//! frees the dead thread's dynamic TLS blocks just after the stack has moved to the list
//! of stacks in use, so a fork in that moment gives the child a stack whose blocks it
//! frees a second time when it starts a thread (malloc aborts: "double free"). A fork
//! therefore waits for the thread starts in flight here, and no start begins while it
//! forks ([`StartGate`]).
use std::ffi::{c_void, CStr, CString};
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::{Arc, Mutex, Once};

use crate::fork_lock::futex;

/// The signals a fault raises: a thread keeps them open (blocked, a fault would kill
/// the process without running its handler).
const FAULT_SIGNALS: [libc::c_int; 6] =
    [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP, libc::SIGSYS];

/// Runs `f` with every other signal blocked in the calling thread, its mask restored
/// afterwards: a thread started inside `f` starts with them blocked. For weft's service
/// threads, which never run the host's code (green's monitor, sim's watchdog): a
/// process-directed signal then goes to a thread of the host's, as it would without
/// weft, and the host's handler never runs beside sim's one running task.
pub fn with_signals_blocked<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(libc::sigset_t);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: a mask read from this thread by pthread_sigmask.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
        }
    }
    // SAFETY: sigset_t is plain data, filled by sigfillset before use; pthread_sigmask
    // on the calling thread.
    let _restore = unsafe {
        let mut blocked: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut blocked);
        for sig in FAULT_SIGNALS {
            libc::sigdelset(&mut blocked, sig);
        }
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &blocked, &mut old);
        Restore(old)
    };
    f()
}

/// A thread started by [`spawn`]: joined with [`OsThread::join`], or detached when
/// dropped without a join.
pub struct OsThread {
    id: libc::pthread_t,
}

/// What a new thread needs: where its stack is, if not the default size, and its name.
#[derive(Default)]
pub struct Options<'a> {
    /// Bytes of stack; 0 for glibc's default. Rounded up to `PTHREAD_STACK_MIN`.
    pub stack_size: usize,
    /// The name the OS shows (`top`, `gdb`); cut to the 15 bytes Linux keeps.
    pub name: Option<&'a str>,
}

/// Starts a thread that runs `body`. A panic in `body` ends the thread (and is not
/// propagated: a plugin's code catches what it must at its own boundary). The error
/// is `pthread_create`'s (`EAGAIN` when the system has no thread or no stack left).
/// The new thread frees the boxed `body` (see [`ThreadMain`] for what that costs): for
/// threads that live long; a thread per task is started with [`spawn_shared`].
pub fn spawn<F: FnOnce() + Send + 'static>(options: &Options, body: F) -> Result<OsThread, i32> {
    let main = Arc::new(RunOnce { name: thread_name(options.name), body: Mutex::new(Some(Box::new(body))) });
    spawn_shared(options.stack_size, main)
}

/// What a thread started by [`spawn_shared`] runs: an object its starter keeps a
/// reference to, so that the new thread, which only reads it, frees nothing as it ends.
/// A thread's first `malloc` or `free` sets up glibc's per-thread cache, and its end
/// hands the cache back: more than a third of an empty native task's user-space work
/// before the start record was shared (docs/performance.md, "Spawn and join on native").
pub trait ThreadMain: Send + Sync + 'static {
    /// The thread's work. A panic ends the thread only.
    fn run(&self);
    /// The name the OS shows (see [`thread_name`]), if any.
    fn name(&self) -> Option<&CStr> {
        None
    }
}

/// Starts a thread that runs `main.run()` with `stack_size` bytes of stack (0 for
/// glibc's default; rounded up to `PTHREAD_STACK_MIN`). The thread holds `main` until
/// it ends, and drops that reference last (it frees `main` only if nobody else holds
/// it by then). Errors as for [`spawn`].
pub fn spawn_shared<T: ThreadMain>(stack_size: usize, main: Arc<T>) -> Result<OsThread, i32> {
    let arg = Arc::into_raw(main) as *mut c_void;
    // SAFETY: `attr` is initialised before use and destroyed on every path; `arg` is
    // handed to the new thread, which owns that reference, or taken back if no thread
    // started.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let mut attr_ptr: *const libc::pthread_attr_t = std::ptr::null();
        let mut rc = 0;
        // Default attributes as NULL, as a plain pthread_create makes them: no copy.
        if stack_size != 0 {
            rc = libc::pthread_attr_init(&mut attr);
            if rc == 0 {
                attr_ptr = &attr;
                rc = libc::pthread_attr_setstacksize(&mut attr, stack_size.max(libc::PTHREAD_STACK_MIN));
            }
        }
        let mut id: libc::pthread_t = 0;
        if rc == 0 {
            let _start = StartGate::enter();
            rc = libc::pthread_create(&mut id, attr_ptr, thread_start::<T>, arg);
        }
        if !attr_ptr.is_null() {
            libc::pthread_attr_destroy(&mut attr);
        }
        if rc != 0 {
            drop(Arc::from_raw(arg as *const T));
            return Err(rc);
        }
        Ok(OsThread { id })
    }
}

impl OsThread {
    /// Waits until the thread has ended and frees what the OS kept of it.
    pub fn join(self) {
        let id = self.id;
        std::mem::forget(self);
        // SAFETY: a thread started by `spawn`, neither joined nor detached (both take
        // `self`).
        unsafe { libc::pthread_join(id, std::ptr::null_mut()) };
    }
}

impl Drop for OsThread {
    fn drop(&mut self) {
        // SAFETY: as in `join`; the thread frees its own resources when it ends.
        unsafe { libc::pthread_detach(self.id) };
    }
}

/// Thread starts in flight (the low bits) and forks in progress (the high ones): a
/// start waits while a fork is in progress, a fork waits for the starts to end.
static GATE: AtomicU32 = AtomicU32::new(0);
const FORK: u32 = 1 << 20;
const STARTS: u32 = FORK - 1;

/// One thread start in flight, for as long as it lives.
struct StartGate;

impl StartGate {
    fn enter() -> StartGate {
        static HANDLERS: Once = Once::new();
        HANDLERS.call_once(|| {
            // SAFETY: plain functions that live as long as the program: a plugin is never
            // unloaded while a runtime uses it.
            unsafe { libc::pthread_atfork(Some(fork_waits_for_starts), Some(fork_done), Some(fork_done_in_child)) };
        });
        let mut seen = GATE.load(Relaxed);
        loop {
            if seen >= FORK {
                futex(&GATE, libc::FUTEX_WAIT, seen);
                seen = GATE.load(Relaxed);
            } else {
                match GATE.compare_exchange_weak(seen, seen + 1, Acquire, Relaxed) {
                    Ok(_) => return StartGate,
                    Err(now) => seen = now,
                }
            }
        }
    }
}

impl Drop for StartGate {
    fn drop(&mut self) {
        // Only a fork waits for the count to reach 0: without one, no system call.
        let left = GATE.fetch_sub(1, Release) - 1;
        if left & STARTS == 0 && left >= FORK {
            futex(&GATE, libc::FUTEX_WAKE, i32::MAX as u32);
        }
    }
}

extern "C" fn fork_waits_for_starts() {
    let mut seen = GATE.fetch_add(FORK, Acquire) + FORK;
    while seen & STARTS != 0 {
        futex(&GATE, libc::FUTEX_WAIT, seen);
        seen = GATE.load(Acquire);
    }
}

extern "C" fn fork_done() {
    GATE.fetch_sub(FORK, Release);
    futex(&GATE, libc::FUTEX_WAKE, i32::MAX as u32);
}

/// The child has one thread, this one: no start is in flight and no other fork.
extern "C" fn fork_done_in_child() {
    GATE.store(0, Relaxed);
}

/// The body of a thread started by [`spawn`], run once.
struct RunOnce {
    name: Option<CString>,
    body: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl ThreadMain for RunOnce {
    fn run(&self) {
        let body = self.body.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(body) = body {
            body();
        }
    }
    fn name(&self) -> Option<&CStr> {
        self.name.as_deref()
    }
}

/// `name` as the OS keeps a thread's name: at most 15 bytes, cut at a character
/// boundary, without NUL bytes.
pub fn thread_name(name: Option<&str>) -> Option<CString> {
    let name = name?;
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    CString::new(name[..end].replace('\0', "")).ok()
}

extern "C" fn thread_start<T: ThreadMain>(arg: *mut c_void) -> *mut c_void {
    // SAFETY: the reference `spawn_shared` handed to this thread, taken exactly once.
    let main = unsafe { Arc::from_raw(arg as *const T) };
    if let Some(name) = main.name() {
        // SAFETY: this thread's own id and a C string of at most 15 bytes.
        unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr()) };
    }
    // A panic must not unwind out of an `extern "C"` function (that aborts the process).
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| main.run()));
    std::ptr::null_mut()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    #[test]
    fn threads_run_their_bodies_and_are_joined() {
        let sum = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (1..=16)
            .map(|i| {
                let sum = Arc::clone(&sum);
                let options = Options { stack_size: 1, name: Some("weft-test-thread-with-a-long-name") };
                spawn(&options, move || {
                    sum.fetch_add(i, SeqCst);
                })
                .expect("a thread")
            })
            .collect();
        threads.into_iter().for_each(OsThread::join);
        assert_eq!(sum.load(SeqCst), 136);
    }

    #[test]
    fn a_thread_started_with_signals_blocked_keeps_only_the_fault_signals_open() {
        fn blocked(sig: libc::c_int) -> bool {
            // SAFETY: reads the calling thread's mask into a zeroed set.
            unsafe {
                let mut mask: libc::sigset_t = std::mem::zeroed();
                libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask);
                libc::sigismember(&mask, sig) == 1
            }
        }
        let seen = Arc::new(Mutex::new((false, false, false)));
        let inside = Arc::clone(&seen);
        let thread = with_signals_blocked(|| {
            spawn(&Options::default(), move || {
                *inside.lock().unwrap() = (blocked(libc::SIGUSR1), blocked(libc::SIGINT), blocked(libc::SIGSEGV));
            })
        })
        .expect("a thread");
        thread.join();
        assert_eq!(*seen.lock().unwrap(), (true, true, false));
        assert!(!blocked(libc::SIGUSR1), "the caller's mask is restored");
    }

    #[test]
    fn a_panicking_body_ends_only_its_thread() {
        let after = Arc::new(AtomicUsize::new(0));
        spawn(&Options::default(), || panic!("on purpose")).expect("a thread").join();
        let seen = Arc::clone(&after);
        spawn(&Options::default(), move || {
            seen.store(1, SeqCst);
        })
        .expect("a thread")
        .join();
        assert_eq!(after.load(SeqCst), 1);
    }

    #[test]
    fn an_impossible_stack_is_an_error() {
        assert!(spawn(&Options { stack_size: usize::MAX / 2, name: None }, || {}).is_err());
    }
}
