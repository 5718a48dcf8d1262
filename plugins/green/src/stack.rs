//! Task stacks: anonymous mappings committed lazily by the kernel (a task touches only
//! the pages it uses), with a guard region below the usable part, reused through a
//! pool. A stack overflow faults in the guard region; the SIGSEGV handler, running on
//! an alternate signal stack of the worker, names the task and its stack size on
//! stderr before the process dies of the signal as it would have anyway.
use std::cell::Cell;
use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed};

use corosensei::stack::{Stack as CoroStack, StackPointer};
use weft_platform::fork_lock::{ForkMutex, RawForkLock};
use weft_platform::once::ForkSafeOnce;

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
/// committed are given back to the kernel ("trimmed") once the stack has gone unused
/// for `TRIM_AFTER_NS` (see `give_back`).
const KEEP_COMMITTED: usize = 64 * 1024;
/// How long a pooled stack stays untrimmed, unused.
const TRIM_AFTER_NS: i64 = 50_000_000;
/// How many stacks are trimmed together, by one system call.
const TRIM_BATCH: usize = 32;
/// A reservation that finds the pool empty maps up to this many stacks at once (fewer
/// where they would span more than `MAP_CHUNK_BYTES`), with one `mmap` and one
/// `process_madvise` for their guards: a burst of spawns beyond the pool made two system
/// calls per task, each holding the process's memory-map lock for writing. A size's
/// chunks start at one stack and double (`Class::chunk`), so that a host with a few
/// tasks maps a few stacks (32 of 8 MiB are 256 MiB of address space and the page
/// tables of their guards).
const MAP_CHUNK: usize = 32;
const MAP_CHUNK_BYTES: usize = 512 << 20;
/// Stacks given back to a full pool wait until this many are there (or an idle worker's
/// trim), and are then unmapped together, neighbours in memory by one `munmap`: each
/// `munmap` is a TLB shootdown on every other CPU the process runs on, an interrupt that
/// costs microseconds in a virtual machine. One per task was most of the 92 s that 10^6
/// parked tasks took to spawn and end here (docs/performance.md, "Many tasks at once").
const UNMAP_BATCH: usize = 64;

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
    /// The pool's class of its size, which it goes back to.
    class: &'static Class,
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

    /// `n` stacks of `class`, side by side in one mapping (each can be unmapped on its
    /// own), guards installed. None if the kernel gives no memory.
    fn map_chunk(class: &'static Class, n: usize) -> Option<Vec<Stack>> {
        let span = class.size.checked_add(GUARD)?;
        let total = span.checked_mul(n)?;
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
        let stacks: Vec<Stack> = (0..n).map(|i| Stack::at(low as usize + i * span, class)).collect();
        // Dropped on failure: each stack unmaps itself.
        Stack::guard(&stacks).then_some(stacks)
    }

    /// The stack of `class` whose mapping starts at `low` (its guard region first).
    fn at(low: usize, class: &'static Class) -> Stack {
        let registration =
            corosensei::stack::valgrind::ValgrindStackRegistration::new((low + GUARD) as *mut u8, class.size);
        Stack { low, size: class.size, class, _valgrind: registration }
    }

    /// Makes the guard region of every stack fault: guard markers where the kernel has
    /// them, else `PROT_NONE` pages. False if neither could be set.
    fn guard(stacks: &[Stack]) -> bool {
        let ranges: Vec<libc::iovec> =
            stacks.iter().map(|s| libc::iovec { iov_base: s.low as *mut libc::c_void, iov_len: GUARD }).collect();
        if GUARD_MARKERS_WORK.load(Relaxed) {
            if advise(&ranges, MADV_GUARD_INSTALL, &GUARD_BATCHES_WORK) {
                return true;
            }
            GUARD_MARKERS_WORK.store(false, Relaxed);
        }
        // SAFETY: each range is the start of one of our own mappings.
        ranges.iter().all(|r| unsafe { libc::mprotect(r.iov_base, r.iov_len, libc::PROT_NONE) } == 0)
    }

    /// The whole mapping, and the end of the stack's registration with valgrind: for
    /// `unmap`, which unmaps it with its neighbours.
    fn into_mapping(self) -> (usize, usize) {
        let stack = std::mem::ManuallyDrop::new(self);
        // SAFETY: read once out of a value that is never dropped; dropping it here ends
        // the registration as the stack's own drop would.
        drop(unsafe { std::ptr::read(&stack._valgrind) });
        (stack.low, stack.size + GUARD)
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

/// The pooled stacks of one usable size.
struct Class {
    size: usize,
    /// Pooled stacks not promised to a task: the stacks in `lists` (and being trimmed)
    /// less the `Reservation`s outstanding. Never below 0 but for a moment in `reserve`.
    free: AtomicIsize,
    lists: ForkMutex<Lists>,
    /// Stacks mapped by `reserve`'s chunks so far: the next chunk maps as many again.
    mapped: AtomicUsize,
}

struct Lists {
    /// Untrimmed, with when each was given back (oldest first): pages a deep task
    /// committed below the top `KEEP_COMMITTED` may still be there. The last given back
    /// is taken first (warm in the caches).
    hot: VecDeque<(Stack, i64)>,
    /// Trimmed or never used: only their top `KEEP_COMMITTED` may still be committed.
    trimmed: Vec<Stack>,
    /// Out of the lists while a trim runs: still pooled.
    trimming: usize,
    /// Given back to a full pool: not pooled, waiting to be unmapped (`UNMAP_BATCH`).
    surplus: Vec<Stack>,
}

impl Class {
    /// How many stacks of this size the next chunk maps: as many as the chunks before it
    /// (1, 1, 2, 4...), up to `MAP_CHUNK` and `MAP_CHUNK_BYTES`.
    fn chunk(&self) -> usize {
        let most = (MAP_CHUNK_BYTES / (self.size + GUARD)).clamp(1, MAP_CHUNK);
        self.mapped.load(Relaxed).clamp(1, most)
    }
}

/// Every size class there has been (a handful: the sizes tasks ask for), never freed.
static CLASSES: ForkMutex<Vec<&'static Class>> = ForkMutex::new(Vec::new());

/// The pool's locks are never inherited held by a child of fork() (a worker of another
/// runtime giving a stack back as the host forks): `pthread_atfork` handlers take them
/// all before the fork and release them on both sides, as libweft does with its own.
/// (A `ForkSafeOnce`: a child forked during another thread's registration must not wait
/// for it.)
static HANDLERS: ForkSafeOnce = ForkSafeOnce::new();

fn fork_handlers() {
    HANDLERS.call_once(|| {
        // SAFETY: plain functions that live as long as the plugin, which is never
        // unloaded while a runtime uses it.
        unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork_parent), Some(after_fork_child)) };
    });
}

/// CLASSES' lock, then every class's (the one order the handlers take them in).
fn pool_locks<'a>(classes: &'a [&'static Class]) -> impl DoubleEndedIterator<Item = &'static RawForkLock> + 'a {
    // SAFETY: only the raw lock is handed out; the data stays behind the Mutex.
    let classes_lock = unsafe { CLASSES.raw() };
    std::iter::once(classes_lock).chain(classes.iter().map(|c| {
        // SAFETY: as above, for a class's lists.
        unsafe { c.lists.raw() }
    }))
}

extern "C" fn before_fork() {
    use lock_api::RawMutex as _;
    // SAFETY: as in `pool_locks`.
    unsafe { CLASSES.raw() }.lock();
    // SAFETY: CLASSES is held by this thread until the handlers after the fork.
    let classes = unsafe { &*CLASSES.data_ptr() };
    pool_locks(classes).skip(1).for_each(|l| l.lock());
}

extern "C" fn after_fork_parent() {
    use lock_api::RawMutex as _;
    // SAFETY: CLASSES is held by this thread since `before_fork`.
    let classes = unsafe { &*CLASSES.data_ptr() };
    for lock in pool_locks(classes).rev() {
        // SAFETY: `before_fork` took every one of these on this thread.
        unsafe { lock.unlock() };
    }
}

/// Threads of the parent may have been queued on the locks: the locks are reset, not
/// unlocked, so that no one is woken (see `weft_platform::fork_lock`).
extern "C" fn after_fork_child() {
    HANDLERS.mark_done();
    // SAFETY: CLASSES is held by this thread (the child's only one) since `before_fork`.
    let classes = unsafe { &*CLASSES.data_ptr() };
    for lock in pool_locks(classes) {
        // SAFETY: this thread took every one of these in `before_fork`.
        unsafe { lock.reset_in_child() };
    }
}

thread_local! {
    /// The class this thread looked up last (most spawns ask for one size).
    static LAST_CLASS: Cell<Option<&'static Class>> = const { Cell::new(None) };
}

// Not inlined: a task's code may move to another thread between two calls, and the
// compiler may cache a `thread_local!`'s address within an inlined caller.
#[inline(never)]
fn class_of(size: usize) -> &'static Class {
    if let Some(c) = LAST_CLASS.try_with(Cell::get).ok().flatten().filter(|c| c.size == size) {
        return c;
    }
    fork_handlers();
    let c = {
        let mut classes = CLASSES.lock();
        match classes.iter().find(|c| c.size == size) {
            Some(c) => *c,
            None => {
                let lists = Lists { hot: VecDeque::new(), trimmed: Vec::new(), trimming: 0, surplus: Vec::new() };
                let c: &'static Class = Box::leak(Box::new(Class {
                    size,
                    free: AtomicIsize::new(0),
                    lists: ForkMutex::new(lists),
                    mapped: AtomicUsize::new(0),
                }));
                classes.push(c);
                c
            }
        }
    };
    let _ = LAST_CLASS.try_with(|last| last.set(Some(c)));
    c
}

// Real time (green's clock; sim's `clock` is virtual, and this is about real memory).
use weft_platform::clock::monotonic_now as now;

/// A stack promised to a task: one of its size is in the pool for it (mapped by
/// `reserve` if need be, so that a spawn fails, not the task's first run, when none can
/// be mapped). Which one is chosen when the task first runs (`take`): the stack given
/// back last, still warm in the caches and the TLB, where a stack chosen at spawn had
/// gone cold while the task waited in a run queue. So a burst of spawns maps as many
/// stacks as tasks wait, but touches only as many as run at once. Dropped unused (a
/// task that never ran), it gives the promise back.
pub(crate) struct Reservation {
    class: &'static Class,
}

/// Reserves a stack of at least `requested` bytes (0: the default); None if none can be
/// mapped.
pub(crate) fn reserve(requested: usize) -> Option<Reservation> {
    let size = Stack::class(requested);
    if size == usize::MAX {
        return None;
    }
    let class = class_of(size);
    if class.free.fetch_sub(1, AcqRel) > 0 {
        return Some(Reservation { class });
    }
    class.free.fetch_add(1, AcqRel);
    // None free: a chunk more pooled, one of them promised at once.
    let stacks = Stack::map_chunk(class, class.chunk())?;
    class.mapped.fetch_add(stacks.len(), Relaxed);
    let others = stacks.len() as isize - 1;
    class.lists.lock().trimmed.extend(stacks);
    // Listed before counted: whoever counts on them finds them.
    class.free.fetch_add(others, AcqRel);
    Some(Reservation { class })
}

impl Reservation {
    /// The stack: the untrimmed one given back last, else a trimmed (or unused) one.
    pub(crate) fn take(self) -> Stack {
        let class = self.class;
        std::mem::forget(self);
        loop {
            {
                let mut lists = class.lists.lock();
                let stack = lists.hot.pop_back().map(|(stack, _)| stack).or_else(|| lists.trimmed.pop());
                if let Some(stack) = stack {
                    return stack;
                }
            }
            // Every stack left is out being trimmed, for the length of a system call, or
            // for ever in a child of fork() whose parent trimmed on another thread: map
            // one more rather than wait, and count the promised one free again (it is
            // still pooled, and comes back to the lists if its trimmer exists).
            if let Some(stack) = Stack::map_chunk(class, 1).and_then(|mut one| one.pop()) {
                class.free.fetch_add(1, AcqRel);
                return stack;
            }
            std::thread::yield_now();
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.class.free.fetch_add(1, AcqRel);
    }
}

type Batch = smallvec::SmallVec<[Stack; TRIM_BATCH]>;

/// Up to `TRIM_BATCH` of the untrimmed stacks unused since `before`, oldest first,
/// counted as `trimming` until `trimmed` takes them back.
fn unused_since(lists: &mut Lists, before: i64) -> Batch {
    let mut batch = Batch::new();
    while batch.len() < TRIM_BATCH && lists.hot.front().is_some_and(|(_, at)| *at <= before) {
        batch.extend(lists.hot.pop_front().map(|(stack, _)| stack));
    }
    lists.trimming += batch.len();
    batch
}

/// Trims `batch` (taken out by `unused_since`) and puts it back, trimmed.
fn trimmed(class: &Class, batch: Batch) {
    trim(&batch);
    let mut lists = class.lists.lock();
    lists.trimming -= batch.len();
    lists.trimmed.extend(batch);
}

/// Gives a stack whose coroutine finished back to the pool, as it is: no system call.
/// Which pages below its top the task touched cannot be known without asking the
/// kernel, and trimming every stack (as this did first) costs a system call, a walk
/// of the page table over the whole stack and a TLB shootdown per task; a stack reused
/// soon (tasks that come and go) need not be trimmed at all, and keeps the pages its
/// next task would fault in again. A pooled stack that stays unused for
/// `TRIM_AFTER_NS` is trimmed, `TRIM_BATCH` at a time with one `process_madvise`: by
/// the next give-back of its size, or by an idle worker (`trim_unused`).
pub(crate) fn give_back(stack: Stack) {
    let class = stack.class;
    if class.free.load(Acquire) >= POOL_PER_SIZE as isize {
        let surplus = {
            let mut lists = class.lists.lock();
            lists.surplus.push(stack);
            if lists.surplus.len() < UNMAP_BATCH {
                return;
            }
            std::mem::take(&mut lists.surplus)
        };
        unmap(surplus);
        return;
    }
    let at = now();
    let batch = {
        let mut lists = class.lists.lock();
        if class.size <= KEEP_COMMITTED {
            lists.trimmed.push(stack);
        } else {
            lists.hot.push_back((stack, at));
        }
        // Listed before counted: whoever counts on it finds it.
        class.free.fetch_add(1, AcqRel);
        if lists.hot.front().is_none_or(|(_, since)| *since > at - TRIM_AFTER_NS) {
            return;
        }
        unused_since(&mut lists, at - TRIM_AFTER_NS)
    };
    trimmed(class, batch);
}

/// Trims the pooled stacks unused for `TRIM_AFTER_NS` (every untrimmed one if `all`,
/// for a runtime that closes) and unmaps the surplus ones; when the next trim will be
/// due (CLOCK_MONOTONIC), if any.
/// For a worker about to sleep: it sleeps no later than that.
pub(crate) fn trim_unused(all: bool) -> Option<i64> {
    let mut next = None;
    // By index: classes are only ever added.
    for i in 0.. {
        let Some(&class) = CLASSES.lock().get(i) else { break };
        unmap(std::mem::take(&mut class.lists.lock().surplus));
        loop {
            let before = if all { i64::MAX } else { now() - TRIM_AFTER_NS };
            let batch = {
                let mut lists = class.lists.lock();
                let batch = unused_since(&mut lists, before);
                if batch.is_empty() {
                    let due = lists.hot.front().map(|(_, at)| at + TRIM_AFTER_NS);
                    next = next.into_iter().chain(due).min();
                    break;
                }
                batch
            };
            trimmed(class, batch);
        }
    }
    next
}

/// `process_madvise`'s file descriptor for the calling process itself (`PIDFD_SELF`, in
/// recent kernels; the libc crate does not define it): valid across a fork, unlike a
/// pidfd opened once.
const PIDFD_SELF: libc::c_long = -10000;

/// Gives back to the kernel the pages below the top `KEEP_COMMITTED` of every stack of
/// `stacks` (nothing runs on them).
fn trim(stacks: &[Stack]) {
    let ranges: smallvec::SmallVec<[libc::iovec; TRIM_BATCH]> = stacks
        .iter()
        .map(|s| libc::iovec { iov_base: (s.low + GUARD) as *mut libc::c_void, iov_len: s.size - KEEP_COMMITTED })
        .collect();
    advise(&ranges, libc::MADV_DONTNEED, &DONTNEED_BATCHES_WORK);
}

/// Unmaps stacks nothing runs on any more, neighbours in memory by one `munmap`.
fn unmap(mut stacks: Vec<Stack>) {
    stacks.sort_unstable_by_key(|s| s.low);
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (low, len) in stacks.into_iter().map(Stack::into_mapping) {
        match runs.last_mut() {
            Some((_, end)) if *end == low => *end += len,
            _ => runs.push((low, low + len)),
        }
    }
    for (start, end) in runs {
        // SAFETY: the mappings of stacks that were ours, side by side; nothing runs on
        // them and nothing refers to them any more.
        unsafe { libc::munmap(start as *mut libc::c_void, end - start) };
        #[cfg(test)]
        tests::MUNMAPS.fetch_add(1, Relaxed);
    }
}

/// Whether `process_madvise` takes each advice for the process itself (it needs
/// `PIDFD_SELF`, and took only a few kinds of advice before Linux 6.13).
static DONTNEED_BATCHES_WORK: AtomicBool = AtomicBool::new(true);
static GUARD_BATCHES_WORK: AtomicBool = AtomicBool::new(true);

/// Gives `advice` for every range of our own memory: with one `process_madvise` where
/// the kernel takes it (`batches_work`, cleared when it does not), else one `madvise`
/// per range. False if a `madvise` failed.
fn advise(ranges: &[libc::iovec], advice: i32, batches_work: &AtomicBool) -> bool {
    if batches_work.load(Relaxed) && !running_on_valgrind() {
        let total: usize = ranges.iter().map(|r| r.iov_len).sum();
        // SAFETY: the ranges are memory of our own mappings, advised as the caller says;
        // the vector outlives the call.
        let done =
            unsafe { libc::syscall(libc::SYS_process_madvise, PIDFD_SELF, ranges.as_ptr(), ranges.len(), advice, 0) };
        if done >= 0 && done as usize == total {
            return true;
        }
        if done < 0 {
            // An older kernel (no PIDFD_SELF, or not this advice through
            // process_madvise): one madvise per range from now on.
            let errno = std::io::Error::last_os_error().raw_os_error();
            if matches!(errno, Some(libc::ENOSYS | libc::EINVAL | libc::EBADF | libc::EPERM | libc::ESRCH)) {
                batches_work.store(false, Relaxed);
            }
        }
        // Short or failed: the ranges again one by one (advising one twice is harmless).
    }
    // SAFETY: as above.
    ranges.iter().all(|r| unsafe { libc::madvise(r.iov_base, r.iov_len, advice) } == 0)
}

/// Whether the process runs under valgrind, which does not know `process_madvise` (it
/// warns, then fails it): valgrind's client request RUNNING_ON_VALGRIND, a sequence of
/// rotations that change nothing when no valgrind intercepts it (as in corosensei's
/// stack registration).
fn running_on_valgrind() -> bool {
    const RUNNING_ON_VALGRIND: u64 = 0x1001;
    let request: [u64; 6] = [RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0];
    #[allow(unused_mut)]
    let mut nesting: u64 = 0;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the rotations of rdi add up to 128 bits (it is left as it was) and
    // `xchg rbx, rbx` changes nothing; valgrind reads `request` and writes rdx.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3", "rol rdi, 13", "rol rdi, 61", "rol rdi, 51", "xchg rbx, rbx",
            inout("rdx") nesting, in("rax") request.as_ptr(), options(nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above, with x12 rotated and `orr x10, x10, x10`; valgrind writes x3.
    unsafe {
        std::arch::asm!(
            "ror x12, x12, #3", "ror x12, x12, #13", "ror x12, x12, #61", "ror x12, x12, #51",
            "orr x10, x10, x10",
            inout("x3") nesting, in("x4") request.as_ptr(), options(nostack),
        );
    }
    nesting != 0
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
static INSTALL: ForkSafeOnce = ForkSafeOnce::new();

/// Installs the SIGSEGV handler once per process (a task's stack overflow faults in
/// its guard region with SIGSEGV; the previous handler is chained for every other
/// SIGSEGV, a fault or one sent by `kill` or `raise`). A child forked while its parent
/// installed it installs it again, and then must not take its own handler for the one
/// to chain to.
pub(crate) fn install_handler() {
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is a valid start; the handler is async-signal-safe
        // (it only reads a thread-local Cell, formats into a stack buffer and writes).
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fault as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGSEGV, &action, &mut previous);
            if previous.sa_sigaction != action.sa_sigaction {
                (std::ptr::addr_of_mut!(PREVIOUS) as *mut libc::sigaction).write(previous);
            }
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
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // A fault has a positive code (SEGV_MAPERR, SI_KERNEL...); a signal sent by `kill`,
    // `raise` or `sigqueue` has one of 0 or less, and no address (the field holds the
    // sender's pid and uid).
    let sent = code <= 0;
    // Only a fault can be a task's overflow. A sent signal may also land on a thread
    // that never touched this plugin's thread-locals, whose first touch in a library
    // loaded with dlopen allocates (`__tls_get_addr`): not in a signal handler, which
    // may have interrupted malloc (valgrind showed that deadlock).
    let running = if sent { None } else { crate::sched::running_for_fault() };
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
    if handler == libc::SIG_IGN && sent {
        // Ignored, as the host asked. (A fault cannot be ignored: the kernel kills.)
    } else if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        reset_default(sig);
        if sent {
            // No instruction to fault again: the default action needs the signal
            // itself, delivered once this handler returns and unblocks it.
            // SAFETY: raise is async-signal-safe.
            unsafe { libc::raise(sig) };
        }
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
/// instruction (or delivers the signal raised again), which then kills the process
/// with the signal (and a core dump).
fn reset_default(sig: libc::c_int) {
    // SAFETY: plain sigaction with a zeroed (SIG_DFL) action.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &action, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_platform::fork_lock::ForkMutex;

    /// The pool is the process's: one test at a time (one trims every class).
    static SERIAL: ForkMutex<()> = ForkMutex::new(());
    /// The `munmap` calls `unmap` made.
    pub(super) static MUNMAPS: AtomicUsize = AtomicUsize::new(0);

    fn stack(size: usize) -> Stack {
        reserve(size).expect("a stack").take()
    }

    /// Writes a byte to every page of a stack's usable part (a deep task).
    fn touch_all(stack: &Stack) {
        for at in (stack.low + GUARD..stack.low + GUARD + stack.size).step_by(page()) {
            // SAFETY: usable memory of a stack that nothing runs on.
            unsafe { std::ptr::write_volatile(at as *mut u8, 1) };
        }
    }

    fn resident(at: usize) -> bool {
        let mut vec = [0u8; 1];
        // SAFETY: a page of our own mapping; `vec` has room for its one entry.
        let rc = unsafe { libc::mincore(at as *mut libc::c_void, page(), vec.as_mut_ptr()) };
        assert_eq!(rc, 0);
        vec[0] & 1 != 0
    }

    /// Whether the lowest usable page (below the kept top) is resident.
    fn bottom_resident(stack: &Stack) -> bool {
        resident(stack.low + GUARD)
    }

    /// Whether the top page (kept committed through trims) is resident.
    fn top_resident(stack: &Stack) -> bool {
        resident(stack.low + GUARD + stack.size - page())
    }

    fn wait_trim_age() {
        std::thread::sleep(std::time::Duration::from_nanos(TRIM_AFTER_NS as u64 + 1_000_000));
    }

    #[test]
    fn stacks_are_reused_last_in_first_out_and_trimmed_once_unused_for_a_while() {
        let _serial = SERIAL.lock();
        let size = 200 * 1024;
        let n = TRIM_BATCH + 3;
        let stacks: Vec<Stack> = (0..n).map(|_| stack(size)).collect();
        for s in &stacks {
            touch_all(s);
            assert!(bottom_resident(s));
        }
        let lows: Vec<usize> = stacks.iter().map(|s| s.low).collect();
        for s in stacks {
            give_back(s);
        }
        // Reused at once: the last given back first, with the pages its task touched.
        let again = stack(size);
        assert_eq!(again.low, lows[n - 1]);
        assert!(bottom_resident(&again));
        give_back(again);
        // Unused for long enough: trimmed (in two batches).
        wait_trim_age();
        let next = trim_unused(false);
        assert!(next.is_none_or(|due| due > now()), "nothing due is left");
        for i in 0..n {
            let s = stack(size);
            assert!(lows.contains(&s.low), "stack {i} comes from the pool");
            assert!(!bottom_resident(&s), "stack {i} was trimmed");
            // The kept top is never trimmed: it is what the next task touches first.
            assert!(top_resident(&s), "stack {i} kept its top");
        }
    }

    #[test]
    fn a_stack_given_back_among_unused_ones_trims_them() {
        let _serial = SERIAL.lock();
        let size = 168 * 1024;
        let (a, b) = (stack(size), stack(size));
        touch_all(&a);
        touch_all(&b);
        let lows = (a.low, b.low);
        give_back(a);
        wait_trim_age();
        give_back(b); // finds a unused for long enough
        let (b, a) = (stack(size), stack(size));
        assert_eq!((a.low, b.low), lows);
        assert!(bottom_resident(&b), "the last given back is untrimmed");
        assert!(!bottom_resident(&a), "the one unused for long was trimmed");
    }

    #[test]
    fn a_reused_stack_keeps_its_guard() {
        let _serial = SERIAL.lock();
        let size = 136 * 1024;
        let (a, b) = (stack(size), stack(size));
        touch_all(&a);
        touch_all(&b);
        give_back(a);
        give_back(b);
        // One untrimmed and one trimmed stack: a write just below the usable part of
        // either faults.
        let hot = stack(size);
        assert!(bottom_resident(&hot));
        trim_unused(true);
        let trimmed = stack(size);
        assert!(!bottom_resident(&trimmed));
        for s in [&hot, &trimmed] {
            let target = s.low + GUARD - 8;
            // SAFETY: the child only writes to memory and exits; the parent waits for it.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: the guard region of our own mapping: the write must fault.
                unsafe {
                    std::ptr::write_volatile(target as *mut u64, 1);
                    libc::_exit(0);
                }
            }
            assert!(pid > 0);
            let mut status = 0;
            // SAFETY: our own child.
            assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
            assert!(libc::WIFSIGNALED(status), "a write to the guard did not fault");
            assert_eq!(libc::WTERMSIG(status), libc::SIGSEGV);
        }
    }

    /// (pooled, free): a class's stacks in the pool, and those of them promised to nobody.
    fn counts(class: &Class) -> (isize, isize) {
        let lists = class.lists.lock();
        ((lists.hot.len() + lists.trimmed.len() + lists.trimming) as isize, class.free.load(Acquire))
    }

    #[test]
    fn chunks_start_at_one_stack_and_double() {
        let _serial = SERIAL.lock();
        let size = 296 * 1024;
        let class = class_of(size);
        assert_eq!(class.mapped.load(Relaxed), 0, "a size no other test uses");
        let mut taken = Vec::new();
        let mut chunks = Vec::new();
        while chunks.len() < 8 {
            let before = class.mapped.load(Relaxed);
            taken.push(stack(size));
            let now = class.mapped.load(Relaxed);
            if now > before {
                // Only a reservation that finds the pool empty maps a chunk.
                assert_eq!(counts(class), (now as isize - taken.len() as isize, now as isize - taken.len() as isize));
                assert_eq!(before, taken.len() - 1, "every stack mapped before was taken");
                chunks.push(now - before);
            }
        }
        assert_eq!(chunks, [1, 1, 2, 4, 8, 16, MAP_CHUNK, MAP_CHUNK]);
        for stack in taken {
            give_back(stack);
        }
    }

    #[test]
    fn a_reservation_maps_a_chunk_and_takes_the_stack_given_back_last() {
        let _serial = SERIAL.lock();
        let size = 232 * 1024;
        let class = class_of(size);
        // Chunks grown to their full size, and the pool emptied: stacks taken and held.
        let mut primed = Vec::new();
        while class.chunk() < MAP_CHUNK || counts(class).1 > 0 {
            primed.push(stack(size));
        }
        let chunk = class.chunk() as isize;
        let counts = || counts(class);
        let warm = stack(size);
        assert_eq!(counts(), (chunk - 1, chunk - 1), "one chunk mapped, one of it taken");
        let warm_low = warm.low;
        give_back(warm);
        assert_eq!(counts(), (chunk, chunk));
        let mut promises = (0..3).map(|_| reserve(size).expect("a promise")).collect::<Vec<_>>().into_iter();
        assert_eq!(counts(), (chunk, chunk - 3));
        let first = promises.next().expect("a promise").take();
        assert_eq!(first.low, warm_low, "the stack given back last comes first");
        assert_eq!(counts(), (chunk - 1, chunk - 3));
        // A promise dropped unused frees its stack.
        drop(promises.next());
        assert_eq!(counts(), (chunk - 1, chunk - 2));
        let again = reserve(size).expect("a promise");
        assert_eq!(counts(), (chunk - 1, chunk - 3), "no new stack for it");
        // Every free stack promised: the next promise maps another chunk.
        let rest: Vec<Reservation> = (0..chunk - 3).map(|_| reserve(size).expect("a promise")).collect();
        assert_eq!(counts(), (chunk - 1, 0));
        let one_more = reserve(size).expect("a promise");
        assert_eq!(counts(), (2 * chunk - 1, chunk - 1));
        drop((rest, one_more));
        let _stacks = [first, again.take(), promises.next().expect("a promise").take()];
        drop(primed);
    }

    /// Whether the page at `at` is mapped (`mincore` fails with ENOMEM where it is not).
    fn mapped(at: usize) -> bool {
        let mut vec = [0u8; 1];
        // SAFETY: `vec` has room for the one page's entry; any address may be asked.
        unsafe { libc::mincore(at as *mut libc::c_void, page(), vec.as_mut_ptr()) == 0 }
    }

    /// Runs `body` in a child process, which has one thread: no other test maps memory
    /// where `body` has just unmapped some, or trims the pool, while it looks.
    fn in_child(body: impl FnOnce() + std::panic::UnwindSafe) {
        // SAFETY: the child runs `body` and exits; the parent waits for it.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let passed = std::panic::catch_unwind(body).is_ok();
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(if passed { 0 } else { 1 }) };
        }
        assert!(pid > 0);
        let mut status = 0;
        // SAFETY: our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child failed (its panic is above)");
    }

    #[test]
    fn a_chunk_is_stacks_side_by_side_and_neighbours_unmap_together() {
        let _serial = SERIAL.lock();
        in_child(a_chunk_in_the_child);
    }

    fn a_chunk_in_the_child() {
        let class = class_of(Stack::class(72 * 1024));
        let mut stacks = Stack::map_chunk(class, 4).expect("a chunk");
        for pair in stacks.windows(2) {
            assert_eq!(pair[0].low + GUARD + class.size, pair[1].low, "side by side");
        }
        stacks.extend(Stack::map_chunk(class, 1).expect("a stack elsewhere"));
        let ends: Vec<(usize, usize)> = stacks.iter().map(|s| (s.low, s.low + GUARD + s.size - page())).collect();
        assert!(ends.iter().all(|&(low, top)| mapped(low) && mapped(top)));
        // The fifth stack may have been mapped next to the chunk, at either end.
        let span = GUARD + class.size;
        let apart = if ends[4].0 + span == ends[0].0 || ends[3].0 + span == ends[4].0 { 1 } else { 2 };
        stacks.reverse();
        let before = MUNMAPS.load(Relaxed);
        unmap(stacks);
        assert!(ends.iter().all(|&(low, top)| !mapped(low) && !mapped(top)), "every stack unmapped");
        assert_eq!(MUNMAPS.load(Relaxed) - before, apart, "one munmap for the neighbours");
    }

    #[test]
    fn stacks_given_back_to_a_full_pool_are_unmapped_in_batches() {
        let _serial = SERIAL.lock();
        in_child(a_full_pool_in_the_child);
    }

    fn a_full_pool_in_the_child() {
        let size = Stack::class(24 * 1024);
        let class = class_of(size);
        let stacks: Vec<Stack> = (0..POOL_PER_SIZE + UNMAP_BATCH + 1).map(|_| stack(size)).collect();
        // Mapped but not taken (the rest of the last chunk): already pooled.
        let pooled_before = class.free.load(Acquire) as usize;
        let lows: Vec<usize> = stacks.iter().map(|s| s.low).collect();
        for s in stacks {
            give_back(s);
        }
        let (kept, surplus) = lows.split_at(POOL_PER_SIZE - pooled_before);
        assert_eq!(class.free.load(Acquire) as usize, POOL_PER_SIZE, "the pool is full");
        assert!(kept.iter().all(|&low| mapped(low)), "pooled stacks stay mapped");
        let (unmapped, waiting) = surplus.split_at(surplus.len() / UNMAP_BATCH * UNMAP_BATCH);
        assert!(!unmapped.is_empty() && !waiting.is_empty());
        assert!(unmapped.iter().all(|&low| !mapped(low)), "full batches are unmapped at once");
        assert!(waiting.iter().all(|&low| mapped(low)), "the rest waits");
        assert_eq!(class.lists.lock().surplus.len(), waiting.len());
        // An idle worker's trim unmaps what waits.
        trim_unused(false);
        assert!(waiting.iter().all(|&low| !mapped(low)));
        assert!(class.lists.lock().surplus.is_empty());
    }
}
