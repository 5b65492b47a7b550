//! `isolation`: touches guest-physical memory that is not its own. oxen must crash the
//! domain on the EPT violation; surviving is a failure.
//!
//! Command line: `mode=outside` (the first byte past the end of RAM) or
//! `mode=hypervisor` (4 GiB, then the local APIC page at 0xfee00000).
#![no_std]
#![no_main]

use oxen_guest_rt::{StartInfo, mm, println};

oxen_guest_rt::entry!(main);

fn main(info: &StartInfo) {
    println!("isolation: command line \"{}\"", info.cmdline());
    for e in info.memmap() {
        println!(
            "isolation: memmap {:#x}..{:#x} type {}",
            e.addr,
            e.end(),
            e.kind
        );
    }
    let ram_end = info.ram_end();
    match info.cmdline_arg("mode") {
        Some("outside") => {
            assert!(ram_end != 0, "isolation: no RAM in the memory map");
            touch(0, ram_end, false);
        }
        Some("hypervisor") => {
            for (slot, addr) in [(1, 0x1_0000_0000u64), (2, 0xfee0_0000)] {
                if addr < ram_end {
                    println!("isolation: note: {addr:#x} is below the end of RAM {ram_end:#x}");
                }
                touch(slot, addr, true);
            }
        }
        other => panic!("isolation: need mode=outside or mode=hypervisor, got {other:?}"),
    }
    panic!("isolation: FAIL survived all accesses");
}

/// Reads, then writes, the byte at guest-physical `paddr` through the window mapping.
fn touch(slot: usize, paddr: u64, uncached: bool) {
    // SAFETY: the slot is used only here; the mapping is a plain 2 MiB page.
    let p = unsafe { mm::map_phys(slot, paddr, uncached) };
    println!("isolation: reading {paddr:#x} (outside my memory)");
    // SAFETY: the point of the test: the hypervisor must stop this access.
    let v = unsafe { core::ptr::read_volatile(p) };
    println!("isolation: FAIL survived reading {paddr:#x} (read {v:#x}); writing it");
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(p, v ^ 0xff) };
    println!("isolation: FAIL survived writing {paddr:#x}");
}
