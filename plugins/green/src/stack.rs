//! Task stacks: anonymous mappings committed lazily by the kernel (a task touches only
//! the pages it uses), with a guard region below the usable part, reused through a
//! pool. A stack overflow faults in the guard region; the SIGSEGV handler, running on
//! an alternate signal stack of the worker, names the task and its stack size on
//! stderr before the process dies of the signal as it would have anyway.
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Once;

use corosensei::stack::{Stack as CoroStack, StackPointer};
use parking_lot::Mutex;

/// The default usable size of a task stack: virtual address space, committed only as
/// the task touches it.
pub(crate) const DEFAULT_STACK: usize = 256 * 1024;
/// The smallest usable stack handed out.
const MIN_STACK: usize = 16 * 1024;
/// The guard region below every stack. Larger than a page so that a frame of a few
/// KiB that skips over one page still lands in it.
pub(crate) const GUARD: usize = 64 * 1024;
/// Free stacks kept per size class.
const POOL_PER_SIZE: usize = 16384;
/// Pooled stacks keep this much of their top committed; below it, pages a deep task
/// committed are given back when the stack returns to the pool.
const KEEP_COMMITTED: usize = 64 * 1024;

fn page() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Relaxed) {
        0 => {
            // SAFETY: sysconf has no preconditions.
            let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
            PAGE.store(p, Relaxed);
            p
        }
        p => p,
    }
}

/// Linux 6.13's guard regions: PTE markers that fault, without splitting the mapping
/// (an mprotect'ed guard page costs a mapping of its own, and `vm.max_map_count`,
/// 65530 by default, would cap the number of live tasks near 32000).
const MADV_GUARD_INSTALL: i32 = 102;
static GUARD_MARKERS_WORK: AtomicBool = AtomicBool::new(true);

/// One mapping: `GUARD` bytes of guard, then `size` usable bytes.
pub(crate) struct Stack {
    low: usize,
    size: usize,
    /// Tells valgrind (when the process runs under it) that this is a stack, so that
    /// a switch onto it is not taken for a wild stack-pointer move. A no-op otherwise.
    _valgrind: corosensei::stack::valgrind::ValgrindStackRegistration,
}

// SAFETY: a stack is plain memory owned by whoever holds the value.
unsafe impl Send for Stack {}

impl Stack {
    /// The usable size a request is rounded to.
    pub(crate) fn class(requested: usize) -> usize {
        let size = if requested == 0 { DEFAULT_STACK } else { requested.max(MIN_STACK) };
        size.checked_add(page() - 1).map_or(usize::MAX, |s| s & !(page() - 1))
    }

    fn map(size: usize) -> Option<Stack> {
        let total = size.checked_add(GUARD)?;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let low = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if low == libc::MAP_FAILED {
            return None;
        }
        let registration =
            corosensei::stack::valgrind::ValgrindStackRegistration::new((low as usize + GUARD) as *mut u8, size);
        let stack = Stack { low: low as usize, size, _valgrind: registration };
        let mut guarded = false;
        if GUARD_MARKERS_WORK.load(Relaxed) {
            // SAFETY: the range is the start of our own mapping.
            guarded = unsafe { libc::madvise(low, GUARD, MADV_GUARD_INSTALL) } == 0;
            if !guarded {
                GUARD_MARKERS_WORK.store(false, Relaxed);
            }
        }
        // SAFETY: as above.
        if !guarded && unsafe { libc::mprotect(low, GUARD, libc::PROT_NONE) } != 0 {
            return None;
        }
        Some(stack)
    }

    /// The guard region, for the overflow report.
    pub(crate) fn guard_range(&self) -> (usize, usize) {
        (self.low, self.low + GUARD)
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no coroutine runs on it any more.
        unsafe { libc::munmap(self.low as *mut libc::c_void, self.size + GUARD) };
    }
}

// SAFETY: `base` and `limit` bound memory we own, 16-aligned (page-aligned), and the
// guard region below `limit` faults.
unsafe impl CoroStack for Stack {
    fn base(&self) -> StackPointer {
        NonZeroUsize::new(self.low + GUARD + self.size).expect("stack address")
    }

    fn limit(&self) -> StackPointer {
        NonZeroUsize::new(self.low + GUARD).expect("stack address")
    }
}

/// Free stacks by usable size.
static POOL: Mutex<Vec<(usize, Vec<Stack>)>> = Mutex::new(Vec::new());

/// A stack of at least `requested` bytes (0: the default), from the pool or new.
pub(crate) fn take(requested: usize) -> Option<Stack> {
    let size = Stack::class(requested);
    if size == usize::MAX {
        return None;
    }
    {
        let mut pool = POOL.lock();
        if let Some((_, free)) = pool.iter_mut().find(|(s, _)| *s == size) {
            if let Some(stack) = free.pop() {
                return Some(stack);
            }
        }
    }
    Stack::map(size)
}

/// Gives a stack whose coroutine finished back to the pool.
pub(crate) fn give_back(stack: Stack) {
    if stack.size > KEEP_COMMITTED {
        // The pages below the top were touched only by a deep task: let them go.
        let len = stack.size - KEEP_COMMITTED;
        // SAFETY: usable memory of our own mapping, which nothing runs on now.
        unsafe { libc::madvise((stack.low + GUARD) as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    }
    let mut pool = POOL.lock();
    let index = match pool.iter().position(|(s, _)| *s == stack.size) {
        Some(i) => i,
        None => {
            pool.push((stack.size, Vec::new()));
            pool.len() - 1
        }
    };
    if pool[index].1.len() < POOL_PER_SIZE {
        pool[index].1.push(stack);
    }
}

// ---- stack overflow reports ----------------------------------------------------------

/// What the SIGSEGV handler needs to know about the task a worker runs (see
/// `sched::running_for_fault`).
#[derive(Clone, Copy)]
pub(crate) struct Running {
    pub(crate) guard_low: usize,
    pub(crate) guard_high: usize,
    pub(crate) size: usize,
    pub(crate) id: u64,
    /// NUL-terminated, owned by the running task; NULL if unnamed.
    pub(crate) name: *const libc::c_char,
}

/// The `stack_bounds` member: the usable stack of the task running on this thread (above
/// its guard region), or `WEFT_ENOTSUP` on a thread that runs no task (its own stack is
/// the thread's).
///
/// # Safety
/// `lo` and `hi` are valid for writes (the runtime's own out-parameters).
pub(crate) unsafe fn report_bounds(
    running: Option<Running>,
    lo: *mut usize,
    hi: *mut usize,
) -> weft_platform::weft_status_t {
    let Some(running) = running else { return weft_platform::WEFT_ENOTSUP };
    // SAFETY: see above.
    unsafe {
        *lo = running.guard_high;
        *hi = running.guard_high + running.size;
    }
    weft_platform::WEFT_OK
}

static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();
static INSTALL: Once = Once::new();

/// Installs the SIGSEGV/SIGBUS handler once per process (the previous handler is
/// chained for faults that are not a task's stack overflow).
pub(crate) fn install_handler() {
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid start; the handler is async-signal-safe
        // (it only reads a thread-local Cell, formats into a stack buffer and writes).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fault as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let previous = std::ptr::addr_of_mut!(PREVIOUS) as *mut libc::sigaction;
            libc::sigaction(libc::SIGSEGV, &action, previous);
        }
    });
}

/// Gives the calling worker thread an alternate signal stack (kept for its life).
pub(crate) fn alt_stack() {
    let size = 64 * 1024;
    // SAFETY: a fresh anonymous mapping handed to sigaltstack; never unmapped (a worker
    // thread lives until its runtime closes, and the memory is small).
    unsafe {
        let mem = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if mem == libc::MAP_FAILED {
            return;
        }
        let ss = libc::stack_t { ss_sp: mem, ss_flags: 0, ss_size: size };
        libc::sigaltstack(&ss, std::ptr::null_mut());
    }
}

/// A tiny formatter into a fixed buffer (no allocation in a signal handler).
struct Buf {
    bytes: [u8; 512],
    len: usize,
}

impl Buf {
    fn push(&mut self, s: &[u8]) {
        for &b in s {
            if self.len < self.bytes.len() {
                self.bytes[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn num(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, uctx: *mut libc::c_void) {
    // SAFETY: the kernel hands a valid siginfo; the Cell read has no side effects.
    let addr = unsafe { (*info).si_addr() } as usize;
    let running = crate::sched::running_for_fault();
    if let Some(r) = running.filter(|r| addr >= r.guard_low && addr < r.guard_high) {
        let mut buf = Buf { bytes: [0; 512], len: 0 };
        buf.push(b"weft green: stack overflow in task id ");
        buf.num(r.id);
        if !r.name.is_null() {
            buf.push(b" \"");
            // SAFETY: the name is a C string the running task owns.
            buf.push(unsafe { std::ffi::CStr::from_ptr(r.name) }.to_bytes());
            buf.push(b"\"");
        }
        buf.push(b": its stack of ");
        buf.num(r.size as u64);
        buf.push(b" bytes is exhausted (ask for more with weft_spawn_opts_t.stack_size)\n");
        // SAFETY: write(2) is async-signal-safe; the buffer is ours.
        unsafe { libc::write(2, buf.bytes.as_ptr() as *const libc::c_void, buf.len) };
        reset_default(sig);
        return;
    }
    // Not ours: hand it to the previous handler, or let the default action happen.
    // SAFETY: PREVIOUS was written once by sigaction before this handler existed.
    let previous = unsafe { std::ptr::read(std::ptr::addr_of!(PREVIOUS) as *const libc::sigaction) };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        reset_default(sig);
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(sig, info, uctx);
    } else {
        // SAFETY: as above, the one-argument form.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(sig);
    }
}

/// Restores the default action: returning from the handler re-runs the faulting
/// instruction, which then kills the process with the signal (and a core dump).
fn reset_default(sig: libc::c_int) {
    // SAFETY: plain sigaction with a zeroed (SIG_DFL) action.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &action, std::ptr::null_mut());
    }
}
