//! The few weft entry points the Rust benchmarks call, declared by hand from
//! include/weft.h (the benchmark links libweft.so like any C host).
use std::cell::UnsafeCell;
use std::ffi::{c_char, c_void, CStr};
use std::ptr;

pub type Status = i32;
#[cfg_attr(not(weft_chan), allow(dead_code))]
pub const WEFT_FOREVER: i64 = i64::MAX;

#[repr(C)]
pub struct Runtime {
    _opaque: [u8; 0],
}

/// `weft_mutex_t`: 64 bytes of host memory; must not move once initialised.
#[repr(C, align(8))]
pub struct RawWeftMutex(pub UnsafeCell<[u64; 8]>);

extern "C" {
    pub fn weft_runtime_open(cfg: *const c_void, out: *mut *mut Runtime) -> Status;
    pub fn weft_runtime_close(rt: *mut Runtime) -> Status;
    pub fn weft_strerror(code: Status) -> *const c_char;
    pub fn weft_last_error() -> *const c_char;
    pub fn weft_mutex_init(rt: *mut Runtime, m: *mut RawWeftMutex, flags: u32) -> Status;
    pub fn weft_mutex_destroy(m: *mut RawWeftMutex) -> Status;
    pub fn weft_mutex_lock(m: *mut RawWeftMutex) -> Status;
    pub fn weft_mutex_unlock(m: *mut RawWeftMutex) -> Status;
    pub fn weft_parallel_for(
        rt: *mut Runtime,
        begin: usize,
        end: usize,
        grain: usize,
        body: RangeFn,
        ud: *mut c_void,
        code: *mut i32,
    ) -> Status;
}

/// A `weft_parallel_for` body: `body(begin, end, ud)`, non-zero to fail.
pub type RangeFn = unsafe extern "C" fn(usize, usize, *mut c_void) -> i32;

/// Aborts the run: a benchmark that cannot do what it claims prints no figure.
#[cold]
pub fn die(what: &str, code: Status) -> ! {
    // SAFETY: weft returns static / thread-local NUL-terminated strings.
    let (name, detail) = unsafe { (CStr::from_ptr(weft_strerror(code)), CStr::from_ptr(weft_last_error())) };
    eprintln!("weftbench-rs: {what} failed ({code}): {} [{}]", name.to_string_lossy(), detail.to_string_lossy());
    std::process::exit(1);
}

#[inline(always)]
pub fn check(what: &str, code: Status) {
    if code != 0 {
        die(what, code);
    }
}

/// The runtime every weft variant uses (the default platform, native).
pub struct Rt(pub *mut Runtime);
unsafe impl Send for Rt {}
unsafe impl Sync for Rt {}

impl Rt {
    pub fn open() -> Rt {
        let mut rt = ptr::null_mut();
        // SAFETY: NULL config = defaults; `rt` is a valid out-pointer.
        check("weft_runtime_open", unsafe { weft_runtime_open(ptr::null(), &mut rt) });
        Rt(rt)
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        // SAFETY: opened by `open`, closed once.
        check("weft_runtime_close", unsafe { weft_runtime_close(self.0) });
    }
}

unsafe impl Sync for RawWeftMutex {}
unsafe impl Send for RawWeftMutex {}

impl RawWeftMutex {
    pub const fn zeroed() -> Self {
        RawWeftMutex(UnsafeCell::new([0; 8]))
    }
    pub fn ptr(&self) -> *mut RawWeftMutex {
        self as *const _ as *mut _
    }
}

#[cfg(weft_chan)]
pub mod chan {
    //! The channel API, as declared in weft.h (built only when the header has it).
    use super::{Runtime, Status};
    use std::ffi::c_void;

    pub const WEFT_CHAN_UNBOUNDED: usize = usize::MAX;
    pub const WEFT_SELECT_RECV: i32 = 2;

    #[repr(C)]
    pub struct Chan {
        _opaque: [u8; 0],
    }

    #[repr(C)]
    pub struct SelectCase {
        pub chan: *mut Chan,
        pub op: i32,
        pub buf: *mut c_void,
    }

    extern "C" {
        pub fn weft_chan_new(
            rt: *mut Runtime,
            elem_size: usize,
            capacity: usize,
            opts: *const c_void,
            out: *mut *mut Chan,
        ) -> Status;
        pub fn weft_chan_send(ch: *mut Chan, elem: *const c_void, deadline: i64) -> Status;
        pub fn weft_chan_recv(ch: *mut Chan, out: *mut c_void, deadline: i64) -> Status;
        pub fn weft_chan_release(ch: *mut Chan);
        pub fn weft_select(cases: *const SelectCase, n: usize, deadline: i64, flags: u32, chosen: *mut usize)
            -> Status;
    }
}
