//! Walking a guest's own page tables (Intel SDM Vol. 3A, "Paging"): guest-virtual to
//! guest-physical translation with the access checks the CPU would make, and copies
//! to and from guest-virtual memory page by page.
//!
//! Modes: paging off, 32-bit (with 4 MiB pages under CR4.PSE), PAE, 4-level and 5-level
//! (CR4.LA57) long mode with 2 MiB and 1 GiB pages. Checked: present, write (for user
//! accesses, or supervisor ones with CR0.WP), user/supervisor, execute-disable (with
//! EFER.NXE), SMEP, reserved bits, canonical addresses. Not modelled: SMAP (it depends on
//! RFLAGS.AC), protection keys, and setting accessed/dirty bits. Physical addresses are
//! taken to be at most 52 bits wide.

/// Guest-physical memory, as the hypervisor sees it.
pub trait GuestMemory {
    /// Fills `buf` from guest-physical `gpa`; false if any byte is not readable memory.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool;
    /// Writes `data` at guest-physical `gpa`; false if any byte is not writable memory.
    fn write(&mut self, gpa: u64, data: &[u8]) -> bool;

    /// The little-endian `u64` at `gpa`.
    fn read_u64(&self, gpa: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read(gpa, &mut b).then(|| u64::from_le_bytes(b))
    }

    /// The little-endian `u32` at `gpa`.
    fn read_u32(&self, gpa: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(gpa, &mut b).then(|| u32::from_le_bytes(b))
    }
}

/// The guest's paging controls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Paging {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

/// CR0.WP: supervisor writes honour read-only pages.
pub const CR0_WP: u64 = 1 << 16;
/// CR0.PG: paging on.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PSE: 4 MiB pages in 32-bit paging.
pub const CR4_PSE: u64 = 1 << 4;
/// CR4.PAE: 64-bit entries (PAE or long mode).
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.LA57: 5-level paging in long mode.
pub const CR4_LA57: u64 = 1 << 12;
/// CR4.SMEP: supervisor may not execute user pages.
pub const CR4_SMEP: u64 = 1 << 20;
/// EFER.LMA: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE: execute-disable bit enabled.
pub const EFER_NXE: u64 = 1 << 11;

/// The kind of access being translated for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Execute,
}

/// Page-fault error code bits (the #PF error code the guest would see).
pub mod pf {
    /// The fault was a protection violation (clear: the page was not present).
    pub const PRESENT: u32 = 1 << 0;
    pub const WRITE: u32 = 1 << 1;
    pub const USER: u32 = 1 << 2;
    pub const RESERVED: u32 = 1 << 3;
    pub const INSTRUCTION: u32 = 1 << 4;
}

/// Why a translation or copy failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// A paging-structure entry was not present: the guest takes #PF with this code.
    NotPresent { error_code: u32 },
    /// Write, user or execute rights were missing: #PF with this code.
    Protection { error_code: u32 },
    /// A reserved bit was set in an entry: #PF with this code.
    ReservedBit { error_code: u32 },
    /// The address is not canonical (long mode): the guest takes #GP (or #SS).
    NonCanonical,
    /// A paging-structure entry at this guest-physical address could not be read.
    TableUnreadable { gpa: u64 },
    /// A copy could not access the translated guest-physical address.
    Memory { gpa: u64 },
}

impl WalkError {
    /// The #PF error code, for the faults that are page faults.
    pub fn page_fault_code(&self) -> Option<u32> {
        match *self {
            WalkError::NotPresent { error_code }
            | WalkError::Protection { error_code }
            | WalkError::ReservedBit { error_code } => Some(error_code),
            _ => None,
        }
    }
}

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const PS: u64 = 1 << 7;
const XD: u64 = 1 << 63;
/// Bits 51:12 of a 64-bit entry.
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Rights accumulated over the levels of a walk.
struct Rights {
    write: bool,
    user: bool,
    exec: bool,
}

/// One access to check, and how to describe it in an error code.
struct Req {
    access: Access,
    user: bool,
    code: u32,
}

impl Req {
    fn new(p: &Paging, access: Access, user: bool) -> Req {
        let mut code = 0;
        if access == Access::Write {
            code |= pf::WRITE;
        }
        if user {
            code |= pf::USER;
        }
        let nx_on = p.cr4 & CR4_PAE != 0 && p.efer & EFER_NXE != 0;
        if access == Access::Execute && (nx_on || p.cr4 & CR4_SMEP != 0) {
            code |= pf::INSTRUCTION;
        }
        Req { access, user, code }
    }
    fn not_present(&self) -> WalkError {
        WalkError::NotPresent {
            error_code: self.code,
        }
    }
    fn reserved(&self) -> WalkError {
        WalkError::ReservedBit {
            error_code: self.code | pf::PRESENT | pf::RESERVED,
        }
    }
    /// Checks the accumulated rights of the final translation.
    fn check(&self, p: &Paging, r: &Rights) -> Result<(), WalkError> {
        let ok = match self.access {
            Access::Read => !self.user || r.user,
            Access::Write => {
                if self.user {
                    r.user && r.write
                } else {
                    r.write || p.cr0 & CR0_WP == 0
                }
            }
            Access::Execute => {
                r.exec
                    && if self.user {
                        r.user
                    } else {
                        !(r.user && p.cr4 & CR4_SMEP != 0)
                    }
            }
        };
        if ok {
            Ok(())
        } else {
            Err(WalkError::Protection {
                error_code: self.code | pf::PRESENT,
            })
        }
    }
}

/// Translates guest-virtual `gva` to guest-physical for `access` at user (CPL 3) or
/// supervisor privilege, as the guest's MMU would.
pub fn translate(
    mem: &impl GuestMemory,
    p: &Paging,
    gva: u64,
    access: Access,
    user: bool,
) -> Result<u64, WalkError> {
    let long = p.efer & EFER_LMA != 0;
    if p.cr0 & CR0_PG == 0 {
        return Ok(if long { gva } else { gva & 0xffff_ffff });
    }
    let req = Req::new(p, access, user);
    if long {
        walk_long(mem, p, gva, &req)
    } else if p.cr4 & CR4_PAE != 0 {
        walk_pae(mem, p, gva & 0xffff_ffff, &req)
    } else {
        walk_32(mem, p, gva & 0xffff_ffff, &req)
    }
}

fn read64(mem: &impl GuestMemory, gpa: u64) -> Result<u64, WalkError> {
    mem.read_u64(gpa).ok_or(WalkError::TableUnreadable { gpa })
}

/// Reserved bits of a 64-bit entry besides the level-specific ones: 51:MAXPHYADDR is
/// empty at 52 bits, so only XD without EFER.NXE.
fn xd_reserved(p: &Paging, e: u64) -> bool {
    e & XD != 0 && p.efer & EFER_NXE == 0
}

/// 64-bit entries from `table` down, `levels` deep (long mode: 4 or 5; PAE: the PD and
/// PT below a PDPTE, 2). Rights start from `rights`.
fn walk_entries(
    mem: &impl GuestMemory,
    p: &Paging,
    gva: u64,
    req: &Req,
    mut table: u64,
    levels: u32,
    mut rights: Rights,
) -> Result<u64, WalkError> {
    for level in (1..=levels).rev() {
        let shift = 12 + 9 * (level - 1);
        let idx = (gva >> shift) & 0x1ff;
        let e = read64(mem, table + idx * 8)?;
        if e & P == 0 {
            return Err(req.not_present());
        }
        if xd_reserved(p, e) {
            return Err(req.reserved());
        }
        rights.write &= e & RW != 0;
        rights.user &= e & US != 0;
        rights.exec &= !(p.efer & EFER_NXE != 0 && e & XD != 0);
        let large = e & PS != 0;
        if large && level >= 4 {
            // PS is reserved in PML4Es and PML5Es.
            return Err(req.reserved());
        }
        if large && level == 3 && p.efer & EFER_LMA == 0 {
            return Err(req.reserved());
        }
        if level == 1 || large {
            let size = 1u64 << shift;
            // In a large leaf, bit 12 is PAT; bits shift-1:13 are reserved.
            if level > 1 && e & ((size - 1) & !0x1fff) != 0 {
                return Err(req.reserved());
            }
            req.check(p, &rights)?;
            let base = e & ADDR & !(size - 1);
            return Ok(base | (gva & (size - 1)));
        }
        table = e & ADDR;
    }
    Err(req.not_present())
}

fn full_rights() -> Rights {
    Rights {
        write: true,
        user: true,
        exec: true,
    }
}

fn walk_long(mem: &impl GuestMemory, p: &Paging, gva: u64, req: &Req) -> Result<u64, WalkError> {
    let levels = if p.cr4 & CR4_LA57 != 0 { 5 } else { 4 };
    let bits = 12 + 9 * levels;
    // Canonical: bits 63:bits-1 all equal.
    let top = (gva as i64) >> (bits - 1);
    if top != 0 && top != -1 {
        return Err(WalkError::NonCanonical);
    }
    walk_entries(mem, p, gva, req, p.cr3 & ADDR, levels, full_rights())
}

fn walk_pae(mem: &impl GuestMemory, p: &Paging, gva: u64, req: &Req) -> Result<u64, WalkError> {
    let at = (p.cr3 & 0xffff_ffe0) + ((gva >> 30) & 3) * 8;
    let pdpte = read64(mem, at)?;
    if pdpte & P == 0 {
        return Err(req.not_present());
    }
    // Bits 2:1, 8:5 and 63 (and 51:MAXPHYADDR) of a PDPTE are reserved.
    if pdpte & (0b110 | 0x1e0 | XD) != 0 {
        return Err(req.reserved());
    }
    walk_entries(mem, p, gva, req, pdpte & ADDR, 2, full_rights())
}

fn walk_32(mem: &impl GuestMemory, p: &Paging, gva: u64, req: &Req) -> Result<u64, WalkError> {
    let read32 = |gpa: u64| {
        mem.read_u32(gpa)
            .map(u64::from)
            .ok_or(WalkError::TableUnreadable { gpa })
    };
    let pde = read32((p.cr3 & 0xffff_f000) + ((gva >> 22) & 0x3ff) * 4)?;
    if pde & P == 0 {
        return Err(req.not_present());
    }
    let mut rights = Rights {
        write: pde & RW != 0,
        user: pde & US != 0,
        exec: true,
    };
    if pde & PS != 0 && p.cr4 & CR4_PSE != 0 {
        // 4 MiB page: bits 31:22 are address 31:22, bits 20:13 address 39:32 (PSE-36);
        // bit 21 is reserved.
        if pde & (1 << 21) != 0 {
            return Err(req.reserved());
        }
        req.check(p, &rights)?;
        let base = (pde & 0xffc0_0000) | (((pde >> 13) & 0xff) << 32);
        return Ok(base | (gva & 0x3f_ffff));
    }
    let pte = read32((pde & 0xffff_f000) + ((gva >> 12) & 0x3ff) * 4)?;
    if pte & P == 0 {
        return Err(req.not_present());
    }
    rights.write &= pte & RW != 0;
    rights.user &= pte & US != 0;
    req.check(p, &rights)?;
    Ok((pte & 0xffff_f000) | (gva & 0xfff))
}

/// The next guest-virtual address after `gva + n` in the current mode (32-bit modes
/// wrap at 4 GiB).
fn advance(p: &Paging, gva: u64, n: u64) -> u64 {
    let next = gva.wrapping_add(n);
    if p.efer & EFER_LMA == 0 {
        next & 0xffff_ffff
    } else {
        next
    }
}

/// Copies `buf.len()` bytes from guest-virtual `gva` (a supervisor read, as for
/// hypercall arguments), translating each page separately.
pub fn copy_from_guest(
    mem: &impl GuestMemory,
    p: &Paging,
    gva: u64,
    buf: &mut [u8],
) -> Result<(), WalkError> {
    let mut va = gva;
    let mut done = 0;
    while done < buf.len() {
        let gpa = translate(mem, p, va, Access::Read, false)?;
        let n = chunk(va, buf.len() - done);
        if !mem.read(gpa, &mut buf[done..done + n]) {
            return Err(WalkError::Memory { gpa });
        }
        done += n;
        va = advance(p, va, n as u64);
    }
    Ok(())
}

/// Copies `data` to guest-virtual `gva` (a supervisor write), translating each page
/// separately. Every page is translated before anything is written, so a fault leaves
/// guest memory untouched (unless the memory itself refuses a write).
pub fn copy_to_guest(
    mem: &mut impl GuestMemory,
    p: &Paging,
    gva: u64,
    data: &[u8],
) -> Result<(), WalkError> {
    // First pass: translations only.
    let mut va = gva;
    let mut done = 0;
    while done < data.len() {
        translate(mem, p, va, Access::Write, false)?;
        let n = chunk(va, data.len() - done);
        done += n;
        va = advance(p, va, n as u64);
    }
    let mut va = gva;
    let mut done = 0;
    while done < data.len() {
        let gpa = translate(mem, p, va, Access::Write, false)?;
        let n = chunk(va, data.len() - done);
        if !mem.write(gpa, &data[done..done + n]) {
            return Err(WalkError::Memory { gpa });
        }
        done += n;
        va = advance(p, va, n as u64);
    }
    Ok(())
}

/// Bytes from `va` to the end of its 4 KiB page, at most `left`. (Large pages are
/// translated per 4 KiB too: simpler, and the same result.)
fn chunk(va: u64, left: usize) -> usize {
    let in_page = 0x1000 - (va & 0xfff) as usize;
    in_page.min(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Sparse guest memory in 4 KiB pages; pages not present are unreadable.
    #[derive(Default)]
    struct Mem {
        pages: HashMap<u64, Box<[u8; 4096]>>,
    }

    impl Mem {
        fn add(&mut self, gpa: u64) {
            self.pages
                .entry(gpa & !0xfff)
                .or_insert_with(|| Box::new([0; 4096]));
        }
        fn put64(&mut self, gpa: u64, v: u64) {
            self.add(gpa);
            assert!(self.write(gpa, &v.to_le_bytes()));
        }
        fn put32(&mut self, gpa: u64, v: u32) {
            self.add(gpa);
            assert!(self.write(gpa, &v.to_le_bytes()));
        }
    }

    impl GuestMemory for Mem {
        fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
            for (i, b) in buf.iter_mut().enumerate() {
                let a = gpa + i as u64;
                match self.pages.get(&(a & !0xfff)) {
                    Some(pg) => *b = pg[(a & 0xfff) as usize],
                    None => return false,
                }
            }
            true
        }
        fn write(&mut self, gpa: u64, data: &[u8]) -> bool {
            if (0..data.len()).any(|i| !self.pages.contains_key(&((gpa + i as u64) & !0xfff))) {
                return false;
            }
            for (i, b) in data.iter().enumerate() {
                let a = gpa + i as u64;
                self.pages.get_mut(&(a & !0xfff)).unwrap()[(a & 0xfff) as usize] = *b;
            }
            true
        }
    }

    const LONG: Paging = Paging {
        cr0: CR0_PG | CR0_WP | 1,
        cr3: 0x1000,
        cr4: CR4_PAE,
        efer: EFER_LMA | EFER_NXE | (1 << 8),
    };

    /// Long-mode tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD), 0x4000 (PT):
    /// - 0x40_0000 + n*4K → 0x10_0000 + n*4K (4K pages, PT), n < 4, various rights
    /// - 0x20_0000 (PD[1]) → 2 MiB page at 0x80_0000
    /// - 0x4000_0000 (PDPT[1]) → 1 GiB page at 0x1_0000_0000
    fn long_tables() -> Mem {
        let mut m = Mem::default();
        let user_rw = P | RW | US;
        m.put64(0x1000, 0x2000 | user_rw);
        m.put64(0x2000, 0x3000 | user_rw);
        m.put64(0x2008, 0x1_0000_0000 | user_rw | PS);
        m.put64(0x3000 + 8, 0x80_0000 | user_rw | PS);
        m.put64(0x3000 + 2 * 8, 0x4000 | user_rw);
        m.put64(0x4000, 0x10_0000 | user_rw); // user RW
        m.put64(0x4008, 0x10_1000 | P | US); // user RO
        m.put64(0x4010, 0x10_2000 | P | RW); // supervisor RW
        m.put64(0x4018, 0x10_3000 | P | RW | US | XD); // user RW NX
        m.add(0x4020);
        m
    }

    #[test]
    fn paging_off() {
        let m = Mem::default();
        let p = Paging::default();
        assert_eq!(
            translate(&m, &p, 0x1_2345_6789, Access::Write, true),
            Ok(0x2345_6789)
        );
        let p = Paging {
            efer: EFER_LMA,
            ..p
        };
        assert_eq!(
            translate(&m, &p, 0x1_2345_6789, Access::Read, false),
            Ok(0x1_2345_6789)
        );
    }

    #[test]
    fn long_mode_page_sizes() {
        let m = long_tables();
        let t = |va| translate(&m, &LONG, va, Access::Read, false);
        assert_eq!(t(0x40_0123), Ok(0x10_0123));
        assert_eq!(t(0x40_3fff), Ok(0x10_3fff));
        assert_eq!(t(0x2f_fff8), Ok(0x8f_fff8));
        assert_eq!(t(0x4abc_def0), Ok(0x1_0abc_def0));
        assert_eq!(t(0x40_4000), Err(WalkError::NotPresent { error_code: 0 }));
        assert_eq!(t(0x0), Err(WalkError::NotPresent { error_code: 0 }));
        assert_eq!(
            t(0x80_0000_0000),
            Err(WalkError::NotPresent { error_code: 0 })
        );
        // CR3's low bits (PCID) are ignored.
        let p = Paging {
            cr3: 0x1000 | 0x5,
            ..LONG
        };
        assert_eq!(
            translate(&m, &p, 0x40_0123, Access::Read, false),
            Ok(0x10_0123)
        );
    }

    #[test]
    fn long_mode_rights() {
        let m = long_tables();
        let t = |va, a, u| translate(&m, &LONG, va, a, u);
        use Access::*;
        // user RW page
        assert!(t(0x40_0000, Write, true).is_ok());
        // user RO page: user write faults; supervisor write faults with WP...
        assert_eq!(
            t(0x40_1000, Write, true),
            Err(WalkError::Protection {
                error_code: pf::PRESENT | pf::WRITE | pf::USER
            })
        );
        assert_eq!(
            t(0x40_1000, Write, false),
            Err(WalkError::Protection {
                error_code: pf::PRESENT | pf::WRITE
            })
        );
        // ...and succeeds without it.
        let nowp = Paging {
            cr0: LONG.cr0 & !CR0_WP,
            ..LONG
        };
        assert_eq!(translate(&m, &nowp, 0x40_1000, Write, false), Ok(0x10_1000));
        assert!(translate(&m, &nowp, 0x40_1000, Write, true).is_err());
        // supervisor page: user read faults.
        assert_eq!(
            t(0x40_2000, Read, true),
            Err(WalkError::Protection {
                error_code: pf::PRESENT | pf::USER
            })
        );
        assert!(t(0x40_2000, Write, false).is_ok());
        // NX page
        assert_eq!(
            t(0x40_3000, Execute, true),
            Err(WalkError::Protection {
                error_code: pf::PRESENT | pf::USER | pf::INSTRUCTION
            })
        );
        assert!(t(0x40_3000, Read, true).is_ok());
        assert!(t(0x40_0000, Execute, true).is_ok());
        // not present, with the access in the code
        assert_eq!(
            t(0x40_4000, Execute, true),
            Err(WalkError::NotPresent {
                error_code: pf::USER | pf::INSTRUCTION
            })
        );
        // SMEP: supervisor fetch from a user page.
        let smep = Paging {
            cr4: LONG.cr4 | CR4_SMEP,
            ..LONG
        };
        assert!(translate(&m, &smep, 0x40_0000, Execute, false).is_err());
        assert!(translate(&m, &LONG, 0x40_0000, Execute, false).is_ok());
        assert!(translate(&m, &smep, 0x40_2000, Execute, false).is_ok());
    }

    #[test]
    fn rights_combine_across_levels() {
        let mut m = long_tables();
        // Make the PDPTE supervisor-only and read-only: everything under it follows.
        m.put64(0x1000, 0x2000 | P);
        assert!(translate(&m, &LONG, 0x40_0000, Access::Read, true).is_err());
        assert!(translate(&m, &LONG, 0x40_0000, Access::Write, false).is_err());
        assert!(translate(&m, &LONG, 0x40_0000, Access::Read, false).is_ok());
        // NX at the top level.
        m.put64(0x1000, 0x2000 | P | RW | US | XD);
        assert!(translate(&m, &LONG, 0x40_0000, Access::Execute, true).is_err());
        // Without EFER.NXE, bit 63 is reserved.
        let nonx = Paging {
            efer: EFER_LMA,
            ..LONG
        };
        assert_eq!(
            translate(&m, &nonx, 0x40_0000, Access::Read, false),
            Err(WalkError::ReservedBit {
                error_code: pf::PRESENT | pf::RESERVED
            })
        );
    }

    #[test]
    fn reserved_bits_and_unreadable_tables() {
        let mut m = long_tables();
        // 2 MiB page with bit 13 set.
        m.put64(0x3008, 0x80_0000 | P | PS | (1 << 13));
        assert!(matches!(
            translate(&m, &LONG, 0x20_0000, Access::Read, false),
            Err(WalkError::ReservedBit { .. })
        ));
        // PAT bit (12) in a large leaf is fine.
        m.put64(0x3008, 0x80_0000 | P | PS | (1 << 12));
        assert_eq!(
            translate(&m, &LONG, 0x20_0010, Access::Read, false),
            Ok(0x80_0010)
        );
        // PS in a PML4E.
        m.put64(0x1000, 0x2000 | P | PS);
        assert!(matches!(
            translate(&m, &LONG, 0x40_0000, Access::Read, false),
            Err(WalkError::ReservedBit { .. })
        ));
        // A table in memory that does not exist.
        m.put64(0x1000, 0x9_9000 | P);
        assert_eq!(
            translate(&m, &LONG, 0x40_0000, Access::Read, false),
            Err(WalkError::TableUnreadable { gpa: 0x9_9000 })
        );
    }

    #[test]
    fn non_canonical() {
        let m = long_tables();
        for va in [
            0x8000_0000_0000u64,
            0xffff_7fff_ffff_ffff,
            0x0100_0000_0000_0000,
        ] {
            assert_eq!(
                translate(&m, &LONG, va, Access::Read, false),
                Err(WalkError::NonCanonical),
                "{va:#x}"
            );
        }
        // High canonical half walks (and is not present here).
        assert!(matches!(
            translate(&m, &LONG, 0xffff_8000_0000_0000, Access::Read, false),
            Err(WalkError::NotPresent { .. })
        ));
        // With LA57 the limit moves to 57 bits.
        let la57 = Paging {
            cr4: LONG.cr4 | CR4_LA57,
            ..LONG
        };
        assert!(matches!(
            translate(&m, &la57, 0x8000_0000_0000, Access::Read, false),
            Err(WalkError::NotPresent { .. })
        ));
        assert_eq!(
            translate(&m, &la57, 0x0100_0000_0000_0000, Access::Read, false),
            Err(WalkError::NonCanonical)
        );
    }

    #[test]
    fn five_level() {
        let mut m = long_tables();
        // PML5 at 0x5000, entry 0 → the PML4 at 0x1000.
        m.put64(0x5000, 0x1000 | P | RW | US);
        let p = Paging {
            cr3: 0x5000,
            cr4: LONG.cr4 | CR4_LA57,
            ..LONG
        };
        assert_eq!(
            translate(&m, &p, 0x40_0123, Access::Read, true),
            Ok(0x10_0123)
        );
    }

    #[test]
    fn pae_mode() {
        let mut m = Mem::default();
        // CR3 → PDPT at 0x1020 (32-byte aligned), PDPTE[1] → PD at 0x2000.
        m.put64(0x1020 + 8, 0x2000 | P);
        m.put64(0x2000, 0x3000 | P | RW | US); // PD[0] → PT
        m.put64(0x2008, 0x60_0000 | P | RW | PS); // PD[1]: 2 MiB, supervisor
        m.put64(0x3000 + 5 * 8, 0xab_c000 | P | US | XD); // user RO NX
        let p = Paging {
            cr0: CR0_PG | CR0_WP,
            cr3: 0x1020,
            cr4: CR4_PAE,
            efer: EFER_NXE,
        };
        let base = 0x4000_0000u64;
        assert_eq!(
            translate(&m, &p, base + 0x5123, Access::Read, true),
            Ok(0xab_c123)
        );
        assert!(translate(&m, &p, base + 0x5123, Access::Write, true).is_err());
        assert!(translate(&m, &p, base + 0x5123, Access::Execute, false).is_err());
        assert_eq!(
            translate(&m, &p, base + 0x20_0040, Access::Write, false),
            Ok(0x60_0040)
        );
        assert!(translate(&m, &p, base + 0x20_0040, Access::Read, true).is_err());
        // Upper 32 bits of the address are dropped outside long mode.
        assert_eq!(
            translate(&m, &p, 0x7_0000_0000 + base + 0x5000, Access::Read, false),
            Ok(0xab_c000)
        );
        // PDPTE[0] not present.
        assert!(matches!(
            translate(&m, &p, 0x1000, Access::Read, false),
            Err(WalkError::NotPresent { .. })
        ));
        // Reserved bits in a PDPTE (RW is reserved there).
        m.put64(0x1020 + 8, 0x2000 | P | RW);
        assert!(matches!(
            translate(&m, &p, base, Access::Read, false),
            Err(WalkError::ReservedBit { .. })
        ));
    }

    #[test]
    fn two_level_32bit() {
        let mut m = Mem::default();
        // PD at 0x1000.
        m.put32(0x1000 + 4, 0x2000 | (P | RW | US) as u32); // 4M..8M → PT
        m.put32(0x2000 + 3 * 4, 0x7_7000 | (P | US) as u32); // user RO
        // PDE[2]: 4 MiB page at 0xc0_0000 with PSE-36 bits giving 0x3_00c0_0000.
        m.put32(0x1000 + 8, 0x00c0_0000 | (3 << 13) | (P | RW | PS) as u32);
        let p = Paging {
            cr0: CR0_PG | CR0_WP,
            cr3: 0x1000,
            cr4: CR4_PSE,
            efer: 0,
        };
        assert_eq!(
            translate(&m, &p, 0x40_3abc, Access::Read, true),
            Ok(0x7_7abc)
        );
        assert!(translate(&m, &p, 0x40_3abc, Access::Write, true).is_err());
        // No NX in 32-bit paging: execute of a readable page works.
        assert!(translate(&m, &p, 0x40_3abc, Access::Execute, true).is_ok());
        assert_eq!(
            translate(&m, &p, 0x81_2345, Access::Write, false),
            Ok(0x3_00c1_2345)
        );
        assert!(translate(&m, &p, 0x81_2345, Access::Read, true).is_err());
        // Without CR4.PSE, PS is ignored and PDE[2] points to a table (at 0xc0_0000,
        // which is not memory).
        let nopse = Paging { cr4: 0, ..p };
        assert_eq!(
            translate(&m, &nopse, 0x81_2345, Access::Read, false),
            Err(WalkError::TableUnreadable {
                gpa: 0xc0_6000 + 0x12 * 4
            })
        );
        // Bit 21 of a 4 MiB PDE is reserved.
        m.put32(0x1000 + 8, 0x00c0_0000 | (1 << 21) | (P | PS) as u32);
        assert!(matches!(
            translate(&m, &p, 0x81_2345, Access::Read, false),
            Err(WalkError::ReservedBit { .. })
        ));
        assert!(matches!(
            translate(&m, &p, 0x0, Access::Read, false),
            Err(WalkError::NotPresent { .. })
        ));
    }

    #[test]
    fn copies_cross_pages() {
        let mut m = long_tables();
        for a in [0x10_0000u64, 0x10_1000, 0x10_2000, 0x10_3000] {
            m.add(a);
        }
        // Map 0x40_0000.. in reverse physical order to prove per-page translation.
        m.put64(0x4000, 0x10_3000 | P | RW | US);
        m.put64(0x4008, 0x10_2000 | P | RW | US);
        m.put64(0x4010, 0x10_1000 | P | RW | US);
        m.put64(0x4018, 0x10_0000 | P | RW | US);
        let data: Vec<u8> = (0..9000u32).map(|i| (i * 7 + 3) as u8).collect();
        copy_to_guest(&mut m, &LONG, 0x40_0100, &data).unwrap();
        let mut back = vec![0u8; data.len()];
        copy_from_guest(&m, &LONG, 0x40_0100, &mut back).unwrap();
        assert_eq!(back, data);
        // Check physical placement of the page-crossing bytes.
        let mut b = [0u8; 2];
        assert!(m.read(0x10_3fff, &mut b[..1]));
        assert!(m.read(0x10_2000, &mut b[1..]));
        assert_eq!(b, [data[0xeff], data[0xf00]]);
        // Empty copies do nothing and succeed, even at unmapped addresses.
        copy_from_guest(&m, &LONG, 0xdead_0000, &mut []).unwrap();
    }

    #[test]
    fn copy_faults_and_memory_errors() {
        let mut m = long_tables();
        m.add(0x10_0000);
        m.add(0x10_1000);
        // Read-only second page, WP on: the write faults and changes nothing.
        let before = m.pages[&0x10_0000].clone();
        let r = copy_to_guest(&mut m, &LONG, 0x40_0ff0, &[0xaa; 32]);
        assert_eq!(
            r,
            Err(WalkError::Protection {
                error_code: pf::PRESENT | pf::WRITE
            })
        );
        assert_eq!(m.pages[&0x10_0000], before);
        // Reading across into it is fine.
        let mut buf = [0u8; 32];
        copy_from_guest(&m, &LONG, 0x40_0ff0, &mut buf).unwrap();
        // Translation succeeds but the memory is missing (0x10_2000 never added).
        let mut buf = [0u8; 4];
        assert_eq!(
            copy_from_guest(&m, &LONG, 0x40_2000, &mut buf),
            Err(WalkError::Memory { gpa: 0x10_2000 })
        );
        // Running off the mapped range faults.
        let mut buf = [0u8; 0x4001];
        assert!(matches!(
            copy_from_guest(&m, &LONG, 0x40_0000, &mut buf),
            Err(WalkError::NotPresent { .. }) | Err(WalkError::Memory { .. })
        ));
    }

    #[test]
    fn copy_wraps_at_4g_outside_long_mode() {
        let mut m = Mem::default();
        m.add(0xffff_f000);
        m.add(0);
        let p = Paging::default();
        let data = [1u8, 2, 3, 4, 5, 6, 7, 8];
        copy_to_guest(&mut m, &p, 0xffff_fffc, &data).unwrap();
        let mut b = [0u8; 4];
        assert!(m.read(0, &mut b));
        assert_eq!(b, [5, 6, 7, 8]);
        let mut back = [0u8; 8];
        copy_from_guest(&m, &p, 0xffff_fffc, &mut back).unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn page_fault_code_accessor() {
        assert_eq!(WalkError::NonCanonical.page_fault_code(), None);
        assert_eq!(
            WalkError::NotPresent { error_code: 6 }.page_fault_code(),
            Some(6)
        );
    }

    /// Builds long-mode tables for random 4 KiB / 2 MiB / 1 GiB mappings anywhere in the
    /// canonical space and checks every mapping, and addresses around it, against a model.
    #[test]
    fn randomized_long_mode_against_a_model() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 11) % n
        };
        for la57 in [false, true] {
            let levels: u32 = if la57 { 5 } else { 4 };
            let va_bits = 12 + 9 * levels;
            let mut m = Mem::default();
            let mut next_table = 0x100_0000u64;
            let root = next_table;
            m.add(root);
            next_table += 0x1000;
            // (gva base, size, gpa base, flags)
            let mut maps: Vec<(u64, u64, u64, u64)> = Vec::new();
            'place: for _ in 0..300 {
                let size_level = [1u32, 1, 1, 2, 3][rnd(5) as usize];
                let size = 1u64 << (12 + 9 * (size_level - 1));
                // A random canonical address, aligned to the page size.
                let raw = rnd(1 << (va_bits - 1)) & !(size - 1);
                let gva = if rnd(2) == 0 {
                    raw
                } else {
                    raw | (u64::MAX << (va_bits - 1))
                };
                if maps.iter().any(|&(b, z, _, _)| {
                    gva.wrapping_sub(b) < z || b.wrapping_sub(gva) < size || {
                        // Would share a table slot with a larger leaf, or vice versa.
                        let big = z.max(size);
                        b & !(big - 1) == gva & !(big - 1)
                    }
                }) {
                    continue 'place;
                }
                let gpa = rnd(1 << 40) & !(size - 1);
                let flags = P
                    | if rnd(2) == 0 { RW } else { 0 }
                    | if rnd(2) == 0 { US } else { 0 }
                    | if rnd(4) == 0 { XD } else { 0 };
                // Walk/create the tables down to the leaf level.
                let mut table = root;
                for level in (size_level + 1..=levels).rev() {
                    let slot = table + ((gva >> (12 + 9 * (level - 1))) & 0x1ff) * 8;
                    let e = m.read_u64(slot).unwrap();
                    table = if e & P != 0 {
                        e & ADDR
                    } else {
                        let t = next_table;
                        next_table += 0x1000;
                        m.add(t);
                        m.put64(slot, t | P | RW | US);
                        t
                    };
                }
                let slot = table + ((gva >> (12 + 9 * (size_level - 1))) & 0x1ff) * 8;
                let ps = if size_level > 1 { PS } else { 0 };
                m.put64(slot, gpa | flags | ps);
                maps.push((gva, size, gpa, flags));
            }
            assert!(maps.len() > 100);
            let p = Paging {
                cr3: root,
                cr4: CR4_PAE | if la57 { CR4_LA57 } else { 0 },
                ..LONG
            };
            for &(gva, size, gpa, flags) in &maps {
                for off in [0, 8, size / 2 + 5, size - 1] {
                    let va = gva + off;
                    assert_eq!(
                        translate(&m, &p, va, Access::Read, false),
                        Ok(gpa + off),
                        "{va:#x}"
                    );
                    let user = translate(&m, &p, va, Access::Read, true);
                    assert_eq!(user.is_ok(), flags & US != 0, "{va:#x}");
                    let write = translate(&m, &p, va, Access::Write, false);
                    assert_eq!(write.is_ok(), flags & RW != 0, "{va:#x}");
                    let exec = translate(&m, &p, va, Access::Execute, false);
                    assert_eq!(exec.is_ok(), flags & XD == 0, "{va:#x}");
                }
                // Just past the mapping: mapped only if another mapping is there.
                let after = gva.wrapping_add(size);
                let covered = maps.iter().any(|&(b, z, _, _)| after >= b && after - b < z);
                let r = translate(&m, &p, after, Access::Read, false);
                if !covered {
                    assert!(
                        matches!(
                            r,
                            Err(WalkError::NotPresent { .. }) | Err(WalkError::NonCanonical)
                        ),
                        "{after:#x}: {r:?}"
                    );
                }
            }
        }
    }
}
