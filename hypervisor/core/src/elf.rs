//! A loader's view of an ELF executable (System V gABI, ELF32 and ELF64 little-endian,
//! x86): the entry point, the PT_LOAD segments, and the Xen PVH entry note
//! (`XEN_ELFNOTE_PHYS32_ENTRY`, `elfnote.h`).
//!
//! The image is untrusted: every offset, size and count is checked, and nothing here
//! can panic or read out of bounds whatever the bytes are.

use alloc::vec::Vec;

/// Most program headers accepted (real kernels have a handful).
pub const MAX_PHDRS: usize = 256;

/// One PT_LOAD segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Physical load address (`p_paddr`).
    pub paddr: u64,
    /// Virtual address (`p_vaddr`).
    pub vaddr: u64,
    /// The bytes from the file (`p_filesz` of them); the rest up to `mem_size` is zero.
    pub data: &'a [u8],
    /// Size in memory (`p_memsz`), at least `data.len()`.
    pub mem_size: u64,
    /// `PF_*` flags ([`PF_X`], [`PF_W`], [`PF_R`]).
    pub flags: u32,
}

/// A parsed executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfImage<'a> {
    /// `e_entry`.
    pub entry: u64,
    /// The 32-bit physical entry point from the Xen `PHYS32_ENTRY` note, if any.
    pub phys32_entry: Option<u32>,
    /// Whether the file is ELF64 (else ELF32).
    pub is_64: bool,
    /// The PT_LOAD segments in file order; their physical ranges do not overlap.
    pub segments: Vec<Segment<'a>>,
}

impl ElfImage<'_> {
    /// The physical range `[lowest paddr, highest paddr + mem_size)` the PT_LOAD
    /// segments occupy (segments with no memory size ignored); `None` if all are empty.
    pub fn phys_extent(&self) -> Option<(u64, u64)> {
        self.segments
            .iter()
            .filter(|s| s.mem_size != 0)
            // `parse` checked that these additions do not overflow.
            .map(|s| (s.paddr, s.paddr + s.mem_size))
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
    }
}

pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const ET_EXEC: u16 = 2;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;

/// Why an image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than the ELF header.
    Truncated,
    /// No `\x7fELF` magic.
    BadMagic,
    /// Neither ELF32 nor ELF64 (`EI_CLASS`).
    BadClass,
    /// Not little-endian (`EI_DATA`).
    NotLittleEndian,
    /// `EI_VERSION`/`e_version` is not 1.
    BadVersion,
    /// Not an executable (`e_type` is not `ET_EXEC`).
    NotExecutable,
    /// Not for x86 (`e_machine` is neither `EM_386` nor `EM_X86_64`).
    WrongMachine,
    /// The program header table is malformed or outside the file.
    BadProgramHeaders,
    /// More than [`MAX_PHDRS`] program headers.
    TooManySegments,
    /// No PT_LOAD segment.
    NoLoadSegments,
    /// A segment's file bytes lie outside the file (program header index).
    SegmentOutsideFile(usize),
    /// A segment's `p_memsz` is smaller than its `p_filesz`.
    MemSizeTooSmall(usize),
    /// A segment's address range wraps (or passes 4 GiB in ELF32).
    AddressOverflow(usize),
    /// Two PT_LOAD segments overlap in physical memory (their program header indices).
    Overlap(usize, usize),
    /// A note is malformed, or the Xen entry note has a bad descriptor.
    BadNote,
}

/// Little-endian reads that fail instead of panicking.
fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// A program header, widened.
struct Phdr {
    ty: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

fn phdr(b: &[u8], off: usize, is_64: bool) -> Option<Phdr> {
    if is_64 {
        Some(Phdr {
            ty: u32_at(b, off)?,
            flags: u32_at(b, off + 4)?,
            offset: u64_at(b, off + 8)?,
            vaddr: u64_at(b, off + 16)?,
            paddr: u64_at(b, off + 24)?,
            filesz: u64_at(b, off + 32)?,
            memsz: u64_at(b, off + 40)?,
            align: u64_at(b, off + 48)?,
        })
    } else {
        Some(Phdr {
            ty: u32_at(b, off)?,
            offset: u32_at(b, off + 4)?.into(),
            vaddr: u32_at(b, off + 8)?.into(),
            paddr: u32_at(b, off + 12)?.into(),
            filesz: u32_at(b, off + 16)?.into(),
            memsz: u32_at(b, off + 20)?.into(),
            flags: u32_at(b, off + 24)?,
            align: u32_at(b, off + 28)?.into(),
        })
    }
}

/// The file bytes `[offset, offset + size)`, if they are all in the file.
fn file_range(bytes: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let len = usize::try_from(size).ok()?;
    bytes.get(start..start.checked_add(len)?)
}

/// Parses an ELF32 or ELF64 little-endian x86 executable.
pub fn parse(bytes: &[u8]) -> Result<ElfImage<'_>, ElfError> {
    if bytes.len() < 16 {
        return Err(if bytes.starts_with(&b"\x7fELF"[..bytes.len().min(4)]) {
            ElfError::Truncated
        } else {
            ElfError::BadMagic
        });
    }
    if &bytes[..4] != b"\x7fELF" {
        return Err(ElfError::BadMagic);
    }
    let is_64 = match bytes[4] {
        1 => false,
        2 => true,
        _ => return Err(ElfError::BadClass),
    };
    if bytes[5] != 1 {
        return Err(ElfError::NotLittleEndian);
    }
    if bytes[6] != 1 {
        return Err(ElfError::BadVersion);
    }
    let ehsize = if is_64 { 64 } else { 52 };
    if bytes.len() < ehsize {
        return Err(ElfError::Truncated);
    }
    let t = ElfError::Truncated;
    let e_type = u16_at(bytes, 16).ok_or(t)?;
    let e_machine = u16_at(bytes, 18).ok_or(t)?;
    let e_version = u32_at(bytes, 20).ok_or(t)?;
    let (entry, phoff, phentsize, phnum) = if is_64 {
        (
            u64_at(bytes, 24).ok_or(t)?,
            u64_at(bytes, 32).ok_or(t)?,
            u16_at(bytes, 54).ok_or(t)?,
            u16_at(bytes, 56).ok_or(t)?,
        )
    } else {
        (
            u64::from(u32_at(bytes, 24).ok_or(t)?),
            u64::from(u32_at(bytes, 28).ok_or(t)?),
            u16_at(bytes, 42).ok_or(t)?,
            u16_at(bytes, 44).ok_or(t)?,
        )
    };
    if e_version != 1 {
        return Err(ElfError::BadVersion);
    }
    if e_type != ET_EXEC {
        return Err(ElfError::NotExecutable);
    }
    if e_machine != EM_386 && e_machine != EM_X86_64 {
        return Err(ElfError::WrongMachine);
    }
    let phnum = usize::from(phnum);
    if phnum > MAX_PHDRS {
        return Err(ElfError::TooManySegments);
    }
    if phnum == 0 {
        return Err(ElfError::NoLoadSegments);
    }
    let entsize = if is_64 { 56 } else { 32 };
    if usize::from(phentsize) != entsize {
        return Err(ElfError::BadProgramHeaders);
    }
    let table =
        file_range(bytes, phoff, (phnum * entsize) as u64).ok_or(ElfError::BadProgramHeaders)?;

    let mut segments = Vec::new();
    // Program header index of each segment, for error reports.
    let mut index = Vec::new();
    let mut phys32_entry = None;
    for i in 0..phnum {
        let ph = phdr(table, i * entsize, is_64).ok_or(ElfError::BadProgramHeaders)?;
        match ph.ty {
            PT_LOAD => {
                let data = file_range(bytes, ph.offset, ph.filesz)
                    .ok_or(ElfError::SegmentOutsideFile(i))?;
                if ph.memsz < ph.filesz {
                    return Err(ElfError::MemSizeTooSmall(i));
                }
                let limit = if is_64 { u64::MAX } else { 1 << 32 };
                for addr in [ph.paddr, ph.vaddr] {
                    match addr.checked_add(ph.memsz) {
                        Some(end) if end <= limit => {}
                        _ => return Err(ElfError::AddressOverflow(i)),
                    }
                }
                segments.push(Segment {
                    paddr: ph.paddr,
                    vaddr: ph.vaddr,
                    data,
                    mem_size: ph.memsz,
                    flags: ph.flags,
                });
                index.push(i);
            }
            PT_NOTE => {
                let notes = file_range(bytes, ph.offset, ph.filesz).ok_or(ElfError::BadNote)?;
                let align = if ph.align == 8 { 8 } else { 4 };
                if let Some(e) = find_phys32_entry(notes, align)? {
                    phys32_entry.get_or_insert(e);
                }
            }
            _ => {}
        }
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadSegments);
    }
    // Overlap check on sorted physical ranges (empty segments occupy nothing).
    let mut order: Vec<usize> = (0..segments.len())
        .filter(|&k| segments[k].mem_size != 0)
        .collect();
    order.sort_by_key(|&k| segments[k].paddr);
    for w in order.windows(2) {
        let (a, b) = (&segments[w[0]], &segments[w[1]]);
        // Cannot overflow: checked above.
        if a.paddr + a.mem_size > b.paddr {
            let (x, y) = (index[w[0]], index[w[1]]);
            return Err(ElfError::Overlap(x.min(y), x.max(y)));
        }
    }
    Ok(ElfImage {
        entry,
        phys32_entry,
        is_64,
        segments,
    })
}

fn align_up(v: usize, align: usize) -> Option<usize> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}

/// Walks the notes of one PT_NOTE segment; the value of the first Xen `PHYS32_ENTRY`.
fn find_phys32_entry(notes: &[u8], align: usize) -> Result<Option<u32>, ElfError> {
    let bad = ElfError::BadNote;
    let mut off = 0usize;
    let mut found = None;
    // Every note takes at least 12 bytes, so this ends.
    while off < notes.len() {
        let namesz = u32_at(notes, off).ok_or(bad)? as usize;
        let descsz = u32_at(notes, off + 4).ok_or(bad)? as usize;
        let ty = u32_at(notes, off + 8).ok_or(bad)?;
        let name_at = off + 12;
        let desc_at = align_up(name_at.checked_add(namesz).ok_or(bad)?, align).ok_or(bad)?;
        let end = desc_at.checked_add(descsz).ok_or(bad)?;
        let name = notes.get(name_at..name_at + namesz).ok_or(bad)?;
        let desc = notes.get(desc_at..end).ok_or(bad)?;
        let owner = oxen_abi::elfnote::OWNER;
        let is_xen = name.strip_suffix(b"\0").unwrap_or(name) == owner;
        if is_xen && ty == oxen_abi::elfnote::PHYS32_ENTRY && found.is_none() {
            found = Some(match desc.len() {
                4 => u32_at(desc, 0).ok_or(bad)?,
                8 => u32::try_from(u64_at(desc, 0).ok_or(bad)?).map_err(|_| bad)?,
                _ => return Err(bad),
            });
        }
        // The last note need not be padded to the alignment.
        off = align_up(end, align).ok_or(bad)?.min(notes.len()).max(end);
    }
    Ok(found)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A program header to write, with its file bytes.
    #[derive(Clone)]
    struct Ph {
        ty: u32,
        flags: u32,
        paddr: u64,
        vaddr: u64,
        data: Vec<u8>,
        memsz: u64,
        align: u64,
    }

    fn load(paddr: u64, data: &[u8], memsz: u64, flags: u32) -> Ph {
        Ph {
            ty: PT_LOAD,
            flags,
            paddr,
            vaddr: paddr.wrapping_add(0xffff_0000),
            data: data.to_vec(),
            memsz,
            align: 0x1000,
        }
    }

    fn note_seg(notes: &[u8]) -> Ph {
        Ph {
            ty: PT_NOTE,
            flags: PF_R,
            paddr: 0,
            vaddr: 0,
            data: notes.to_vec(),
            memsz: 0,
            align: 4,
        }
    }

    /// One note, padded to 4 bytes.
    fn note(name: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(name);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    /// Writes an executable: header, program headers, then each segment's bytes.
    fn write_elf(is_64: bool, entry: u64, phs: &[Ph]) -> Vec<u8> {
        let (ehsize, phentsize) = if is_64 { (64, 56) } else { (52, 32) };
        let mut off = ehsize + phentsize * phs.len();
        let mut offsets = Vec::new();
        for p in phs {
            offsets.push(off);
            off += p.data.len();
        }
        let mut b = Vec::new();
        b.extend_from_slice(b"\x7fELF");
        b.push(if is_64 { 2 } else { 1 });
        b.extend_from_slice(&[1, 1, 0]);
        b.resize(16, 0);
        b.extend_from_slice(&ET_EXEC.to_le_bytes());
        b.extend_from_slice(&(if is_64 { EM_X86_64 } else { EM_386 }).to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        let word = |b: &mut Vec<u8>, v: u64| {
            if is_64 {
                b.extend_from_slice(&v.to_le_bytes())
            } else {
                b.extend_from_slice(&(v as u32).to_le_bytes())
            }
        };
        word(&mut b, entry);
        word(&mut b, ehsize as u64); // e_phoff
        word(&mut b, 0); // e_shoff
        b.extend_from_slice(&0u32.to_le_bytes()); // e_flags
        b.extend_from_slice(&(ehsize as u16).to_le_bytes());
        b.extend_from_slice(&(phentsize as u16).to_le_bytes());
        b.extend_from_slice(&(phs.len() as u16).to_le_bytes());
        b.extend_from_slice(&[0; 6]); // shentsize, shnum, shstrndx
        assert_eq!(b.len(), ehsize);
        for (p, &o) in phs.iter().zip(&offsets) {
            b.extend_from_slice(&p.ty.to_le_bytes());
            if is_64 {
                b.extend_from_slice(&p.flags.to_le_bytes());
            }
            word(&mut b, o as u64);
            word(&mut b, p.vaddr);
            word(&mut b, p.paddr);
            word(&mut b, p.data.len() as u64);
            word(&mut b, p.memsz);
            if !is_64 {
                b.extend_from_slice(&p.flags.to_le_bytes());
            }
            word(&mut b, p.align);
        }
        for p in phs {
            b.extend_from_slice(&p.data);
        }
        b
    }

    /// A PVH kernel for tests: PT_LOADs at 1 MiB (0x2000 bytes, 100 of them 0x90) and
    /// 2 MiB (0x1000 bytes), the PHYS32_ENTRY note holding `desc`.
    pub(crate) fn pvh_kernel(is_64: bool, desc: &[u8]) -> Vec<u8> {
        let mut notes = note(b"GNU\0", 3, &[1, 2, 3, 4, 5]);
        notes.extend(note(b"Xen\0", 6, b"xen-3.0\0"));
        notes.extend(note(b"Xen\0", 18, desc));
        write_elf(
            is_64,
            0xffff_ffff_8100_0000,
            &[
                load(0x10_0000, &[0x90; 100], 0x2000, PF_R | PF_X),
                note_seg(&notes),
                load(0x20_0000, &[1, 2, 3], 0x1000, PF_R | PF_W),
            ],
        )
    }

    #[test]
    fn elf64_with_note() {
        let b = pvh_kernel(true, &0x10_0040u32.to_le_bytes());
        let img = parse(&b).unwrap();
        assert!(img.is_64);
        assert_eq!(img.entry, 0xffff_ffff_8100_0000);
        assert_eq!(img.phys32_entry, Some(0x10_0040));
        assert_eq!(img.segments.len(), 2);
        let s = img.segments[0];
        assert_eq!(
            (s.paddr, s.vaddr, s.mem_size, s.flags),
            (0x10_0000, 0xffff_0000 + 0x10_0000, 0x2000, PF_R | PF_X)
        );
        assert_eq!(s.data, &[0x90; 100][..]);
        assert_eq!(img.segments[1].data, &[1, 2, 3]);
        assert_eq!(img.segments[1].flags, PF_R | PF_W);
        assert_eq!(img.phys_extent(), Some((0x10_0000, 0x20_1000)));
    }

    #[test]
    fn elf32_with_8_byte_note() {
        let b = pvh_kernel(false, &0x10_0080u64.to_le_bytes());
        let img = parse(&b).unwrap();
        assert!(!img.is_64);
        assert_eq!(img.entry, 0x8100_0000);
        assert_eq!(img.phys32_entry, Some(0x10_0080));
        assert_eq!(img.segments[0].paddr, 0x10_0000);
        assert_eq!(img.segments[1].mem_size, 0x1000);
    }

    #[test]
    fn note_descriptor_checks() {
        // A 64-bit value above 4 GiB, or an odd size, is refused.
        let b = pvh_kernel(true, &0x1_0000_0000u64.to_le_bytes());
        assert_eq!(parse(&b), Err(ElfError::BadNote));
        let b = pvh_kernel(true, &[1, 2]);
        assert_eq!(parse(&b), Err(ElfError::BadNote));
        // Same type from another owner is ignored.
        let notes = note(b"Linux\0", 18, &[9, 9, 9]);
        let b = write_elf(true, 1, &[load(0, &[1], 1, PF_R), note_seg(&notes)]);
        assert_eq!(parse(&b).unwrap().phys32_entry, None);
        // A note running past its segment.
        let mut notes = note(b"Xen\0", 18, &7u32.to_le_bytes());
        notes[4] = 40;
        let b = write_elf(true, 1, &[load(0, &[1], 1, PF_R), note_seg(&notes)]);
        assert_eq!(parse(&b), Err(ElfError::BadNote));
    }

    #[test]
    fn without_note() {
        for is_64 in [false, true] {
            let b = write_elf(is_64, 0x10_0000, &[load(0x10_0000, &[0xcc; 16], 16, PF_R)]);
            let img = parse(&b).unwrap();
            assert_eq!(img.phys32_entry, None);
            assert_eq!(img.entry, 0x10_0000);
            assert_eq!(img.segments.len(), 1);
            assert_eq!(img.phys_extent(), Some((0x10_0000, 0x10_0010)));
        }
        let b = write_elf(true, 0, &[load(0x5000, &[], 0, PF_R)]);
        assert_eq!(parse(&b).unwrap().phys_extent(), None);
    }

    #[test]
    fn header_refusals() {
        let good = write_elf(true, 0, &[load(0, &[1], 1, PF_R)]);
        let with = |off: usize, v: &[u8]| {
            let mut b = good.clone();
            b[off..off + v.len()].copy_from_slice(v);
            parse(&b).map(|_| ())
        };
        assert_eq!(with(0, b"\x7fELG"), Err(ElfError::BadMagic));
        assert_eq!(with(4, &[3]), Err(ElfError::BadClass));
        assert_eq!(with(5, &[2]), Err(ElfError::NotLittleEndian));
        assert_eq!(with(6, &[0]), Err(ElfError::BadVersion));
        assert_eq!(with(16, &3u16.to_le_bytes()), Err(ElfError::NotExecutable));
        assert_eq!(with(18, &40u16.to_le_bytes()), Err(ElfError::WrongMachine));
        assert_eq!(
            with(54, &55u16.to_le_bytes()),
            Err(ElfError::BadProgramHeaders)
        );
        assert_eq!(with(56, &0u16.to_le_bytes()), Err(ElfError::NoLoadSegments));
        assert_eq!(
            with(56, &2u16.to_le_bytes()),
            Err(ElfError::BadProgramHeaders)
        );
        assert_eq!(
            with(56, &(MAX_PHDRS as u16 + 1).to_le_bytes()),
            Err(ElfError::TooManySegments)
        );
        assert_eq!(
            with(32, &u64::MAX.to_le_bytes()),
            Err(ElfError::BadProgramHeaders)
        );
        assert_eq!(parse(&good[..63]), Err(ElfError::Truncated));
        assert_eq!(parse(&good[..3]), Err(ElfError::Truncated));
        assert_eq!(parse(b"MZ"), Err(ElfError::BadMagic));
        assert_eq!(parse(&[]), Err(ElfError::Truncated));
        // Only a note, no PT_LOAD.
        let b = write_elf(false, 0, &[note_seg(&note(b"Xen\0", 18, &[0; 4]))]);
        assert_eq!(parse(&b), Err(ElfError::NoLoadSegments));
    }

    #[test]
    fn segment_refusals() {
        // memsz < filesz
        let b = write_elf(true, 0, &[load(0, &[1, 2, 3], 2, PF_R)]);
        assert_eq!(parse(&b), Err(ElfError::MemSizeTooSmall(0)));
        // Wrapping address.
        let b = write_elf(true, 0, &[load(u64::MAX - 4, &[1], 0x10, PF_R)]);
        assert_eq!(parse(&b), Err(ElfError::AddressOverflow(0)));
        // ELF32 past 4 GiB.
        let mut p = load(0xffff_f000, &[1], 0x2000, PF_R);
        p.vaddr = 0;
        let b = write_elf(false, 0, &[p]);
        assert_eq!(parse(&b), Err(ElfError::AddressOverflow(0)));
        // Overlapping physical ranges (in reverse file order), with a note between.
        let b = write_elf(
            true,
            0,
            &[
                load(0x20_0800, &[1], 0x100, PF_R),
                note_seg(&note(b"Xen\0", 1, &[])),
                load(0x20_0000, &[1], 0x801, PF_R),
            ],
        );
        assert_eq!(parse(&b), Err(ElfError::Overlap(0, 2)));
        // Touching is fine.
        let b = write_elf(
            true,
            0,
            &[
                load(0x20_0800, &[1], 0x100, PF_R),
                load(0x20_0000, &[1], 0x800, PF_R),
            ],
        );
        assert_eq!(parse(&b).unwrap().segments.len(), 2);
        // File bytes past the end.
        let mut b = write_elf(true, 0, &[load(0, &[1; 8], 8, PF_R)]);
        b.truncate(b.len() - 1);
        assert_eq!(parse(&b), Err(ElfError::SegmentOutsideFile(0)));
        // Huge p_offset.
        let mut b = write_elf(true, 0, &[load(0, &[1; 8], 8, PF_R)]);
        b[64 + 8..64 + 16].copy_from_slice(&(u64::MAX - 2).to_le_bytes());
        assert_eq!(parse(&b), Err(ElfError::SegmentOutsideFile(0)));
    }

    /// Every truncation and many byte corruptions: `parse` returns, never panics, and
    /// whatever it accepts stays inside the input.
    #[test]
    fn hostile_inputs_never_panic() {
        let images = [
            pvh_kernel(true, &0x10_0040u32.to_le_bytes()),
            pvh_kernel(false, &0x10_0040u64.to_le_bytes()),
        ];
        let check = |b: &[u8]| {
            if let Ok(img) = parse(b) {
                for s in &img.segments {
                    assert!(s.data.len() as u64 <= s.mem_size);
                    let start = s.data.as_ptr() as usize - b.as_ptr() as usize;
                    assert!(start + s.data.len() <= b.len());
                }
            }
        };
        let mut accepted_truncations = 0;
        for img in &images {
            for len in 0..img.len() {
                let r = parse(&img[..len]);
                check(&img[..len]);
                assert_ne!(r.as_ref().map(|i| i.segments.len()), Ok(2), "len {len}");
                if r.is_ok() {
                    accepted_truncations += 1;
                }
            }
            assert!(parse(img).is_ok());
            let mut seed = 12345u64;
            for pos in 0..img.len() {
                for flip in [0x01u8, 0x80, 0xff, 0x7f, 0x10] {
                    let mut b = img.clone();
                    b[pos] ^= flip;
                    check(&b);
                }
                // And a random multi-byte corruption per position.
                let mut b = img.clone();
                for _ in 0..4 {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let at = (seed >> 33) as usize % b.len();
                    b[at] = (seed >> 20) as u8;
                }
                check(&b);
            }
        }
        // Truncating the last segment's bytes is always refused.
        assert_eq!(accepted_truncations, 0);
    }
}

/// `parse` on executables made by the real toolchain: a tiny PVH-style kernel with a Xen
/// `PHYS32_ENTRY` note, linked as ELF64 and ELF32 by `cc`/`ld`. Needs `gcc` with
/// binutils (Debian packages `gcc` and `binutils`; nothing links against a C library, so
/// `gcc-multilib` is not needed).
#[cfg(test)]
mod toolchain_tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    const KERNEL: &str = r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4, 4, 18
    .asciz "Xen"
    .long start32

    .text
    .code32
    .globl start32
start32:
    hlt
    .globl _start
_start:
    hlt

    .data
    .quad 0x1122334455667788

    .bss
    .space 8192
"#;

    fn build(arch: &str) -> Vec<u8> {
        let dir = std::env::temp_dir().join(format!("oxen-core-elf-{}-{arch}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("k.S");
        let out: PathBuf = dir.join("k.elf");
        std::fs::write(&src, KERNEL).unwrap();
        let r = Command::new("cc")
            .args([arch, "-nostdlib", "-static", "-no-pie"])
            .args(["-Wl,-Ttext=0x100000", "-Wl,--build-id=none", "-o"])
            .arg(&out)
            .arg(&src)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `cc` ({e}): install the Debian packages `gcc` and `binutils`")
            });
        assert!(
            r.status.success(),
            "cc {arch} failed (install `gcc` and `binutils`):\n{}",
            String::from_utf8_lossy(&r.stderr)
        );
        let bytes = std::fs::read(&out).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        bytes
    }

    fn check(bytes: &[u8], is_64: bool) {
        let img = parse(bytes).unwrap();
        assert_eq!(img.is_64, is_64);
        assert_eq!(img.entry, 0x10_0001, "_start");
        assert_eq!(img.phys32_entry, Some(0x10_0000), "start32 from the note");
        let text = img
            .segments
            .iter()
            .find(|s| s.paddr == 0x10_0000)
            .expect("text segment");
        assert_eq!(text.data, &[0xf4, 0xf4], "two hlt");
        assert_eq!(text.flags, PF_R | PF_X);
        let data = img
            .segments
            .iter()
            .find(|s| s.flags == PF_R | PF_W)
            .expect("data segment");
        assert_eq!(data.data, &0x1122_3344_5566_7788u64.to_le_bytes());
        assert!(data.mem_size >= 8 + 8192, "bss is in mem_size only");
    }

    #[test]
    fn gcc_elf64_pvh_kernel() {
        check(&build("-m64"), true);
    }

    #[test]
    fn gcc_elf32_pvh_kernel() {
        check(&build("-m32"), false);
    }
}
