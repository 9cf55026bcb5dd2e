//! Just enough ELF64 to find a module's sections by name, as the kernel's module loader does
//! (`.modinfo` for `MODULE_LICENSE` and friends, `__param` for `module_param`). Safe code over
//! the file's bytes: every offset is bounds-checked, nothing is mapped or executed here.

/// One section of a module file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    /// `sh_addr`: where it is at run time, relative to the load bias.
    pub addr: u64,
    /// `sh_offset`: where its bytes are in the file.
    pub offset: u64,
    /// `sh_size`.
    pub size: u64,
    /// `SHF_ALLOC`: loaded into memory.
    pub alloc: bool,
    /// `SHT_NOBITS` (no bytes in the file, as `.bss`).
    pub nobits: bool,
}

/// Why a file is not a module kmem can load (`ENOEXEC`, "Invalid module format").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAModule(pub &'static str);

const SHF_ALLOC: u64 = 0x2;
const SHT_NOBITS: u32 = 8;
const ET_DYN: u16 = 3;

fn read<const N: usize>(bytes: &[u8], at: u64) -> Result<[u8; N], NotAModule> {
    let at = usize::try_from(at).map_err(|_| NotAModule("offset out of range"))?;
    bytes
        .get(at..at.checked_add(N).ok_or(NotAModule("offset out of range"))?)
        .and_then(|s| s.try_into().ok())
        .ok_or(NotAModule("truncated file"))
}

fn u16_at(b: &[u8], at: u64) -> Result<u16, NotAModule> {
    read::<2>(b, at).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], at: u64) -> Result<u32, NotAModule> {
    read::<4>(b, at).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], at: u64) -> Result<u64, NotAModule> {
    read::<8>(b, at).map(u64::from_le_bytes)
}

/// The section named `name` in the little-endian ELF64 shared object `bytes`, if it has one.
///
/// # Errors
/// The bytes are not a little-endian ELF64 shared object with a readable section table.
pub fn find_section(bytes: &[u8], name: &str) -> Result<Option<Section>, NotAModule> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err(NotAModule("invalid ELF header magic"));
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err(NotAModule("not a little-endian 64-bit ELF file"));
    }
    if u16_at(bytes, 0x10)? != ET_DYN {
        return Err(NotAModule("not a shared object (build the module with gcc -shared -fPIC)"));
    }
    let shoff = u64_at(bytes, 0x28)?;
    let shentsize = u64::from(u16_at(bytes, 0x3a)?);
    let shnum = u64::from(u16_at(bytes, 0x3c)?);
    let shstrndx = u64::from(u16_at(bytes, 0x3e)?);
    if shentsize < 64 || shstrndx >= shnum {
        return Err(NotAModule("bad section header table"));
    }
    let header = |i: u64| -> Result<(u32, Section), NotAModule> {
        // The whole 64-byte header must have an address (`shentsize >= 64` is checked above),
        // so the field offsets below cannot overflow.
        let at = shoff
            .checked_add(i * shentsize)
            .filter(|at| at.checked_add(64).is_some())
            .ok_or(NotAModule("offset out of range"))?;
        let sh_type = u32_at(bytes, at + 4)?;
        Ok((
            u32_at(bytes, at)?,
            Section {
                addr: u64_at(bytes, at + 16)?,
                offset: u64_at(bytes, at + 24)?,
                size: u64_at(bytes, at + 32)?,
                alloc: u64_at(bytes, at + 8)? & SHF_ALLOC != 0,
                nobits: sh_type == SHT_NOBITS,
            },
        ))
    };
    let (_, strtab) = header(shstrndx)?;
    let names = section_bytes(bytes, &strtab)?;
    for i in 0..shnum {
        let (name_off, section) = header(i)?;
        let start = usize::try_from(name_off).map_err(|_| NotAModule("bad section name"))?;
        let rest = names.get(start..).ok_or(NotAModule("bad section name"))?;
        let end = rest.iter().position(|&b| b == 0).ok_or(NotAModule("bad section name"))?;
        if &rest[..end] == name.as_bytes() {
            return Ok(Some(section));
        }
    }
    Ok(None)
}

/// The file bytes of a section (empty for `SHT_NOBITS`).
///
/// # Errors
/// The section lies outside the file.
pub fn section_bytes<'a>(bytes: &'a [u8], s: &Section) -> Result<&'a [u8], NotAModule> {
    if s.nobits {
        return Ok(&[]);
    }
    let start = usize::try_from(s.offset).map_err(|_| NotAModule("section out of range"))?;
    let len = usize::try_from(s.size).map_err(|_| NotAModule("section out of range"))?;
    bytes
        .get(start..start.checked_add(len).ok_or(NotAModule("section out of range"))?)
        .ok_or(NotAModule("section outside the file"))
}

/// The `key=value` strings of a `.modinfo` section, in file order.
pub fn modinfo(section: &[u8]) -> Vec<(String, String)> {
    section
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (k, v) = text.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_is_not_a_shared_object() {
        assert_eq!(find_section(b"#!/bin/sh\n", ".modinfo"), Err(NotAModule("invalid ELF header magic")));
        assert_eq!(
            find_section(b"\x7fELF\x01\x01", ".modinfo"),
            Err(NotAModule("not a little-endian 64-bit ELF file"))
        );
        assert_eq!(find_section(b"\x7fELF\x02\x01\x01", ".modinfo"), Err(NotAModule("truncated file")));
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // A test binary is a PIE (ET_DYN) with sections; it has no `.modinfo`.
        assert_eq!(find_section(&exe, ".modinfo"), Ok(None));
        let text = find_section(&exe, ".text").unwrap().expect("a .text section");
        assert!(text.alloc && !text.nobits && text.size > 0);
    }

    #[test]
    fn modinfo_strings() {
        let info = modinfo(b"license=GPL\0author=Lion Long\0\0description= kernel module : x\0junk\0");
        assert_eq!(
            info,
            [("license", "GPL"), ("author", "Lion Long"), ("description", " kernel module : x")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }
}
