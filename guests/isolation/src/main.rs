//! `isolation`: touches guest-physical memory that is not its own. Reads there must
//! return all ones and writes must vanish (as Xen treats memory nobody backs for a PVH
//! guest): never another domain's or the hypervisor's bytes. Then it executes there,
//! which oxen cannot emulate: it must crash the domain on that EPT violation;
//! surviving is a failure.
//!
//! Command line: `mode=outside` (the first bytes past the end of RAM) or
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
            execute(0, ram_end);
        }
        Some("hypervisor") => {
            for (slot, addr) in [(1, 0x1_0000_0000u64), (2, 0xfee0_0000)] {
                if addr < ram_end {
                    println!("isolation: note: {addr:#x} is below the end of RAM {ram_end:#x}");
                }
                touch(slot, addr, true);
            }
            execute(1, 0x1_0000_0000);
        }
        other => panic!("isolation: need mode=outside or mode=hypervisor, got {other:?}"),
    }
}

/// Reads `paddr` in every width (all ones), writes it and reads again (still all ones:
/// the write went nowhere), through the window mapping.
fn touch(slot: usize, paddr: u64, uncached: bool) {
    // SAFETY: the slot is used only here; the mapping is a plain 2 MiB page.
    let p = unsafe { mm::map_phys(slot, paddr, uncached) };
    println!("isolation: reading {paddr:#x} (outside my memory)");
    // SAFETY: the point of the test: memory nobody backs reads as all ones.
    let (b, w, d, q) = unsafe {
        (
            core::ptr::read_volatile(p),
            core::ptr::read_volatile(p.add(2).cast::<u16>()),
            core::ptr::read_volatile(p.add(4).cast::<u32>()),
            core::ptr::read_volatile(p.add(8).cast::<u64>()),
        )
    };
    if (b, w, d, q) != (0xff, 0xffff, 0xffff_ffff, u64::MAX) {
        panic!("isolation: FAIL reading {paddr:#x} gave {b:#x} {w:#x} {d:#x} {q:#x}, not all ones");
    }
    // SAFETY: as above; the write must go nowhere.
    unsafe { core::ptr::write_volatile(p.add(8).cast::<u64>(), 0x1234_5678_9abc_def0) };
    // SAFETY: as above.
    let again = unsafe { core::ptr::read_volatile(p.add(8).cast::<u64>()) };
    if again != u64::MAX {
        panic!("isolation: FAIL a write to {paddr:#x} stuck ({again:#x})");
    }
    println!("isolation: {paddr:#x} reads all ones and drops writes");
}

/// Jumps to guest-physical `paddr` (through the window mapping of `slot`): an
/// instruction fetch from memory nobody backs, which oxen must refuse.
fn execute(slot: usize, paddr: u64) -> ! {
    // SAFETY: the slot was mapped by `touch`; the jump must never return (oxen crashes
    // the domain on the fetch).
    let p = unsafe { mm::map_phys(slot, paddr, false) };
    println!("isolation: executing at {paddr:#x} (outside my memory)");
    // SAFETY: as above.
    let f: extern "C" fn() = unsafe { core::mem::transmute(p) };
    f();
    panic!("isolation: FAIL survived executing at {paddr:#x}");
}
