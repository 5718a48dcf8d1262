//! What the loader checks of a plugin file before `dlopen` sees it. glibc's loader
//! trusts the file: a truncated shared object makes it touch pages past the end of the
//! file (SIGBUS), a FIFO makes it block forever, and a library for another machine is
//! reported as "No such file or directory". So the file must be a regular file, and an
//! ELF shared object of this process's class, byte order and machine whose program
//! headers and loadable segments lie inside the file.
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use weft_platform::WEFT_EPLUGIN;

use crate::ffi::error::{fail, Result};

const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;

#[cfg(target_pointer_width = "64")]
const CLASS: (u8, &str) = (2, "64-bit");
#[cfg(target_pointer_width = "32")]
const CLASS: (u8, &str) = (1, "32-bit");

#[cfg(target_endian = "little")]
const DATA: u8 = 1;
#[cfg(target_endian = "big")]
const DATA: u8 = 2;

#[cfg(target_arch = "x86_64")]
const MACHINE: u16 = 62;
#[cfg(target_arch = "aarch64")]
const MACHINE: u16 = 183;
#[cfg(target_arch = "riscv64")]
const MACHINE: u16 = 243;
#[cfg(target_arch = "x86")]
const MACHINE: u16 = 3;

fn machine_name(machine: u16) -> String {
    match machine {
        3 => "x86".into(),
        40 => "ARM".into(),
        62 => "x86-64".into(),
        183 => "AArch64".into(),
        243 => "RISC-V".into(),
        m => format!("machine {m}"),
    }
}

/// Little readers over the file's bytes, in the file's byte order (checked to be ours).
fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn word_at(b: &[u8], at: usize) -> Option<u64> {
    if CLASS.0 == 2 {
        Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
    } else {
        u32_at(b, at).map(u64::from)
    }
}

/// Checks `path` as described in the module comment; the error names the reason.
pub(crate) fn check(path: &Path) -> Result<()> {
    let shown = path.display();
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let mut file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Ok(file) => file,
        Err(e) => fail!(WEFT_EPLUGIN, "{shown}: cannot open: {e}"),
    };
    let size = match file.metadata() {
        Ok(meta) if meta.is_file() => meta.len(),
        Ok(_) => fail!(WEFT_EPLUGIN, "{shown}: not a regular file (a plugin is a shared object file)"),
        Err(e) => fail!(WEFT_EPLUGIN, "{shown}: cannot read its metadata: {e}"),
    };
    let mut bytes = Vec::new();
    // The headers are at the start; 64 KiB holds them for any real plugin.
    if let Err(e) = (&mut file).take(64 * 1024).read_to_end(&mut bytes) {
        fail!(WEFT_EPLUGIN, "{shown}: cannot read: {e}");
    }
    check_bytes(&bytes, size)
        .map_err(|reason| crate::ffi::error::Error::new(WEFT_EPLUGIN, format!("{shown}: {reason}")))
}

/// The checks on the first bytes of a file of `size` bytes; the reason on failure.
fn check_bytes(b: &[u8], size: u64) -> std::result::Result<(), String> {
    if b.len() < 16 || &b[..4] != b"\x7fELF" {
        return Err("not a shared object (no ELF header)".into());
    }
    if b[4] != CLASS.0 {
        return Err(format!("an ELF file of another class (this process is {})", CLASS.1));
    }
    if b[5] != DATA {
        return Err("an ELF file of the other byte order".into());
    }
    let truncated = || "truncated: its ELF header is incomplete".to_string();
    let machine = u16_at(b, 18).ok_or_else(truncated)?;
    if machine != MACHINE {
        return Err(format!("built for {}, but this process runs on {}", machine_name(machine), machine_name(MACHINE)));
    }
    if u16_at(b, 16).ok_or_else(truncated)? != ET_DYN {
        return Err("an ELF file that is not a shared object (build the plugin with -shared)".into());
    }
    let wide = CLASS.0 == 2;
    let (phoff, phentsize, phnum) = if wide {
        (word_at(b, 32), u16_at(b, 54), u16_at(b, 56))
    } else {
        (word_at(b, 28), u16_at(b, 42), u16_at(b, 44))
    };
    let (phoff, phentsize, phnum) =
        (phoff.ok_or_else(truncated)?, phentsize.ok_or_else(truncated)? as u64, phnum.ok_or_else(truncated)? as u64);
    let table_end = phoff.saturating_add(phentsize.saturating_mul(phnum));
    if table_end > size || table_end > b.len() as u64 {
        return Err(format!("truncated: its program headers end at byte {table_end}, the file has {size}"));
    }
    for i in 0..phnum {
        let at = (phoff + i * phentsize) as usize;
        let p_type = u32_at(b, at).ok_or_else(truncated)?;
        if p_type != PT_LOAD {
            continue;
        }
        let (offset, filesz) =
            if wide { (word_at(b, at + 8), word_at(b, at + 32)) } else { (word_at(b, at + 4), word_at(b, at + 16)) };
        let end = offset.ok_or_else(truncated)?.saturating_add(filesz.ok_or_else(truncated)?);
        if end > size {
            return Err(format!("truncated: a loadable segment ends at byte {end}, the file has {size}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_library() -> Vec<u8> {
        // The test binary itself is an ELF file of this machine (an executable, PIE).
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn foreign_and_broken_files_are_named() {
        assert!(check_bytes(b"#!/bin/sh\n", 10).unwrap_err().contains("no ELF header"));
        let mut elf = own_library();
        let size = elf.len() as u64;
        elf[18..20].copy_from_slice(&183u16.to_ne_bytes());
        if MACHINE != 183 {
            assert!(check_bytes(&elf, size).unwrap_err().contains("built for AArch64"));
        }
        let mut elf = own_library();
        elf[4] = if CLASS.0 == 2 { 1 } else { 2 };
        assert!(check_bytes(&elf, size).unwrap_err().contains("another class"));
    }

    #[test]
    fn a_truncated_file_is_refused_before_dlopen() {
        let mut elf = own_library();
        elf[16..18].copy_from_slice(&ET_DYN.to_ne_bytes()); // as if a shared object
        let full = elf.len() as u64;
        assert_eq!(check_bytes(&elf, full), Ok(()));
        let cut = check_bytes(&elf[..2000], 2000).unwrap_err();
        assert!(cut.starts_with("truncated"), "{cut}");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("weft-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("libweft_fifo.so");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = check(&fifo).unwrap_err();
        assert!(e.detail.contains("not a regular file"), "{}", e.detail);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
