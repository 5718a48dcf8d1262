//! The error model and the one boundary every exported function goes through.
//!
//! Every exported body runs inside [`ffi`] or [`ffi_value`]: a panic becomes
//! `WEFT_EINTERNAL`, an `Err` becomes its code, and in both cases the detail goes to the
//! caller's `weft_last_error()`, prefixed with the name of the function.
//!
//! "The caller" is the running weft task when there is one, else the OS thread: on a
//! platform whose tasks are not threads (green, sim) two tasks that share a thread, or
//! a task that moves between threads, each keep their own text. The task's buffer lives
//! in its context, which the runtime owns; this layer uses nothing above it, so the
//! runtime hands it the lookup ([`install_task_errors`]) when it makes its first task.
use std::cell::{RefCell, UnsafeCell};
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use weft_platform::*;

/// A failed call: the status to return and the detail for `weft_last_error`.
#[derive(Debug)]
pub(crate) struct Error {
    pub(crate) code: weft_status_t,
    pub(crate) detail: String,
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn new(code: weft_status_t, detail: impl Into<String>) -> Self {
        Error { code, detail: detail.into() }
    }
}

/// `return Err(Error::new(code, format!(...)))`.
macro_rules! fail {
    ($code:expr, $($fmt:tt)+) => {
        return Err($crate::ffi::error::Error::new($code, format!($($fmt)+)))
    };
}
pub(crate) use fail;

/// Room for `weft_last_error()`'s text, NUL included; longer details are truncated.
const LAST_ERROR_BYTES: usize = 1024;

/// A `weft_last_error()` text: NUL-terminated bytes.
pub(crate) type LastErrorBuf = [u8; LAST_ERROR_BYTES];

/// Where the caller's last-error text lives, as far as tasks go.
pub(crate) enum TaskError {
    /// The caller is not a weft task: the thread's buffer.
    NotATask,
    /// A task that has not failed yet (its buffer is made at its first failure).
    NoneYet,
    /// The running task's own buffer, valid while the task runs.
    Buffer(*mut LastErrorBuf),
}

/// The runtime's lookup of the running task's buffer; `make`: create it if missing.
pub(crate) type TaskErrorLookup = fn(make: bool) -> TaskError;

/// The lookup's address, 0 before it is installed. Not a `OnceLock`, whose `set` a
/// child forked during another thread's `set` would wait on for ever.
static TASK_ERRORS: AtomicUsize = AtomicUsize::new(0);

/// Installs the lookup of the running task's last-error buffer (the runtime, before its
/// first task runs; later calls change nothing). Only failures and `weft_last_error()`
/// use it: a successful call never looks.
pub(crate) fn install_task_errors(lookup: TaskErrorLookup) {
    let _ = TASK_ERRORS.compare_exchange(0, lookup as usize, Release, Relaxed);
}

fn task_error(make: bool) -> TaskError {
    match TASK_ERRORS.load(Acquire) {
        0 => TaskError::NotATask,
        address => {
            // SAFETY: a non-zero value is the address of a `TaskErrorLookup`, stored above.
            let lookup = unsafe { std::mem::transmute::<usize, TaskErrorLookup>(address) };
            lookup(make)
        }
    }
}

thread_local! {
    // A fixed buffer rather than a heap string: a thread-local without a destructor is
    // never torn down, so a weft call made while the thread exits (a pthread key
    // destructor runs after every Rust thread-local is gone) still reports its error
    // instead of panicking outside the boundary and aborting the process.
    static LAST_ERROR: UnsafeCell<[u8; LAST_ERROR_BYTES]> = const { UnsafeCell::new([0; LAST_ERROR_BYTES]) };
    static PLUGIN_DETAIL: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The caller's `weft_last_error()` text (NUL-terminated): the running task's (valid
/// while it runs; "" before its first failure), else the thread's (never freed). Not
/// inlined, as every reader of a thread-local here: a green task may move to another
/// thread across a plugin call, and a cached thread-local address would be stale.
#[inline(never)]
pub(crate) fn last_error_ptr() -> *const c_char {
    match task_error(false) {
        TaskError::Buffer(buf) => buf as *const c_char,
        TaskError::NoneYet => c"".as_ptr(),
        TaskError::NotATask => LAST_ERROR.with(|buf| buf.get() as *const c_char),
    }
}

// Not inlined: a thread-local address must not be cached across a plugin call that
// may move a green task to another thread.
#[inline(never)]
fn set_last_error(function: &str, detail: &str) {
    let text = format!("{function}: {detail}").replace('\0', "\\0");
    let mut len = text.len().min(LAST_ERROR_BYTES - 1);
    while !text.is_char_boundary(len) {
        len -= 1;
    }
    let write = |buf: &mut LastErrorBuf| {
        buf[..len].copy_from_slice(&text.as_bytes()[..len]);
        buf[len] = 0;
    };
    match task_error(true) {
        // SAFETY: the running task's own buffer, touched only by the task; the only
        // reference handed out is the C string pointer, documented as valid until the
        // task's next failure.
        TaskError::Buffer(buf) => write(unsafe { &mut *buf }),
        // A task whose buffer could not be made keeps the thread's.
        TaskError::NoneYet | TaskError::NotATask => LAST_ERROR.with(|buf| {
            // SAFETY: the buffer is this thread's; the only reference handed out is the
            // C string pointer, documented as valid until the next failure on the thread.
            write(unsafe { &mut *buf.get() })
        }),
    }
}

fn panic_detail(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error (a panic was caught at the C boundary): {what}")
}

/// Runs an exported function body that returns a status.
#[inline]
pub(crate) fn ffi(function: &'static str, body: impl FnOnce() -> Result<()>) -> weft_status_t {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => WEFT_OK,
        Ok(Err(e)) => {
            set_last_error(function, &with_pending_detail(e.detail));
            e.code
        }
        Err(payload) => {
            set_last_error(function, &panic_detail(&*payload));
            WEFT_EINTERNAL
        }
    }
}

/// Runs an exported function body that returns a value; on failure records the error
/// and returns `fallback`.
#[inline]
pub(crate) fn ffi_value<T>(function: &'static str, fallback: T, body: impl FnOnce() -> Result<T>) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => {
            set_last_error(function, &with_pending_detail(e.detail));
            fallback
        }
        Err(payload) => {
            set_last_error(function, &panic_detail(&*payload));
            fallback
        }
    }
}

/// A failure's text, with the detail a plugin gave for the error it returned in this
/// call if the runtime worded the failure itself (a timeout, a closed channel) instead of
/// passing it through `check_plugin`: taken, so that it is not given as the reason of a
/// later, unrelated failure.
fn with_pending_detail(detail: String) -> String {
    match take_plugin_detail() {
        Some(said) => format!("{detail} (the platform says: {said})"),
        None => detail,
    }
}

/// Keeps a plugin's detail for the error it is about to return (host service).
// Not inlined: a thread-local address must not be cached across a plugin call that
// may move a green task to another thread.
#[inline(never)]
pub(crate) fn set_plugin_detail(detail: String) {
    // `try_with`: during thread exit the slot may be gone; the detail is then dropped.
    let _ = PLUGIN_DETAIL.try_with(|slot| *slot.borrow_mut() = Some(detail));
}

// Not inlined: a thread-local address must not be cached across a plugin call that
// may move a green task to another thread.
#[inline(never)]
pub(crate) fn take_plugin_detail() -> Option<String> {
    PLUGIN_DETAIL.try_with(|slot| slot.borrow_mut().take()).ok().flatten()
}

/// Turns a plugin's status into a `Result`, with `what` (e.g. "cannot start a task")
/// and the plugin's own detail, if it gave one, in the message. A status that is no
/// `WEFT_E*` code (an errno, -1) is the plugin's fault: `WEFT_EPLUGIN`, naming it.
pub(crate) fn check_plugin(status: weft_status_t, what: impl FnOnce() -> String) -> Result<()> {
    if status == WEFT_OK {
        return Ok(());
    }
    let known = !matches!(static_cstr(status).to_bytes(), b"unknown status code");
    let detail = take_plugin_detail();
    let reason = match (detail, known) {
        (Some(detail), true) => detail,
        (Some(detail), false) => format!("the plugin returned {status}, which is no weft status ({detail})"),
        (None, true) => strerror(status).to_string(),
        (None, false) => format!("the plugin returned {status}, which is no weft status"),
    };
    Err(Error::new(if known { status } else { WEFT_EPLUGIN }, format!("{}: {reason}", what())))
}

/// Forgets any detail a plugin left without failing.
pub(crate) fn clear_plugin_detail() {
    take_plugin_detail();
}

pub(crate) fn strerror(code: weft_status_t) -> &'static str {
    static_cstr(code).to_str().unwrap_or("")
}

pub(crate) fn static_cstr(code: weft_status_t) -> &'static CStr {
    match code {
        WEFT_OK => c"success",
        WEFT_EINVAL => c"invalid argument",
        WEFT_ETIMEDOUT => c"deadline passed",
        WEFT_EBUSY => c"resource busy",
        WEFT_EDEADLK => c"the call would deadlock",
        WEFT_EPERM => c"operation not permitted for the caller",
        WEFT_ECLOSED => c"channel closed",
        WEFT_ENOMEM => c"out of memory or resources",
        WEFT_ECANCELED => c"task cancelled",
        WEFT_ENOTSUP => c"not supported by this platform",
        WEFT_EPLUGIN => c"platform plugin error",
        WEFT_EINTERNAL => c"internal error",
        _ => c"unknown status code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_status_that_is_no_weft_code_is_the_plugins_error() {
        let e = check_plugin(-1, || "cannot start a task".to_string()).unwrap_err();
        assert_eq!(e.code, WEFT_EPLUGIN);
        assert!(e.detail.contains("cannot start a task: the plugin returned -1"), "{}", e.detail);
        let e = check_plugin(WEFT_ENOMEM, || "cannot start a task".to_string()).unwrap_err();
        assert_eq!(e.code, WEFT_ENOMEM);
    }

    fn last_error() -> String {
        // SAFETY: the thread's own NUL-terminated buffer.
        unsafe { CStr::from_ptr(last_error_ptr()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn an_error_becomes_its_code_and_a_message_naming_the_function() {
        let status = ffi("weft_test_fn", || fail!(WEFT_EBUSY, "object {} is busy", 7));
        assert_eq!(status, WEFT_EBUSY);
        assert_eq!(last_error(), "weft_test_fn: object 7 is busy");
        assert_eq!(ffi("weft_other", || Ok(())), WEFT_OK);
        assert_eq!(last_error(), "weft_test_fn: object 7 is busy", "success leaves the detail alone");
    }

    #[test]
    fn a_panic_is_caught_and_reported_as_internal() {
        let status = ffi("weft_panicky", || panic!("broken invariant"));
        assert_eq!(status, WEFT_EINTERNAL);
        assert!(last_error().contains("weft_panicky: internal error"), "{}", last_error());
        assert!(last_error().contains("broken invariant"));
        assert_eq!(ffi_value("weft_value", 42u32, || panic!("again")), 42);
    }

    #[test]
    fn long_details_are_cut_on_a_character_boundary() {
        let long = "é".repeat(LAST_ERROR_BYTES);
        ffi("weft_long", || fail!(WEFT_EINVAL, "{long}"));
        let text = last_error();
        assert!(text.len() < LAST_ERROR_BYTES && text.starts_with("weft_long: é"));
    }

    #[test]
    fn a_plugin_detail_is_used_once() {
        set_plugin_detail("pthread_create: EAGAIN".into());
        let e = check_plugin(WEFT_ENOMEM, || "cannot start a task".into()).unwrap_err();
        assert_eq!(e.detail, "cannot start a task: pthread_create: EAGAIN");
        let e = check_plugin(WEFT_ENOMEM, || "cannot start a task".into()).unwrap_err();
        assert_eq!(e.detail, "cannot start a task: out of memory or resources");
        assert!(check_plugin(WEFT_OK, || unreachable!()).is_ok());
    }
}
