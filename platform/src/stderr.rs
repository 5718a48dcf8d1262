//! A line to standard error with one `write(2)`, for what a plugin says on its own.
//!
//! Rust's `eprintln!` takes the standard library's lock on stderr, which a child of
//! `fork()` inherits held when a thread of the parent was printing at the instant of
//! the fork: the child's first `eprintln!` then hangs (the sim platform prints its seed
//! at every runtime open). One `write` of a whole line needs no lock, and lines of
//! several threads do not interleave within a line.
use std::fmt;

/// Writes `args` and a newline to file descriptor 2. A failed or short write is given
/// up quietly: there is nowhere else to report it.
pub fn line(args: fmt::Arguments) {
    let mut text = fmt::format(args);
    text.push('\n');
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        // SAFETY: writes the bytes of a live buffer.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        rest = &rest[n as usize..];
    }
}
