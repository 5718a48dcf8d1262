//! How a run that cannot go on ends: the host's C streams flushed first (its output up
//! to here is kept, before the report), then the report on fd 2, then `_exit` (no exit
//! handlers, which could call back into a runtime that cannot run).
//!
//! `fflush(NULL)` locks every stream, and waits for one a blocked call holds: a task
//! stuck in `fgets(stdin)` (the very stall being reported), a host thread doing the
//! same. The report then never came out and the process hung. stdout and stderr are
//! flushed only if their locks are free; every other stream by `fflush(NULL)` on a
//! thread of its own, given 100 ms.
use std::ffi::c_int;
use std::time::Duration;

extern "C" {
    static stdout: *mut libc::FILE;
    static stderr: *mut libc::FILE;
    fn ftrylockfile(stream: *mut libc::FILE) -> c_int;
    fn funlockfile(stream: *mut libc::FILE);
    fn fflush_unlocked(stream: *mut libc::FILE) -> c_int;
}

/// How long the flush of the other streams may take before the process ends anyway.
const OTHER_STREAMS: Duration = Duration::from_millis(100);

/// Flushes the C streams, writes `report` (whole lines) to fd 2 and ends the process
/// with `status`.
pub(crate) fn report_and_exit(report: &str, status: i32) -> ! {
    flush_c_streams();
    for line in report.lines() {
        weft_platform::stderr::line(format_args!("{line}"));
    }
    // SAFETY: ends the process at once.
    unsafe { libc::_exit(status) }
}

fn flush_c_streams() {
    // SAFETY: glibc's standard streams, valid for the process; each is flushed only
    // under its own lock, taken without waiting.
    unsafe {
        for stream in [stdout, stderr] {
            if ftrylockfile(stream) == 0 {
                fflush_unlocked(stream);
                funlockfile(stream);
            }
        }
    }
    let (done, flushed) = std::sync::mpsc::channel();
    let flusher = std::thread::Builder::new().name("weft-sim-flush".into()).spawn(move || {
        // SAFETY: fflush(NULL) flushes every C stream.
        unsafe { libc::fflush(std::ptr::null_mut()) };
        let _ = done.send(());
    });
    if flusher.is_ok() {
        let _ = flushed.recv_timeout(OTHER_STREAMS);
    }
}
