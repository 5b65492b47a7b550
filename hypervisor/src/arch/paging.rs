//! The hypervisor's own address space: the bootloader's page tables, the physical-memory
//! window it set up, and an uncached window for device registers.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as Flags, PhysFrame,
    Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use crate::mm::frames;

static PHYS_OFFSET: AtomicU64 = AtomicU64::new(0);

/// Serialises every change to the page tables.
static TABLES: Mutex<()> = Mutex::new(());

/// The next free virtual address of the device window (0 until `init`).
static MMIO_NEXT: AtomicU64 = AtomicU64::new(0);

/// Records where the bootloader mapped physical memory and picks an unused top-level
/// slot in the upper half for device mappings.
pub fn init(phys_offset: u64) {
    PHYS_OFFSET.store(phys_offset, Ordering::Relaxed);
    let _guard = TABLES.lock();
    let l4 = active_l4();
    let slot = (256..511)
        .rev()
        .find(|&i| l4[i].is_unused())
        .expect("a free top-level page-table slot");
    // Sign-extended address of the slot: bits 47..39 = slot, upper bits all ones.
    let base = 0xffff_0000_0000_0000 | ((slot as u64) << 39);
    MMIO_NEXT.store(base, Ordering::Relaxed);
}

/// The virtual address of physical address `phys` in the physical-memory window.
pub fn phys_to_virt(phys: u64) -> VirtAddr {
    VirtAddr::new(PHYS_OFFSET.load(Ordering::Relaxed) + phys)
}

fn active_l4() -> &'static mut PageTable {
    let (frame, _) = Cr3::read();
    let ptr = phys_to_virt(frame.start_address().as_u64()).as_mut_ptr::<PageTable>();
    // SAFETY: CR3 names the live top-level table, which the physical-memory window maps;
    // every caller holds TABLES, so no two references to it are used at once.
    unsafe { &mut *ptr }
}

fn mapper() -> OffsetPageTable<'static> {
    // SAFETY: the bootloader maps all physical memory at PHYS_OFFSET, which is what
    // OffsetPageTable requires; callers hold TABLES.
    unsafe {
        OffsetPageTable::new(
            active_l4(),
            VirtAddr::new(PHYS_OFFSET.load(Ordering::Relaxed)),
        )
    }
}

/// Hands page-table frames to the `x86_64` mapper.
struct TableFrames;

// SAFETY: frames come from the global allocator, are unused and are never handed out
// twice.
unsafe impl FrameAllocator<Size4KiB> for TableFrames {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        let phys = frames::alloc().ok()?;
        Some(PhysFrame::containing_address(PhysAddr::new(phys)))
    }
}

fn map_page(page: Page, phys: u64, flags: Flags) {
    let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(phys));
    // SAFETY: the page is in a range oxen owns (the device window or a page checked to be
    // unmapped by the caller) and the frame is device memory or oxen's own.
    let flush = unsafe { mapper().map_to(page, frame, flags, &mut TableFrames) };
    flush.expect("mapping a page").flush();
}

/// Maps `size` bytes of device registers at `phys` uncached; returns the address of
/// `phys` itself.
pub fn map_mmio(phys: u64, size: u64) -> VirtAddr {
    let _guard = TABLES.lock();
    let first = phys & !0xfff;
    let pages = (phys + size - first).div_ceil(4096);
    let base = MMIO_NEXT.fetch_add(pages * 4096, Ordering::Relaxed);
    assert!(base != 0, "paging::init runs before map_mmio");
    let flags = Flags::PRESENT
        | Flags::WRITABLE
        | Flags::NO_CACHE
        | Flags::WRITE_THROUGH
        | Flags::NO_EXECUTE;
    for i in 0..pages {
        let page = Page::containing_address(VirtAddr::new(base + i * 4096));
        map_page(page, first + i * 4096, flags);
    }
    VirtAddr::new(base + (phys - first))
}

/// Maps physical page `phys` at the same virtual address (for the AP trampoline).
/// Returns false if that virtual address is already in use.
pub fn map_identity(phys: u64) -> bool {
    let _guard = TABLES.lock();
    let virt = VirtAddr::new(phys);
    if mapper().translate_addr(virt).is_some() {
        return false;
    }
    map_page(
        Page::containing_address(virt),
        phys,
        Flags::PRESENT | Flags::WRITABLE,
    );
    true
}

/// Removes an identity mapping made by [`map_identity`].
pub fn unmap_identity(phys: u64) {
    let _guard = TABLES.lock();
    let page: Page<Size4KiB> = Page::containing_address(VirtAddr::new(phys));
    if let Ok((_, flush)) = mapper().unmap(page) {
        flush.flush();
    }
}

/// The physical address of the live top-level page table.
pub fn active_l4_phys() -> u64 {
    Cr3::read().0.start_address().as_u64()
}

/// Whether `virt` is mapped (for ACPI tables outside the physical-memory window).
pub fn is_mapped(virt: VirtAddr) -> bool {
    let _guard = TABLES.lock();
    mapper().translate_addr(virt).is_some()
}
