//! Where a platform given by name is looked for, in this order:
//! 1. next to libweft: the directory of `libweft.so`, or, when `libweft.a` is linked
//!    into the program, the program's own directory, read from `/proc/self/exe`;
//! 2. the installed plugin directory: `weft/plugins` under the directory of
//!    `libweft.so` (`cmake --install` puts the plugins in `LIBDIR/weft/plugins`), or,
//!    for an installed `libweft.a`, the absolute directory that `cmake --install` wrote
//!    into the archive (see `INSTALLED_PLUGIN_DIR`);
//! 3. each directory of `$WEFT_PLUGIN_PATH`.
//!
//! None of these depends on the current directory or on `argv[0]`: the dynamic
//! linker's name for the main program is `argv[0]` as typed, so a program found through
//! `$PATH` and run from a directory holding a file of its name and a fake plugin would
//! otherwise load that plugin's code.
use std::ffi::{c_int, c_void, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering::Relaxed};

use weft_platform::once::ForkSafeOnce;
use weft_platform::WEFT_ENOTSUP;

use super::loader::secure_env;
use crate::ffi::error::{fail, Result};

/// The bytes that open the installed-directory slot; `cmake --install` finds them in
/// the installed `libweft.a` (packaging/set_plugin_dir.c) and writes the absolute
/// plugin directory, NUL-terminated, into the `INSTALLED_PLUGIN_DIR_ROOM` bytes after.
const INSTALLED_PLUGIN_DIR_MARKER: &[u8] = b"@weft-installed-plugin-dir@";
const INSTALLED_PLUGIN_DIR_ROOM: usize = 4096;
const SLOT_LEN: usize = INSTALLED_PLUGIN_DIR_MARKER.len() + INSTALLED_PLUGIN_DIR_ROOM;

/// The installed plugin directory of a static `libweft.a`, which cannot find its plugins
/// relative to itself once it is linked into a program. Empty (all NUL after the marker)
/// in a build tree and in `libweft.so`, which use `weft/plugins` next to themselves.
#[used]
static INSTALLED_PLUGIN_DIR: [u8; SLOT_LEN] = {
    let mut slot = [0u8; SLOT_LEN];
    let mut i = 0;
    while i < INSTALLED_PLUGIN_DIR_MARKER.len() {
        slot[i] = INSTALLED_PLUGIN_DIR_MARKER[i];
        i += 1;
    }
    slot
};

/// The directory written into the slot, if any. Read with volatile loads: the compiler
/// knows the initial (empty) contents and would otherwise fold the read away.
fn installed_dir_from_slot() -> Option<PathBuf> {
    let mut dir = Vec::new();
    for index in INSTALLED_PLUGIN_DIR_MARKER.len()..SLOT_LEN {
        // SAFETY: an in-bounds byte of a static array.
        let byte = unsafe { std::ptr::read_volatile(INSTALLED_PLUGIN_DIR.as_ptr().add(index)) };
        if byte == 0 {
            break;
        }
        dir.push(byte);
    }
    (!dir.is_empty()).then(|| PathBuf::from(OsStr::from_bytes(&dir)))
}

/// What the dynamic linker knows about the object that holds libweft's code.
struct OwnObject {
    /// libweft is linked into the main program (`libweft.a`).
    in_program: bool,
    /// The dynamic linker's name for the object (empty for the main program).
    name: Vec<u8>,
    /// The main program has no `PT_INTERP`: it was linked with `-static`.
    program_fully_static: bool,
}

struct Search {
    anchor: usize,
    index: usize,
    found: Option<OwnObject>,
    program_fully_static: bool,
}

unsafe extern "C" fn visit_object(info: *mut libc::dl_phdr_info, _size: usize, data: *mut c_void) -> c_int {
    // SAFETY: dl_iterate_phdr passes the `Search` given to it below and a valid info
    // record whose program headers are `dlpi_phnum` entries at `dlpi_phdr`.
    let (search, info) = unsafe { (&mut *(data as *mut Search), &*info) };
    let headers: &[_] = if info.dlpi_phdr.is_null() {
        &[]
    } else {
        // SAFETY: see above.
        unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) }
    };
    let first = search.index == 0;
    search.index += 1;
    if first {
        // glibc reports the main program first.
        search.program_fully_static = !headers.iter().any(|h| h.p_type == libc::PT_INTERP);
    }
    let holds_anchor = headers.iter().any(|h| {
        let start = (info.dlpi_addr as usize).wrapping_add(h.p_vaddr as usize);
        h.p_type == libc::PT_LOAD && search.anchor >= start && search.anchor - start < h.p_memsz as usize
    });
    if !holds_anchor {
        return 0;
    }
    let name = if info.dlpi_name.is_null() {
        Vec::new()
    } else {
        // SAFETY: a NUL-terminated string owned by the dynamic linker.
        unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes().to_vec()
    };
    search.found = Some(OwnObject { in_program: first, name, program_fully_static: search.program_fully_static });
    1
}

/// Found once per process: `dl_iterate_phdr` takes the dynamic linker's lock, which a
/// child of `fork()` can inherit held (another thread of the parent was iterating), so
/// it is not called again in a child once a runtime was open in the parent (see fork.rs).
/// A `ForkSafeOnce`: a child forked during another thread's search searches itself.
static OWN_OBJECT_FOUND: ForkSafeOnce = ForkSafeOnce::new();
static OWN_OBJECT: AtomicPtr<OwnObject> = AtomicPtr::new(std::ptr::null_mut());

fn own_object() -> Option<&'static OwnObject> {
    OWN_OBJECT_FOUND.call_once(|| {
        if let Some(found) = find_own_object() {
            OWN_OBJECT.store(Box::into_raw(Box::new(found)), Relaxed);
        }
    });
    // SAFETY: null, or a box leaked above and never freed. The once's end orders the
    // store before this load.
    unsafe { OWN_OBJECT.load(Relaxed).as_ref() }
}

/// Called before a fork, so that the child has the answer without the linker's lock.
pub(crate) fn find_own_object_before_fork() {
    own_object();
}

fn find_own_object() -> Option<OwnObject> {
    let mut search =
        Search { anchor: search_dirs as *const () as usize, index: 0, found: None, program_fully_static: false };
    // SAFETY: the callback only reads the records it is given and writes `search`,
    // which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit_object), &mut search as *mut Search as *mut c_void) };
    search.found
}

/// The absolute path of the file mapped at `address`, from `/proc/self/maps` (for a
/// library the dynamic linker knows under a relative name).
fn mapped_file(address: usize) -> Option<PathBuf> {
    let maps = std::fs::read("/proc/self/maps").ok()?;
    for line in maps.split(|b| *b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let mut fields = text.splitn(6, ' ');
        let range = fields.next()?;
        let (start, end) = range.split_once('-')?;
        let (start, end) = (usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?);
        if !(start..end).contains(&address) {
            continue;
        }
        let path = fields.nth(4)?.trim_start();
        return path.starts_with('/').then(|| PathBuf::from(path));
    }
    None
}

fn parent_of(file: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(file).ok()?.parent().map(Path::to_path_buf)
}

/// Refuses a program linked with `-static`: a plugin is a shared object that needs the
/// C library's own dynamic linker, which such a program does not have (glibc's static
/// `dlopen` would map a second C library and crash in the plugin).
pub(crate) fn refuse_fully_static_program() -> Result<()> {
    if own_object().is_some_and(|own| own.program_fully_static) {
        fail!(
            WEFT_ENOTSUP,
            "this program is linked fully statically (-static), so it cannot load a platform plugin (a shared object): link libweft.a into a dynamically linked program instead (`pkg-config --static --libs weft-static`, without -static)"
        );
    }
    Ok(())
}

/// The reason shown for a directory of `$WEFT_PLUGIN_PATH`.
pub(crate) const FROM_ENV: &str = "$WEFT_PLUGIN_PATH";

/// The directories a platform name is looked up in, in order, each with the reason
/// shown in the not-found message.
pub(crate) fn search_dirs() -> Vec<(PathBuf, &'static str)> {
    let mut dirs = Vec::new();
    let own = own_object();
    let next_to = own.and_then(|own| {
        if own.in_program {
            std::fs::read_link("/proc/self/exe").ok().and_then(|exe| exe.parent().map(Path::to_path_buf))
        } else if own.name.starts_with(b"/") {
            parent_of(Path::new(OsStr::from_bytes(&own.name)))
        } else {
            mapped_file(search_dirs as *const () as usize).and_then(|file| parent_of(&file))
        }
    });
    let in_program = own.is_some_and(|own| own.in_program);
    if let Some(dir) = &next_to {
        dirs.push((dir.clone(), if in_program { "next to the program" } else { "next to libweft" }));
    }
    if let Some(dir) = installed_dir_from_slot() {
        dirs.push((dir, "installed plugin directory"));
    } else if let (Some(dir), false) = (&next_to, in_program) {
        dirs.push((dir.join("weft/plugins"), "installed plugin directory"));
    }
    if let Some(paths) = secure_env(c"WEFT_PLUGIN_PATH") {
        for dir in paths.split(|b| *b == b':').filter(|d| !d.is_empty()) {
            dirs.push((PathBuf::from(OsStr::from_bytes(dir)), FROM_ENV));
        }
    }
    dirs
}
