//! The caller's `errno`, kept across weft's own system calls. No weft call sets it (the
//! header's rules), though the system calls inside one fail by design (a futex wait that
//! times out, an `epoll_ctl` on an fd never registered, a plugin looked for where it is
//! not): a host that reads `errno` after its own failed call, with a weft call between
//! (a logging lock, say), must read its own.
pub struct Kept(i32);

impl Kept {
    /// Remembers the calling thread's `errno` until dropped.
    #[inline]
    pub fn new() -> Kept {
        // SAFETY: glibc's location of the calling thread's errno, valid for the thread.
        Kept(unsafe { *libc::__errno_location() })
    }
}

impl Default for Kept {
    fn default() -> Self {
        Kept::new()
    }
}

impl Drop for Kept {
    /// Puts it back, on the thread that drops it (a green task may have moved: it sees
    /// that thread's `errno` as any host code there would, with the value it had).
    #[inline]
    fn drop(&mut self) {
        // SAFETY: as in `new`, looked up again for the thread that runs this.
        unsafe { *libc::__errno_location() = self.0 };
    }
}
