//! Finding, loading and checking a platform plugin.
//!
//! A plugin is loaded once per process and never unloaded: its code may run on threads
//! the runtime no longer tracks (a detached task finishing, a thread-exit destructor).
//! Every refusal is `WEFT_EPLUGIN` with a message that names the path and the reason;
//! a refused library is closed again before anything of it ran but its entry function.
use std::ffi::{c_void, CStr, CString, OsStr};
use std::io::Read;
use std::mem::{offset_of, size_of};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use parking_lot::Mutex;
use weft_platform::*;

use crate::error::{fail, Result};
use crate::host::HOST;

/// A loaded, accepted plugin. Leaked: lives as long as the process.
pub(crate) struct Platform {
    pub(crate) table: weft_platform_t,
    pub(crate) name: CString,
    pub(crate) version: CString,
    pub(crate) path: CString,
    _library: Library,
}

// SAFETY: the table is immutable and its pointers are to the plugin's static data.
unsafe impl Send for Platform {}
unsafe impl Sync for Platform {}

static LOADED: Mutex<Vec<&'static Platform>> = Mutex::new(Vec::new());

/// The function members of ABI version 1, in table order, for messages.
const V1_MEMBERS: [&str; 35] = [
    "runtime_open",
    "runtime_close",
    "now",
    "yield_now",
    "sleep_until",
    "spawn",
    "join",
    "detach",
    "cancel",
    "mutex_init",
    "mutex_destroy",
    "mutex_lock",
    "mutex_trylock",
    "mutex_lock_until",
    "mutex_unlock",
    "cond_init",
    "cond_destroy",
    "cond_wait_until",
    "cond_signal",
    "cond_broadcast",
    "rwlock_init",
    "rwlock_destroy",
    "rwlock_read_lock",
    "rwlock_try_read_lock",
    "rwlock_write_lock",
    "rwlock_try_write_lock",
    "rwlock_read_unlock",
    "rwlock_write_unlock",
    "chan_new",
    "chan_send",
    "chan_recv",
    "chan_close",
    "chan_len",
    "chan_free",
    "chan_select",
];
const FIRST_MEMBER: usize = offset_of!(weft_platform_t, runtime_open);
const V1_SIZE: usize = FIRST_MEMBER + V1_MEMBERS.len() * size_of::<usize>();
/// The function members ABI version 2 appends and requires, in table order.
const V2_MEMBERS: [&str; 2] = ["fd_wait", "fd_forget"];
const V2_SIZE: usize = V1_SIZE + V2_MEMBERS.len() * size_of::<usize>();
/// After them, ABI 2's optional members (`region_enter`, `region_leave`,
/// `preempt_attach`, `preempt_point`): notifications that only an M:N platform needs.
/// The runtime calls one only if the table's `struct_size` covers it and it is not NULL.
const V2_OPTIONAL: usize = 4;
const _: () = assert!(V2_SIZE + V2_OPTIONAL * size_of::<usize>() == size_of::<weft_platform_t>());

extern "C" {
    // glibc; the libc crate does not declare it.
    fn secure_getenv(name: *const std::ffi::c_char) -> *mut std::ffi::c_char;
}

/// `getenv` as `secure_getenv` does it: nothing in a set-uid or set-gid process.
pub(crate) fn secure_env(name: &CStr) -> Option<Vec<u8>> {
    // SAFETY: a valid C string; the result is copied before any other env call.
    let value = unsafe { secure_getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: getenv returns a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(value) }.to_bytes().to_vec();
    (!bytes.is_empty()).then_some(bytes)
}

/// The directory libweft itself was loaded from (the executable's, when linked
/// statically).
fn own_directory() -> Option<PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let anchor = crate::runtime::weft_version as *const c_void;
    // SAFETY: dladdr only reads the address and fills `info`.
    if unsafe { libc::dladdr(anchor, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the dynamic linker.
    let file = Path::new(OsStr::from_bytes(unsafe { CStr::from_ptr(info.dli_fname) }.to_bytes()));
    let file = std::fs::canonicalize(file).ok()?;
    file.parent().map(Path::to_path_buf)
}

fn is_plugin_name(spec: &[u8]) -> bool {
    !spec.is_empty() && spec.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// Turns a platform name or path into the file to load.
fn resolve(spec: &[u8]) -> Result<PathBuf> {
    if spec.contains(&b'/') {
        return Ok(PathBuf::from(OsStr::from_bytes(spec)));
    }
    let shown = String::from_utf8_lossy(spec);
    if !is_plugin_name(spec) {
        fail!(
            WEFT_EINVAL,
            "platform \"{shown}\" is neither a name (letters, digits, '_', '-') nor a path (containing '/')"
        );
    }
    let file = format!("libweft_{shown}.so");
    let mut looked = Vec::new();
    let mut candidates = Vec::new();
    if let Some(dir) = own_directory() {
        candidates.push((dir, "next to libweft"));
    }
    if let Some(paths) = secure_env(c"WEFT_PLUGIN_PATH") {
        for dir in paths.split(|b| *b == b':').filter(|d| !d.is_empty()) {
            candidates.push((PathBuf::from(OsStr::from_bytes(dir)), "$WEFT_PLUGIN_PATH"));
        }
    }
    for (dir, why) in candidates {
        let path = dir.join(&file);
        if path.is_file() {
            return Ok(path);
        }
        looked.push(format!("{} ({why})", dir.display()));
    }
    let looked = if looked.is_empty() { "nowhere".to_string() } else { looked.join(", ") };
    fail!(WEFT_EPLUGIN, "platform \"{shown}\" not found: no {file} in {looked}")
}

/// Loads (once) and checks the plugin named by `spec`: a name, a path, or None for
/// `$WEFT_PLATFORM` or else "native".
pub(crate) fn load(spec: Option<&CStr>) -> Result<&'static Platform> {
    let spec = match spec {
        Some(s) => s.to_bytes().to_vec(),
        None => secure_env(c"WEFT_PLATFORM").unwrap_or_else(|| b"native".to_vec()),
    };
    let path = resolve(&spec)?;
    let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    let mut loaded = LOADED.lock();
    if let Some(found) = loaded.iter().find(|p| p.path.as_bytes() == canonical.as_os_str().as_bytes()) {
        return Ok(found);
    }
    let platform: &'static Platform = Box::leak(Box::new(open_and_check(&path, &canonical)?));
    loaded.push(platform);
    Ok(platform)
}

fn open_and_check(path: &Path, canonical: &Path) -> Result<Platform> {
    let shown = path.display();
    let mut header = [0u8; 4];
    match std::fs::File::open(path) {
        Err(e) => fail!(WEFT_EPLUGIN, "{shown}: cannot open: {e}"),
        Ok(mut file) => {
            if file.read_exact(&mut header).is_err() || &header != b"\x7fELF" {
                fail!(WEFT_EPLUGIN, "{shown}: not a shared object (no ELF header)");
            }
        }
    }
    // SAFETY: loading a library runs its initialisers; that is what loading a plugin
    // means, and the host asked for this file.
    let library = match unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) } {
        Ok(library) => library,
        // libloading keeps the dynamic linker's reason in the error's source.
        Err(e) => match std::error::Error::source(&e) {
            Some(reason) => fail!(WEFT_EPLUGIN, "{shown}: cannot load: {reason}"),
            None => fail!(WEFT_EPLUGIN, "{shown}: cannot load: {e}"),
        },
    };
    let symbol = WEFT_PLATFORM_ENTRY_SYMBOL;
    // SAFETY: the symbol is declared with the entry type by the ABI.
    let entry: weft_platform_entry_fn = match unsafe { library.get::<weft_platform_entry_fn>(symbol.as_bytes()) } {
        Ok(entry) => *entry,
        Err(_) => fail!(WEFT_EPLUGIN, "{shown}: no symbol \"{symbol}\" (not a weft platform plugin)"),
    };
    // SAFETY: the entry function of a plugin, called with the static host table.
    let table = unsafe { entry(&HOST) };
    if table.is_null() {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: {symbol}() returned NULL: the plugin refused this runtime (host services ABI {WEFT_HOST_ABI_VERSION})"
        );
    }
    // SAFETY: the plugin returned a table; each field is read only once the fields
    // before it say the table is large enough to hold it.
    let table = unsafe { check_table(table, &shown.to_string())? };
    let text = |p: *const std::ffi::c_char| {
        // SAFETY: checked non-NULL; the plugin's static strings.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_owned())
    };
    let Some(name) = text(table.name) else { fail!(WEFT_EPLUGIN, "{shown}: the table's name is NULL") };
    let version = text(table.version).unwrap_or_else(|| c"unknown".to_owned());
    Ok(Platform {
        table,
        name,
        version,
        path: CString::new(canonical.as_os_str().as_bytes()).unwrap_or_default(),
        _library: library,
    })
}

unsafe fn check_table(table: *const weft_platform_t, shown: &str) -> Result<weft_platform_t> {
    let magic = std::ptr::read_unaligned(table as *const u64);
    if magic != WEFT_PLATFORM_MAGIC {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: bad magic 0x{magic:016x} in the table from {WEFT_PLATFORM_ENTRY_SYMBOL}, expected 0x{WEFT_PLATFORM_MAGIC:016x}"
        );
    }
    let struct_size = (*table).struct_size as usize;
    let abi = (*table).abi_version;
    if !(WEFT_PLATFORM_ABI_MIN..=WEFT_PLATFORM_ABI_VERSION).contains(&abi) {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: {WEFT_PLATFORM_ENTRY_SYMBOL}() returned a table of plugin ABI version {abi}, outside the range this runtime accepts ({WEFT_PLATFORM_ABI_MIN} to {WEFT_PLATFORM_ABI_VERSION})"
        );
    }
    let needed = if abi >= 2 { V2_SIZE } else { V1_SIZE };
    if struct_size < needed {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: table too small: struct_size is {struct_size} bytes, ABI version {abi} needs at least {needed}"
        );
    }
    // Only what the plugin's table has is read: a version-1 table, or a version-2 table
    // without the optional members, is shorter than `weft_platform_t`, and the members
    // it lacks stay NULL in the copy.
    let covered = if abi >= 2 { struct_size.min(size_of::<weft_platform_t>()) } else { needed };
    let mut copy = std::mem::MaybeUninit::<weft_platform_t>::zeroed();
    std::ptr::copy_nonoverlapping(table as *const u8, copy.as_mut_ptr() as *mut u8, covered);
    // SAFETY: every field is an integer, a pointer or an Option of a function pointer,
    // for which all-zero bytes are valid (NULL / None).
    let copy = copy.assume_init();
    let members = (table as *const u8).add(FIRST_MEMBER) as *const usize;
    let names = V1_MEMBERS.iter().chain(if abi >= 2 { V2_MEMBERS.iter() } else { [].iter() });
    for (index, name) in names.enumerate() {
        if std::ptr::read(members.add(index)) == 0 {
            fail!(WEFT_EPLUGIN, "{shown}: table member \"{name}\" is NULL (ABI version {abi} requires it)");
        }
    }
    let room = [
        ("mutex", copy.mutex_size, WEFT_PLATFORM_MUTEX_BYTES, "weft_mutex_t"),
        ("condition", copy.cond_size, WEFT_PLATFORM_COND_BYTES, "weft_cond_t"),
        ("rwlock", copy.rwlock_size, WEFT_PLATFORM_RWLOCK_BYTES, "weft_rwlock_t"),
    ];
    for (what, needs, leaves, ty) in room {
        if needs > leaves {
            fail!(
                WEFT_EPLUGIN,
                "{shown}: sync objects do not fit: the plugin needs {needs} bytes per {what}, {ty} leaves {leaves}"
            );
        }
    }
    let align = copy.sync_align;
    if align == 0 || !align.is_power_of_two() || align > WEFT_PLATFORM_SYNC_ALIGN {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: sync objects do not fit: the plugin needs {align}-byte alignment, weft guarantees {WEFT_PLATFORM_SYNC_ALIGN}"
        );
    }
    Ok(copy)
}

/// Calls a member of an accepted table. The loader refuses a table with a NULL member
/// of its version, so the member is present; the caller vouches for the arguments.
macro_rules! plat_call {
    ($table:expr, $member:ident($($arg:expr),* $(,)?)) => {{
        let member = $table.$member;
        debug_assert!(member.is_some(), concat!("unchecked table member ", stringify!($member)));
        #[allow(unused_unsafe)]
        // SAFETY: checked non-NULL by the loader (see above).
        unsafe { (member.unwrap_unchecked())($($arg),*) }
    }};
}
pub(crate) use plat_call;
