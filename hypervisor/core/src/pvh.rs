//! The PVH boot information (`arch-x86/hvm/start_info.h`): the `hvm_start_info` block a
//! PVH guest finds at the physical address in `%ebx`, with the memory map, module list
//! and command line it points to.

use alloc::vec::Vec;
use oxen_abi::{HVM_START_MAGIC, HvmMemmapEntry, HvmModlistEntry, HvmStartInfo, memmap_type};

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
