//! The boot archive: the ramdisk that carries the boot configuration and guest images.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! offset  size  field
//!      0     8  magic "OXENARC\0"
//!      8     4  version (1)
//!     12     4  entry count
//!     16     8  total length of the archive in bytes
//!     24     4  CRC-32 (IEEE) of the whole archive, computed with this field zeroed
//!     28     4  reserved, 0
//!     32  64*n  entry table: name [u8; 48] (UTF-8, NUL-padded), offset u64, size u64
//!      …        entry data, each entry 8-byte aligned
//! ```
//!
//! `xtask` writes archives with [`build`]; the hypervisor reads them with
//! [`Archive::parse`], which checks everything before it hands out a single byte.

use alloc::vec::Vec;
use core::fmt;

pub const MAGIC: [u8; 8] = *b"OXENARC\0";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 32;
pub const ENTRY_LEN: usize = 64;
pub const NAME_LEN: usize = 48;
/// An upper bound on entries, so a hostile count cannot make the table huge.
pub const MAX_ENTRIES: usize = 1024;
/// The name of the boot configuration entry.
pub const CONFIG_NAME: &str = "boot.cfg";

/// Why an archive was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveError {
    /// Shorter than the header.
    TooShort { len: usize },
    /// The first eight bytes are not the archive magic.
    BadMagic,
    /// A version this hypervisor does not read.
    UnsupportedVersion(u32),
    /// The header claims more bytes than were loaded.
    Truncated { expected: u64, actual: usize },
    /// The checksum does not match the contents.
    ChecksumMismatch { stored: u32, computed: u32 },
    /// The entry count is larger than the table that fits, or than [`MAX_ENTRIES`].
    BadEntryCount(u32),
    /// Entry `index` points outside the archive or into the header/table.
    EntryOutOfBounds { index: usize },
    /// Entry `index` has an empty, non-UTF-8 or NUL-containing name.
    BadName { index: usize },
    /// Two entries share a name.
    DuplicateName { index: usize },
    /// A name longer than [`NAME_LEN`] bytes was given to [`build`].
    NameTooLong,
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(f, "only {len} bytes, shorter than the header"),
            Self::BadMagic => write!(f, "bad magic (not an oxen boot archive)"),
            Self::UnsupportedVersion(v) => {
                write!(f, "unsupported version {v} (expected {VERSION})")
            }
            Self::Truncated { expected, actual } => {
                write!(
                    f,
                    "truncated: header says {expected} bytes, {actual} loaded"
                )
            }
            Self::ChecksumMismatch { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            Self::BadEntryCount(n) => write!(f, "bad entry count {n}"),
            Self::EntryOutOfBounds { index } => write!(f, "entry {index} lies outside the archive"),
            Self::BadName { index } => write!(f, "entry {index} has an invalid name"),
            Self::DuplicateName { index } => write!(f, "entry {index} repeats an earlier name"),
            Self::NameTooLong => write!(f, "entry name longer than {NAME_LEN} bytes"),
        }
    }
}

/// One file in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// A validated archive, borrowing the loaded bytes.
#[derive(Clone, Debug)]
pub struct Archive<'a> {
    bytes: &'a [u8],
    count: usize,
    crc: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// CRC-32 of the archive with its checksum field taken as zero.
fn checksum(bytes: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..24]);
    h.update(&[0; 4]);
    h.update(&bytes[28..]);
    h.finalize()
}

impl<'a> Archive<'a> {
    /// Validates `loaded` (which may carry padding after the archive) and returns the
    /// archive. Nothing in `loaded` is trusted: every bound is checked.
    pub fn parse(loaded: &'a [u8]) -> Result<Self, ArchiveError> {
        if loaded.len() < HEADER_LEN {
            return Err(ArchiveError::TooShort { len: loaded.len() });
        }
        if loaded[..8] != MAGIC {
            return Err(ArchiveError::BadMagic);
        }
        let version = u32_at(loaded, 8);
        if version != VERSION {
            return Err(ArchiveError::UnsupportedVersion(version));
        }
        let total = u64_at(loaded, 16);
        if total > loaded.len() as u64 || total < HEADER_LEN as u64 {
            return Err(ArchiveError::Truncated {
                expected: total,
                actual: loaded.len(),
            });
        }
        let bytes = &loaded[..total as usize];
        let stored = u32_at(bytes, 24);
        let computed = checksum(bytes);
        if stored != computed {
            return Err(ArchiveError::ChecksumMismatch { stored, computed });
        }
        let raw_count = u32_at(bytes, 12);
        let count = raw_count as usize;
        let table_end = HEADER_LEN + count.saturating_mul(ENTRY_LEN);
        if count > MAX_ENTRIES || table_end > bytes.len() {
            return Err(ArchiveError::BadEntryCount(raw_count));
        }
        let archive = Archive {
            bytes,
            count,
            crc: stored,
        };
        for index in 0..count {
            let entry = archive.raw_entry(index, table_end)?;
            if archive.entries().take(index).any(|e| e.name == entry.name) {
                return Err(ArchiveError::DuplicateName { index });
            }
        }
        Ok(archive)
    }

    fn raw_entry(&self, index: usize, table_end: usize) -> Result<Entry<'a>, ArchiveError> {
        let at = HEADER_LEN + index * ENTRY_LEN;
        let name_field = &self.bytes[at..at + NAME_LEN];
        let name_len = name_field.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        let padding_clean = name_field[name_len..].iter().all(|&b| b == 0);
        let name = core::str::from_utf8(&name_field[..name_len])
            .ok()
            .filter(|n| !n.is_empty() && padding_clean)
            .ok_or(ArchiveError::BadName { index })?;
        let offset = u64_at(self.bytes, at + NAME_LEN);
        let size = u64_at(self.bytes, at + NAME_LEN + 8);
        let end = offset
            .checked_add(size)
            .ok_or(ArchiveError::EntryOutOfBounds { index })?;
        if offset < table_end as u64 || end > self.bytes.len() as u64 {
            return Err(ArchiveError::EntryOutOfBounds { index });
        }
        Ok(Entry {
            name,
            data: &self.bytes[offset as usize..end as usize],
        })
    }

    /// The entries in archive order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'a>> + '_ {
        let table_end = HEADER_LEN + self.count * ENTRY_LEN;
        (0..self.count).map(move |i| self.raw_entry(i, table_end).expect("validated by parse"))
    }

    /// The entry called `name`, if any.
    pub fn get(&self, name: &str) -> Option<Entry<'a>> {
        self.entries().find(|e| e.name == name)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the archive proper (without any padding after it).
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// The archive's bytes (what a domain given the whole archive as its module gets).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// The `ramdisk` name that gives a domain the whole boot archive as its module: the
/// control domain's files (its `xl.cfg` files and guest images).
pub const WHOLE_ARCHIVE: &str = "@archive";

/// Writes an archive holding `files` (name, contents) in the given order.
pub fn build(files: &[(&str, &[u8])]) -> Result<Vec<u8>, ArchiveError> {
    let align = |n: usize| n.next_multiple_of(8);
    let table_end = HEADER_LEN + files.len() * ENTRY_LEN;
    let mut out = Vec::with_capacity(table_end);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(files.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 16]); // total length, checksum, reserved: filled below
    let mut offset = align(table_end);
    for (name, data) in files {
        if name.len() > NAME_LEN {
            return Err(ArchiveError::NameTooLong);
        }
        let mut field = [0u8; NAME_LEN];
        field[..name.len()].copy_from_slice(name.as_bytes());
        out.extend_from_slice(&field);
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        offset = align(offset + data.len());
    }
    for (_, data) in files {
        out.resize(align(out.len()), 0);
        out.extend_from_slice(data);
    }
    let total = out.len() as u64;
    out[16..24].copy_from_slice(&total.to_le_bytes());
    let crc = checksum(&out);
    out[24..28].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        build(&[
            (CONFIG_NAME, b"on_ready = \"idle\"\n".as_slice()),
            ("hello.elf", &[0x7f, b'E', b'L', b'F', 1, 2, 3]),
            ("empty", &[]),
        ])
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let a = Archive::parse(&bytes).unwrap();
        assert_eq!(a.len(), 3);
        let names: Vec<_> = a.entries().map(|e| e.name).collect();
        assert_eq!(names, ["boot.cfg", "hello.elf", "empty"]);
        assert_eq!(
            a.get("hello.elf").unwrap().data,
            &[0x7f, b'E', b'L', b'F', 1, 2, 3]
        );
        assert_eq!(a.get("empty").unwrap().data, &[] as &[u8]);
        assert!(a.get("missing").is_none());
        assert_eq!(a.byte_len(), bytes.len());
    }

    #[test]
    fn padding_after_the_archive_is_ignored() {
        let mut bytes = sample();
        let len = bytes.len();
        bytes.resize(len + 4096, 0xaa);
        assert_eq!(Archive::parse(&bytes).unwrap().byte_len(), len);
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let bytes = sample();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    Archive::parse(&bad).is_err(),
                    "flip of bit {bit} in byte {i} accepted"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_caught() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(
                Archive::parse(&bytes[..len]).is_err(),
                "truncation to {len} accepted"
            );
        }
    }

    #[test]
    fn clear_errors() {
        assert_eq!(
            Archive::parse(&[1, 2, 3]).unwrap_err(),
            ArchiveError::TooShort { len: 3 }
        );
        let mut bad = sample();
        bad[0] = b'X';
        assert_eq!(Archive::parse(&bad).unwrap_err(), ArchiveError::BadMagic);
        let mut bad = sample();
        bad[8] = 9;
        assert_eq!(
            Archive::parse(&bad).unwrap_err(),
            ArchiveError::UnsupportedVersion(9)
        );
        let mut bad = sample();
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        assert!(matches!(
            Archive::parse(&bad),
            Err(ArchiveError::ChecksumMismatch { .. })
        ));
        assert!(
            ArchiveError::ChecksumMismatch {
                stored: 1,
                computed: 2
            }
            .to_string()
            .contains("checksum mismatch")
        );
    }

    /// Re-seals a tampered archive so the checksum passes and the structure checks run.
    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        let crc = checksum(&bytes);
        bytes[24..28].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn structural_lies_are_caught_even_with_a_valid_checksum() {
        let good = sample();
        let entry1 = HEADER_LEN + ENTRY_LEN;
        let mut bad = good.clone();
        bad[entry1 + NAME_LEN..entry1 + NAME_LEN + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Archive::parse(&reseal(bad)).unwrap_err(),
            ArchiveError::EntryOutOfBounds { index: 1 }
        );

        let mut bad = good.clone();
        bad[entry1 + NAME_LEN + 8..entry1 + NAME_LEN + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            Archive::parse(&reseal(bad)).unwrap_err(),
            ArchiveError::EntryOutOfBounds { index: 1 }
        );

        let mut bad = good.clone();
        bad[entry1 + NAME_LEN..entry1 + NAME_LEN + 8].copy_from_slice(&0u64.to_le_bytes());
        assert_eq!(
            Archive::parse(&reseal(bad)).unwrap_err(),
            ArchiveError::EntryOutOfBounds { index: 1 }
        );

        let mut bad = good.clone();
        bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            Archive::parse(&reseal(bad)).unwrap_err(),
            ArchiveError::BadEntryCount(u32::MAX)
        );

        let mut bad = good.clone();
        bad[entry1] = 0;
        assert_eq!(
            Archive::parse(&reseal(bad)).unwrap_err(),
            ArchiveError::BadName { index: 1 }
        );

        let mut bad = good.clone();
        bad[entry1..entry1 + NAME_LEN].copy_from_slice(&good[HEADER_LEN..HEADER_LEN + NAME_LEN]);
        assert_eq!(
            Archive::parse(&reseal(bad)).unwrap_err(),
            ArchiveError::DuplicateName { index: 1 }
        );
    }

    #[test]
    fn long_names_are_refused() {
        let name = "x".repeat(NAME_LEN + 1);
        assert_eq!(
            build(&[(&name, b"")]).unwrap_err(),
            ArchiveError::NameTooLong
        );
        let name = "y".repeat(NAME_LEN);
        let bytes = build(&[(&name, b"z")]).unwrap();
        assert_eq!(
            Archive::parse(&bytes).unwrap().get(&name).unwrap().data,
            b"z"
        );
    }
}
