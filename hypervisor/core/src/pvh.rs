//! The PVH boot information (`arch-x86/hvm/start_info.h`): the `hvm_start_info` block a
//! PVH guest finds at the physical address in `%ebx`, with the memory map, module list
//! and command line it points to.

use alloc::borrow::Cow;
use alloc::vec::Vec;
use oxen_abi::{HVM_START_MAGIC, HvmMemmapEntry, HvmModlistEntry, HvmStartInfo, memmap_type};

use crate::elf::{self, ElfError};

/// Where a PVH domain's builder puts `hvm_start_info` (with the memory map, module list
/// and command line after it) and the ACPI tables (64 KiB reserved below 1 MiB, where a
/// kernel image never goes). The hypervisor's boot-time builder and the control
/// domain's use the same.
pub const START_INFO_GPA: u64 = 0x6000;
pub const ACPI_GPA: u64 = 0xf_0000;
pub const ACPI_SIZE: u64 = 0x1_0000;

/// The reserved pages of every domain: the console ring, then by convention shared
/// info and grant frames (announced reserved in the memory map), at a fixed guest frame
/// below 4 GiB or, for a domain with more RAM, right above its RAM.
pub const RESERVED_GFN: u64 = 0xfeff0;
pub const RESERVED_PAGES: u64 = 16;

/// The reserved range (start, bytes) of a domain with `ram_size` bytes of RAM at
/// creation (0 for a domain created empty by a control domain).
pub fn reserved_range(ram_size: u64) -> (u64, u64) {
    let start = if ram_size <= RESERVED_GFN << 12 {
        RESERVED_GFN << 12
    } else {
        ram_size
    };
    (start, RESERVED_PAGES << 12)
}

/// The XenStore page's frame of a domain with `ram_size` bytes of RAM at creation:
/// the second reserved page (after the console's).
pub fn store_gfn(ram_size: u64) -> u64 {
    (reserved_range(ram_size).0 >> 12) + 1
}

/// What goes into a new PVH domain's memory, which starts zeroed: each write is
/// (guest-physical address, bytes), all within its RAM; then vCPU 0 starts at `entry`
/// in 32-bit flat mode with EBX = `start_info`.
#[derive(Debug)]
pub struct Plan<'a> {
    pub entry: u32,
    pub start_info: u64,
    pub writes: Vec<(u64, Cow<'a, [u8]>)>,
}

/// Why a kernel cannot be laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    Elf(ElfError),
    /// The kernel has no Xen `PHYS32_ENTRY` note.
    NoPvhEntry,
    /// Something does not fit in the domain's RAM (or the kernel overlaps the ACPI
    /// tables).
    OutsideRam {
        paddr: u64,
        size: u64,
    },
}

/// Lays out a PVH domain with `ram_size` bytes of RAM from 0 and `max_vcpus` vCPUs of
/// which `vcpus` are online at boot: the kernel's PT_LOAD segments at their physical
/// addresses, the ACPI tables (RSDP, XSDT, FADT, DSDT, MADT with one LAPIC per vCPU,
/// enabled for the online ones), the ramdisk as module 0 after the kernel,
/// and `hvm_start_info` with the memory map (RAM, less `reserved` and the ACPI range),
/// the module list and `cmdline`. Nothing in `kernel` is trusted.
pub fn plan<'a>(
    kernel: &'a [u8],
    ramdisk: Option<&'a [u8]>,
    ram_size: u64,
    (vcpus, max_vcpus): (u32, u32),
    cmdline: &str,
    reserved: (u64, u64),
) -> Result<Plan<'a>, PlanError> {
    let image = elf::parse(kernel).map_err(PlanError::Elf)?;
    let entry = image.phys32_entry.ok_or(PlanError::NoPvhEntry)?;
    let mut writes: Vec<(u64, Cow<'a, [u8]>)> = Vec::new();
    for seg in &image.segments {
        let fits = seg
            .paddr
            .checked_add(seg.mem_size)
            .is_some_and(|end| end <= ram_size);
        if !fits {
            return Err(PlanError::OutsideRam {
                paddr: seg.paddr,
                size: seg.mem_size,
            });
        }
        writes.push((seg.paddr, Cow::Borrowed(seg.data)));
    }
    let (acpi, rsdp) = crate::guest_acpi::build(ACPI_GPA, vcpus, max_vcpus);
    let overlaps = image
        .segments
        .iter()
        .any(|seg| seg.paddr < ACPI_GPA + ACPI_SIZE && seg.paddr + seg.mem_size > ACPI_GPA);
    if overlaps || acpi.len() as u64 > ACPI_SIZE || ACPI_GPA + ACPI_SIZE > ram_size {
        return Err(PlanError::OutsideRam {
            paddr: ACPI_GPA,
            size: ACPI_SIZE,
        });
    }
    writes.push((ACPI_GPA, Cow::Owned(acpi)));
    let mut modules = Vec::new();
    if let Some(data) = ramdisk {
        let kernel_end = image
            .segments
            .iter()
            .map(|seg| seg.paddr + seg.mem_size)
            .max()
            .unwrap_or(0);
        let len = data.len() as u64;
        let at = place_module(kernel_end, len, ram_size).ok_or(PlanError::OutsideRam {
            paddr: kernel_end,
            size: len,
        })?;
        modules.push((at, len));
        writes.push((at, Cow::Borrowed(data)));
    }
    let memmap = memmap_for(ram_size, &[reserved, (ACPI_GPA, ACPI_SIZE)]);
    let info = build(START_INFO_GPA, cmdline, &memmap, &modules, rsdp);
    if START_INFO_GPA + info.len() as u64 > ram_size {
        return Err(PlanError::OutsideRam {
            paddr: START_INFO_GPA,
            size: info.len() as u64,
        });
    }
    writes.push((START_INFO_GPA, Cow::Owned(info)));
    Ok(Plan {
        entry,
        start_info: START_INFO_GPA,
        writes,
    })
}

fn align8(v: usize) -> usize {
    (v + 7) & !7
}

/// Where a module (an initrd) of `len` bytes goes: at the first page boundary at or
/// above `after` (the end of the kernel's highest segment) and 1 MiB, wholly below
/// `ram_end` and 1 GiB (Linux reads modules through its early map of the first GiB).
/// `None` if it does not fit.
pub fn place_module(after: u64, len: u64, ram_end: u64) -> Option<u64> {
    let at = after.max(1 << 20).checked_add(0xfff)? & !0xfff;
    let end = at.checked_add(len)?;
    (end <= ram_end && end <= 1 << 30).then_some(at)
}

/// The bytes to place at guest-physical `base_gpa`: [`HvmStartInfo`] (version 1) at +0,
/// then the memory map, the module list and the NUL-terminated command line, each
/// 8-byte aligned. Every `*_paddr` field is an absolute guest-physical address (zero
/// for an empty memory map or module list; `rsdp_paddr` is the caller's, 0 for none);
/// modules have no
/// command line. The caller picks `base_gpa` (8-byte aligned, below 4 GiB — below 1 GiB
/// for Linux) where the whole block fits in guest RAM.
///
/// A command line containing NUL reads, in the guest, only up to that NUL.
pub fn build(
    base_gpa: u64,
    cmdline: &str,
    memmap: &[HvmMemmapEntry],
    modules: &[(u64, u64)],
    rsdp_paddr: u64,
) -> Vec<u8> {
    let memmap_off = align8(HvmStartInfo::SIZE);
    let modlist_off = align8(memmap_off + memmap.len() * HvmMemmapEntry::SIZE);
    let cmdline_off = align8(modlist_off + modules.len() * HvmModlistEntry::SIZE);
    let total = align8(cmdline_off + cmdline.len() + 1);
    let at = |off: usize| base_gpa + off as u64;

    let info = HvmStartInfo {
        magic: HVM_START_MAGIC,
        version: 1,
        flags: 0,
        nr_modules: modules.len() as u32,
        modlist_paddr: if modules.is_empty() {
            0
        } else {
            at(modlist_off)
        },
        cmdline_paddr: at(cmdline_off),
        rsdp_paddr,
        memmap_paddr: if memmap.is_empty() { 0 } else { at(memmap_off) },
        memmap_entries: memmap.len() as u32,
        reserved: 0,
    };
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&info.to_bytes());
    out.resize(memmap_off, 0);
    for e in memmap {
        out.extend_from_slice(&e.to_bytes());
    }
    out.resize(modlist_off, 0);
    for &(paddr, size) in modules {
        let m = HvmModlistEntry {
            paddr,
            size,
            cmdline_paddr: 0,
            reserved: 0,
        };
        out.extend_from_slice(&m.to_bytes());
    }
    out.resize(cmdline_off, 0);
    out.extend_from_slice(cmdline.as_bytes());
    out.resize(total, 0);
    out
}

/// A memory map for a guest with RAM at `[0, ram_bytes)` and `reserved` (address, size)
/// ranges, which may overlap each other, the RAM, or lie above it (MMIO, the local
/// APIC…). RAM under a reserved range is left out; the entries come sorted by address,
/// reserved ranges merged, none overlapping. Empty ranges are dropped.
pub fn memmap_for(ram_bytes: u64, reserved: &[(u64, u64)]) -> Vec<HvmMemmapEntry> {
    let mut res: Vec<(u64, u64)> = reserved
        .iter()
        .filter(|&&(_, size)| size != 0)
        .map(|&(start, size)| (start, start.saturating_add(size)))
        .collect();
    res.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(res.len());
    for (s, e) in res {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let entry = |start: u64, end: u64, type_: u32| HvmMemmapEntry {
        addr: start,
        size: end - start,
        type_,
        reserved: 0,
    };
    let mut out = Vec::new();
    let mut cursor = 0u64;
    for (s, e) in merged {
        let ram_end = s.min(ram_bytes);
        if cursor < ram_end {
            out.push(entry(cursor, ram_end, memmap_type::RAM));
        }
        out.push(entry(s, e, memmap_type::RESERVED));
        cursor = cursor.max(e);
    }
    if cursor < ram_bytes {
        out.push(entry(cursor, ram_bytes, memmap_type::RAM));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn e(addr: u64, size: u64, type_: u32) -> HvmMemmapEntry {
        HvmMemmapEntry {
            addr,
            size,
            type_,
            reserved: 0,
        }
    }

    /// The bytes at guest-physical `gpa` inside a block built at `base`.
    fn at(block: &[u8], base: u64, gpa: u64) -> &[u8] {
        &block[(gpa - base) as usize..]
    }

    fn kernel() -> Vec<u8> {
        crate::elf::tests::pvh_kernel(true, &0x10_0040u32.to_le_bytes())
    }

    fn write_at<'p>(p: &'p Plan<'_>, gpa: u64) -> &'p [u8] {
        &p.writes
            .iter()
            .find(|(g, _)| *g == gpa)
            .expect("a write there")
            .1
    }

    #[test]
    fn a_pvh_domain_is_laid_out_kernel_acpi_module_start_info() {
        let k = kernel();
        let p = plan(
            &k,
            Some(b"initrd!"),
            16 << 20,
            (2, 2),
            "console=hvc0",
            reserved_range(0),
        )
        .unwrap();
        assert_eq!((p.entry, p.start_info), (0x10_0040, START_INFO_GPA));
        assert_eq!(write_at(&p, 0x10_0000), &[0x90; 100][..]);
        assert_eq!(write_at(&p, 0x20_0000), &[1, 2, 3][..]);
        assert_eq!(&write_at(&p, ACPI_GPA)[..8], b"RSD PTR ");
        // The module right after the kernel's last segment, page-aligned.
        assert_eq!(write_at(&p, 0x20_1000), b"initrd!");
        let info = write_at(&p, START_INFO_GPA);
        let si = HvmStartInfo::from_bytes(info).unwrap();
        assert_eq!(
            (si.magic, si.nr_modules, si.rsdp_paddr),
            (HVM_START_MAGIC, 1, ACPI_GPA)
        );
        let cmdline = &info[(si.cmdline_paddr - START_INFO_GPA) as usize..];
        assert!(cmdline.starts_with(b"console=hvc0\0"));
        // Every write lies in RAM.
        assert!(p.writes.iter().all(|(g, b)| g + b.len() as u64 <= 16 << 20));
        // The memory map leaves out the reserved pages and the ACPI range.
        let map: Vec<HvmMemmapEntry> = (0..si.memmap_entries as usize)
            .map(|i| {
                let off = (si.memmap_paddr - START_INFO_GPA) as usize + i * HvmMemmapEntry::SIZE;
                HvmMemmapEntry::from_bytes(&info[off..]).unwrap()
            })
            .collect();
        assert!(map.contains(&e(ACPI_GPA, ACPI_SIZE, memmap_type::RESERVED)));
        assert!(map.contains(&e(
            RESERVED_GFN << 12,
            RESERVED_PAGES << 12,
            memmap_type::RESERVED
        )));
    }

    #[test]
    fn what_does_not_fit_is_refused() {
        // 2 MiB of RAM: the segment at 2 MiB is outside.
        assert_eq!(
            plan(&kernel(), None, 2 << 20, (1, 1), "", reserved_range(0)).unwrap_err(),
            PlanError::OutsideRam {
                paddr: 0x20_0000,
                size: 0x1000
            }
        );
        // A module that does not fit after the kernel.
        let big = vec![0u8; 15 << 20];
        assert!(matches!(
            plan(
                &kernel(),
                Some(&big),
                16 << 20,
                (1, 1),
                "",
                reserved_range(0)
            ),
            Err(PlanError::OutsideRam {
                paddr: 0x20_1000,
                ..
            })
        ));
        assert!(matches!(
            plan(b"not an elf", None, 16 << 20, (1, 1), "", reserved_range(0)),
            Err(PlanError::Elf(_))
        ));
    }

    #[test]
    fn the_reserved_pages_sit_below_4_gib_or_above_ram() {
        assert_eq!(reserved_range(0), (0xfeff_0000, 16 << 12));
        assert_eq!(reserved_range(256 << 20), (0xfeff_0000, 16 << 12));
        assert_eq!(reserved_range(5 << 30), (5 << 30, 16 << 12));
    }

    #[test]
    fn modules_go_after_the_kernel_within_ram_and_the_first_gib() {
        assert_eq!(
            place_module(0x4a0_1234, 0x10_0000, 256 << 20),
            Some(0x4a0_2000)
        );
        assert_eq!(
            place_module(0x4a0_0000, 0x10_0000, 256 << 20),
            Some(0x4a0_0000)
        );
        assert_eq!(
            place_module(0x1000, 0x100, 16 << 20),
            Some(0x10_0000),
            "not below 1 MiB"
        );
        assert_eq!(
            place_module(0xf0_0000, 0x20_0000, 16 << 20),
            None,
            "past RAM"
        );
        assert_eq!(
            place_module(0x3ff0_0000, 0x20_0000, 2 << 30),
            None,
            "past 1 GiB"
        );
        assert_eq!(place_module(u64::MAX - 10, 1, u64::MAX), None);
    }

    #[test]
    fn full_block_round_trips() {
        let base = 0x7000;
        let map = memmap_for(0x1000_0000, &[(0xa_0000, 0x6_0000), (0xfee0_0000, 0x1000)]);
        let mods = [(0x200_0000u64, 0x1234u64), (0x300_0000, 0x10)];
        let cmd = "console=hvc0 root=/dev/xvda";
        let b = build(base, cmd, &map, &mods, 0xf_0000);
        assert_eq!(b.len() % 8, 0);

        let si = HvmStartInfo::from_bytes(&b).unwrap();
        assert_eq!(si.magic, 0x336e_c578);
        assert_eq!(si.version, 1);
        assert_eq!(si.flags, 0);
        assert_eq!(si.rsdp_paddr, 0xf_0000);
        assert_eq!(si.reserved, 0);
        assert_eq!(si.memmap_entries as usize, map.len());
        assert_eq!(si.nr_modules, 2);
        for p in [si.memmap_paddr, si.modlist_paddr, si.cmdline_paddr] {
            assert_eq!(p % 8, 0);
            assert!(p >= base + HvmStartInfo::SIZE as u64);
            assert!(p < base + b.len() as u64);
        }
        // Order: start info, memmap, modules, command line.
        assert!(si.memmap_paddr < si.modlist_paddr && si.modlist_paddr < si.cmdline_paddr);

        for (i, want) in map.iter().enumerate() {
            let got = HvmMemmapEntry::from_bytes(at(
                &b,
                base,
                si.memmap_paddr + (i * HvmMemmapEntry::SIZE) as u64,
            ))
            .unwrap();
            assert_eq!(&got, want);
        }
        for (i, &(paddr, size)) in mods.iter().enumerate() {
            let got = HvmModlistEntry::from_bytes(at(
                &b,
                base,
                si.modlist_paddr + (i * HvmModlistEntry::SIZE) as u64,
            ))
            .unwrap();
            assert_eq!(
                got,
                HvmModlistEntry {
                    paddr,
                    size,
                    cmdline_paddr: 0,
                    reserved: 0
                }
            );
        }
        let c = at(&b, base, si.cmdline_paddr);
        assert_eq!(&c[..cmd.len()], cmd.as_bytes());
        assert_eq!(c[cmd.len()], 0);
        // Tables do not overlap the next one.
        assert!(si.memmap_paddr + (map.len() * HvmMemmapEntry::SIZE) as u64 <= si.modlist_paddr);
        assert!(si.modlist_paddr + (mods.len() * HvmModlistEntry::SIZE) as u64 <= si.cmdline_paddr);
    }

    #[test]
    fn empty_lists_have_zero_addresses() {
        let b = build(0x1_0000, "", &[], &[], 0);
        let si = HvmStartInfo::from_bytes(&b).unwrap();
        assert_eq!((si.memmap_paddr, si.memmap_entries), (0, 0));
        assert_eq!((si.modlist_paddr, si.nr_modules), (0, 0));
        assert_eq!(si.cmdline_paddr, 0x1_0000 + 56);
        assert_eq!(b[56], 0);
        assert_eq!(b.len(), 64);
    }

    #[test]
    fn memmap_plain_ram() {
        assert_eq!(memmap_for(0x800_0000, &[]), vec![e(0, 0x800_0000, 1)]);
        assert_eq!(memmap_for(0, &[]), vec![]);
    }

    #[test]
    fn memmap_holes_merge_and_outside() {
        let m = memmap_for(
            0x100_0000,
            &[
                (0xfee0_0000, 0x1000),
                (0xc_0000, 0x4_0000),
                (0xa_0000, 0x2_0000),
                (0xb_0000, 0x1_0000),   // inside the merge
                (0x50_0000, 0),         // empty: dropped
                (0xf0_0000, 0x20_0000), // straddles the end of RAM
            ],
        );
        assert_eq!(
            m,
            vec![
                e(0, 0xa_0000, 1),
                e(0xa_0000, 0x6_0000, 2),
                e(0x10_0000, 0xe0_0000, 1),
                e(0xf0_0000, 0x20_0000, 2),
                e(0xfee0_0000, 0x1000, 2),
            ]
        );
        // Reserved at 0 and a reserved range ending at the top of the address space.
        let m = memmap_for(0x10_0000, &[(0, 0x1000), (u64::MAX - 0xfff, 0x2000)]);
        assert_eq!(
            m,
            vec![
                e(0, 0x1000, 2),
                e(0x1000, 0xf_f000, 1),
                e(u64::MAX - 0xfff, 0xfff, 2),
            ]
        );
    }

    #[test]
    fn memmap_never_overlaps_and_covers_ram() {
        let mut seed = 7u64;
        let mut rnd = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        for _ in 0..200 {
            let ram = rnd(64) * 0x1000;
            let res: Vec<(u64, u64)> = (0..rnd(6))
                .map(|_| (rnd(80) * 0x1000, rnd(8) * 0x1000))
                .collect();
            let m = memmap_for(ram, &res);
            for w in m.windows(2) {
                assert!(w[0].addr + w[0].size <= w[1].addr, "{m:?}");
            }
            // Every page: RAM iff below `ram` and in no reserved range.
            for page in 0..80u64 {
                let a = page * 0x1000;
                let reserved = res.iter().any(|&(s, z)| a >= s && a < s + z);
                let want = if reserved {
                    Some(memmap_type::RESERVED)
                } else if a < ram {
                    Some(memmap_type::RAM)
                } else {
                    None
                };
                let got = m
                    .iter()
                    .find(|x| a >= x.addr && a < x.addr + x.size)
                    .map(|x| x.type_);
                assert_eq!(got, want, "page {page} in {m:?} from {res:?}, ram {ram:#x}");
            }
        }
    }
}
