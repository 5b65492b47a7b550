//! Memory beyond the boot identity map.
//!
//! The boot page tables identity-map the first GiB. The last PDPT slot (virtual
//! `0x7f_c000_0000`, 511 GiB) points at a "window" page directory; [`map_phys`] maps any
//! 2 MiB-aligned physical region there so a guest can touch addresses above 1 GiB.

/// Virtual base of the window.
pub const WINDOW_BASE: u64 = 511 << 30;
const PAGE_2M: u64 = 2 << 20;

unsafe extern "C" {
    static mut rt_pd_window: [u64; 512];
}

/// Maps the 2 MiB physical page containing `paddr` into window slot `slot` (0..512) and
/// returns a pointer to `paddr`'s byte in it. `uncached` sets PCD|PWT (for MMIO).
///
/// # Safety
/// Remapping a slot invalidates pointers previously returned for it.
pub unsafe fn map_phys(slot: usize, paddr: u64, uncached: bool) -> *mut u8 {
    assert!(slot < 512);
    let frame = paddr & !(PAGE_2M - 1);
    let flags = 0x83 | if uncached { 0x18 } else { 0 };
    let vaddr = WINDOW_BASE + slot as u64 * PAGE_2M;
    // SAFETY: single vCPU; the window PD is only used through this function. The
    // INVLPG drops any stale translation of the slot.
    unsafe {
        (&raw mut rt_pd_window)
            .cast::<u64>()
            .add(slot)
            .write_volatile(frame | flags);
        core::arch::asm!("invlpg [{}]", in(reg) vaddr, options(nostack));
    }
    (vaddr + (paddr - frame)) as *mut u8
}
