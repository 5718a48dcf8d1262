//! Finding, loading and checking a platform plugin.
//!
//! A plugin is loaded once per process and never unloaded: its code may run on threads
//! the runtime no longer tracks (a detached task finishing, a thread-exit destructor).
//! Every refusal is `WEFT_EPLUGIN` with a message that names the path and the reason.
//! A library refused before its entry function ran is closed again; one whose entry ran
//! stays loaded (the entry may have started threads, installed handlers), and its
//! refusal is remembered: a later load gives it again without running the entry twice.
use std::ffi::{CStr, CString, OsStr};
use std::mem::{offset_of, size_of};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use weft_platform::fork_lock::ForkMutex;
use weft_platform::*;

use super::elf;
use crate::ffi::error::{fail, Result};

/// A loaded, accepted plugin. Leaked: lives as long as the process.
pub(crate) struct Platform {
    pub(crate) table: weft_platform_t,
    pub(crate) name: CString,
    pub(crate) version: CString,
    pub(crate) path: CString,
    /// The address of its entry function: the same library loaded through another path
    /// (a hard link, a bind mount) is found by it.
    entry: usize,
    _library: Library,
}

// SAFETY: the table is immutable and its pointers are to the plugin's static data.
unsafe impl Send for Platform {}
// SAFETY: as for Send: nothing in it changes after loading.
unsafe impl Sync for Platform {}

pub(crate) static LOADED: ForkMutex<Vec<&'static Platform>> = ForkMutex::new(Vec::new());

/// Held by a load, from the look for the plugin to its record in `LOADED`: a plugin's
/// entry function runs once per process (docs/plugins.md). Two threads that opened
/// their first runtimes on one plugin at once both called it. Not `LOADED` itself, so
/// that a runtime opening on a plugin already loaded never waits for another's load.
pub(crate) static LOADING: ForkMutex<()> = ForkMutex::new(());

/// Libraries whose entry function ran and whose table was refused, by the entry's
/// address: the reason, after the path.
static REFUSED: ForkMutex<Vec<(usize, String)>> = ForkMutex::new(Vec::new());

/// The function members of ABI version 1, in table order, for messages.
const V1_MEMBERS: [&str; 35] = [
    "runtime_open",
    "runtime_close",
    "now",
    "yield",
    "sleep_until",
    "spawn",
    "join",
    "detach",
    "cancel",
    "mutex_init",
    "mutex_destroy",
    "mutex_lock",
    "mutex_try_lock",
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
/// The function members ABI version 2 appended (IO readiness waits), in table order.
const V2_MEMBERS: [&str; 2] = ["fd_wait", "fd_forget"];
const FIRST_MEMBER: usize = offset_of!(weft_platform_t, runtime_open);
const V1_SIZE: usize = FIRST_MEMBER + V1_MEMBERS.len() * size_of::<usize>();
/// After them, ABI 2's optional members (`region_enter`, `region_leave`,
/// `preempt_attach`, `preempt_point`, `stack_bounds`: what only an M:N or coroutine
/// platform needs; `park`, `unpark`: parking the runtime does itself without them;
/// `rwlock_read_lock_until`, `rwlock_write_lock_until`: timed rwlock locks, which are
/// `WEFT_ENOTSUP` without them). The runtime calls one only if the table's
/// `struct_size` covers it and it is not NULL.
const V2_OPTIONAL: usize = 9;
const V2_SIZE: usize = V1_SIZE + V2_MEMBERS.len() * size_of::<usize>();
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
    let mut env_searched = false;
    for (dir, why) in super::dirs::search_dirs() {
        let path = dir.join(&file);
        if path.is_file() {
            return Ok(path);
        }
        env_searched |= why == super::dirs::FROM_ENV;
        looked.push(format!("{} ({why})", dir.display()));
    }
    let looked = if looked.is_empty() { "nowhere".to_string() } else { looked.join(", ") };
    let hint = if env_searched {
        ""
    } else {
        "; set $WEFT_PLUGIN_PATH to the directory that holds it, or give its path as the platform"
    };
    fail!(WEFT_EPLUGIN, "platform \"{shown}\" not found: no {file} in {looked}{hint}")
}

/// Loads (once) and checks the plugin named by `spec`: a name, a path, or None for
/// `$WEFT_PLATFORM` or else "native". `host` is the host-services table its entry
/// function receives.
pub(crate) fn load(spec: Option<&CStr>, host: &'static weft_host_t) -> Result<&'static Platform> {
    let spec = match spec {
        Some(s) => s.to_bytes().to_vec(),
        None => secure_env(c"WEFT_PLATFORM").unwrap_or_else(|| b"native".to_vec()),
    };
    super::dirs::refuse_fully_static_program()?;
    let path = resolve(&spec)?;
    let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    if let Some(found) = loaded(&canonical) {
        return Ok(found);
    }
    let _loading = LOADING.lock();
    // Another thread may have loaded it meanwhile.
    if let Some(found) = loaded(&canonical) {
        return Ok(found);
    }
    let platform = match open_and_check(&path, &canonical, host)? {
        Opened::Known(found) => return Ok(found),
        Opened::New(platform) => platform,
    };
    let platform: &'static Platform = Box::leak(platform);
    LOADED.lock().push(platform);
    Ok(platform)
}

/// What `open_and_check` found.
enum Opened {
    /// The library was loaded already, through another path: its platform.
    Known(&'static Platform),
    New(Box<Platform>),
}

/// The plugin already loaded from `canonical`, if any.
fn loaded(canonical: &Path) -> Option<&'static Platform> {
    LOADED.lock().iter().copied().find(|p| p.path.as_bytes() == canonical.as_os_str().as_bytes())
}

fn open_and_check(path: &Path, canonical: &Path, host: &'static weft_host_t) -> Result<Opened> {
    let shown = path.display();
    elf::check(path)?;
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
    // The same library under another name: its entry ran already (dlopen counted this
    // load; dropping `library` gives the count back).
    let entry_addr = entry as usize;
    if let Some(found) = LOADED.lock().iter().copied().find(|p| p.entry == entry_addr) {
        return Ok(Opened::Known(found));
    }
    if let Some((_, reason)) = REFUSED.lock().iter().find(|(e, _)| *e == entry_addr) {
        fail!(WEFT_EPLUGIN, "{shown}: {reason}");
    }
    // From here on the library stays loaded, accepted or not.
    let library = std::mem::ManuallyDrop::new(library);
    // SAFETY: the entry function of a plugin, called with the static host table.
    let table = unsafe { entry(host) };
    let checked = accept_table(table, &shown.to_string());
    let (table, name, version) = match checked {
        Ok(accepted) => accepted,
        Err(e) => {
            let reason = e.detail.strip_prefix(&format!("{shown}: ")).unwrap_or(&e.detail).to_string();
            REFUSED.lock().push((entry_addr, reason));
            return Err(e);
        }
    };
    Ok(Opened::New(Box::new(Platform {
        table,
        name,
        version,
        path: CString::new(canonical.as_os_str().as_bytes()).unwrap_or_default(),
        entry: entry_addr,
        _library: std::mem::ManuallyDrop::into_inner(library),
    })))
}

/// The table an entry function returned, checked, with its name and version.
fn accept_table(table: *const weft_platform_t, shown: &str) -> Result<(weft_platform_t, CString, CString)> {
    let symbol = WEFT_PLATFORM_ENTRY_SYMBOL;
    // What the plugin said about a refusal (`set_error_detail`), taken now: left in
    // the thread's slot, it would be given as the reason of a later, unrelated failure.
    let said = crate::ffi::error::take_plugin_detail().map(|d| format!(" (it says: {d})")).unwrap_or_default();
    if table.is_null() {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: {symbol}() returned NULL: the plugin refused this runtime (host services ABI {WEFT_HOST_ABI_VERSION}){said}"
        );
    }
    // SAFETY: the plugin returned a table; each field is read only once the fields
    // before it say the table is large enough to hold it.
    let table = unsafe { check_table(table, shown)? };
    let text = |p: *const std::ffi::c_char| {
        // SAFETY: checked non-NULL; the plugin's static strings.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_owned())
    };
    let Some(name) = text(table.name) else { fail!(WEFT_EPLUGIN, "{shown}: the table's name is NULL") };
    let version = text(table.version).unwrap_or_else(|| c"unknown".to_owned());
    Ok((table, name, version))
}

/// # Safety
/// `table` is what a plugin's entry function returned: non-NULL, and readable for as
/// many bytes as its own `struct_size` says (at least the magic and the fixed fields
/// are read before that is known).
unsafe fn check_table(table: *const weft_platform_t, shown: &str) -> Result<weft_platform_t> {
    // SAFETY: the first eight bytes of any table (see above).
    let magic = unsafe { std::ptr::read_unaligned(table as *const u64) };
    if magic != WEFT_PLATFORM_MAGIC {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: bad magic 0x{magic:016x} in the table from {WEFT_PLATFORM_ENTRY_SYMBOL}, expected 0x{WEFT_PLATFORM_MAGIC:016x}"
        );
    }
    if !table.is_aligned() {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: the table from {WEFT_PLATFORM_ENTRY_SYMBOL} is at {table:p}, not aligned to {} bytes as a weft_platform_t is",
            std::mem::align_of::<weft_platform_t>()
        );
    }
    // SAFETY: the magic says this is a table; its header fields are in every version.
    let (struct_size, abi) = unsafe { ((*table).struct_size as usize, (*table).abi_version) };
    if !(WEFT_PLATFORM_ABI_MIN..=WEFT_PLATFORM_ABI_VERSION).contains(&abi) {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: {WEFT_PLATFORM_ENTRY_SYMBOL}() returned a table of plugin ABI version {abi}, outside the range this runtime accepts ({WEFT_PLATFORM_ABI_MIN} to {WEFT_PLATFORM_ABI_VERSION})"
        );
    }
    let (needed, v2_members): (usize, &[&str]) = if abi >= 2 { (V2_SIZE, &V2_MEMBERS) } else { (V1_SIZE, &[]) };
    if struct_size < needed {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: table too small: struct_size is {struct_size} bytes, ABI version {abi} needs at least {needed}"
        );
    }
    // Every member past the fixed ones is pointer-sized: a size between two of them
    // would leave the copy half a function pointer, non-NULL and wrong.
    if !struct_size.is_multiple_of(size_of::<usize>()) {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: struct_size is {struct_size} bytes, which ends inside a member (not a multiple of {}): \
             set it to sizeof(weft_platform_t)",
            size_of::<usize>()
        );
    }
    // Only the bytes the plugin declares are read: an older plugin's table ends before
    // the members of later versions (a version-2 table may end before the optional
    // members), which stay NULL in the copy (the runtime answers their calls with
    // WEFT_ENOTSUP, or skips an optional notification).
    // SAFETY: every field of the table is an integer, a pointer or an optional function
    // pointer, for all of which zero bytes are a valid value (0, NULL, None).
    let mut copy: weft_platform_t = unsafe { std::mem::zeroed() };
    let covered = if abi >= 2 { size_of::<weft_platform_t>() } else { needed };
    let declared = struct_size.min(covered);
    // SAFETY: the plugin's table is at least `struct_size` bytes (its own declaration),
    // `declared` is no more than that nor than the copy's size, and the two do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(table as *const u8, &mut copy as *mut weft_platform_t as *mut u8, declared)
    };
    let members = (&copy as *const weft_platform_t as *const u8).wrapping_add(FIRST_MEMBER) as *const usize;
    for (index, name) in V1_MEMBERS.iter().chain(v2_members).enumerate() {
        // SAFETY: `members` walks the function pointers of our own copy of the table.
        if unsafe { std::ptr::read(members.add(index)) } == 0 {
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
    if copy.caps & WEFT_CAP_MUTEX_BYTE != 0 && copy.mutex_size != 1 {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: claims WEFT_CAP_MUTEX_BYTE with a mutex of {} bytes: that mutex is its byte lock alone (mutex_size 1)",
            copy.mutex_size
        );
    }
    if copy.caps & WEFT_CAP_MUTEX_BYTE != 0 && copy.caps & WEFT_CAP_DETERMINISTIC != 0 {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: claims both WEFT_CAP_MUTEX_BYTE and WEFT_CAP_DETERMINISTIC: libweft would take its mutexes without a switch point"
        );
    }
    if copy.park.is_some() != copy.unpark.is_some() {
        fail!(WEFT_EPLUGIN, "{shown}: has one of the table members \"park\" and \"unpark\" without the other");
    }
    if copy.rwlock_read_lock_until.is_some() != copy.rwlock_write_lock_until.is_some() {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: has one of the table members \"rwlock_read_lock_until\" and \"rwlock_write_lock_until\" without the other"
        );
    }
    if copy.caps & WEFT_CAP_MONOTONIC_CLOCK != 0 && copy.caps & WEFT_CAP_VIRTUAL_TIME != 0 {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: claims both WEFT_CAP_MONOTONIC_CLOCK and WEFT_CAP_VIRTUAL_TIME: its clock cannot be both"
        );
    }
    if copy.caps & WEFT_CAP_SCHED_YIELD != 0 && copy.caps & WEFT_CAP_OS_THREADS == 0 {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: claims WEFT_CAP_SCHED_YIELD without WEFT_CAP_OS_THREADS: a sched_yield of the calling thread would not let its other tasks run"
        );
    }
    if copy.caps & WEFT_CAP_SCHED_YIELD != 0 && copy.caps & WEFT_CAP_DETERMINISTIC != 0 {
        fail!(
            WEFT_EPLUGIN,
            "{shown}: claims both WEFT_CAP_SCHED_YIELD and WEFT_CAP_DETERMINISTIC: libweft would yield without a switch point"
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_are_told_apart() {
        assert!(is_plugin_name(b"native") && is_plugin_name(b"my-plugin_2"));
        assert!(!is_plugin_name(b"") && !is_plugin_name(b"a b") && !is_plugin_name(b"x.so"));
        assert_eq!(resolve(b"./libx.so").unwrap(), PathBuf::from("./libx.so"));
        let e = resolve(b"no good").unwrap_err();
        assert_eq!(e.code, WEFT_EINVAL);
        assert!(e.detail.contains("neither a name"), "{}", e.detail);
    }

    #[test]
    fn a_missing_plugin_says_which_file_and_where() {
        let e = resolve(b"surely_not_installed").unwrap_err();
        assert_eq!(e.code, WEFT_EPLUGIN);
        assert!(e.detail.contains("no libweft_surely_not_installed.so in "), "{}", e.detail);
    }
}
