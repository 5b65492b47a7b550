//! The global physical frame allocator, built from the bootloader's memory map.

use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use oxen_core::frames::{FRAME_SIZE, FrameBitmap, FrameError, bitmap_words};
use spin::Mutex;

use crate::arch::paging;

static FRAMES: Mutex<Option<FrameBitmap<'static>>> = Mutex::new(None);

/// Memory totals reported at boot and by benchmarks.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// Bytes the memory map called usable.
    pub usable: u64,
    /// Bytes free now.
    pub free: u64,
    /// The end of the highest usable frame.
    pub max_phys: u64,
}

/// Builds the allocator: a bitmap placed in the first usable region large enough, every
/// usable frame free except frame 0 and the bitmap's own frames.
pub fn init(regions: &MemoryRegions) {
    let usable = || {
        regions
            .iter()
            .filter(|r| r.kind == MemoryRegionKind::Usable)
    };
    let max = usable()
        .map(|r| r.end)
        .max()
        .expect("the memory map has usable memory");
    let words = bitmap_words(max);
    let bytes = (words * 8) as u64;
    let home = usable()
        .find(|r| r.start >= FRAME_SIZE && r.end - r.start >= bytes)
        .expect("a usable region large enough for the frame bitmap");
    let virt = paging::phys_to_virt(home.start).as_mut_ptr::<u64>();
    // SAFETY: the region is usable RAM that nothing else owns yet, mapped through the
    // physical-memory window; it is reserved below so the allocator never hands it out,
    // and the slice lives for the rest of the hypervisor's life.
    let bits = unsafe { core::slice::from_raw_parts_mut(virt, words) };
    let mut bitmap = FrameBitmap::new(bits);
    for r in usable() {
        bitmap.add_usable(r.start, r.end);
    }
    bitmap.reserve(0, FRAME_SIZE);
    bitmap.reserve(home.start, home.start + bytes);
    *FRAMES.lock() = Some(bitmap);
}

fn with<R>(f: impl FnOnce(&mut FrameBitmap<'static>) -> R) -> R {
    f(FRAMES.lock().as_mut().expect("frame allocator initialised"))
}

/// Allocates one frame; returns its physical address.
pub fn alloc() -> Result<u64, FrameError> {
    with(|b| b.alloc()).map(|f| f * FRAME_SIZE)
}

/// Allocates `count` contiguous frames aligned to `align` bytes, ending below `limit`.
pub fn alloc_run(count: u64, align: u64, limit: u64) -> Result<u64, FrameError> {
    let align = (align / FRAME_SIZE).max(1);
    with(|b| b.alloc_run(count, align, limit / FRAME_SIZE)).map(|f| f * FRAME_SIZE)
}

/// Returns `count` frames starting at physical address `phys`.
pub fn free_run(phys: u64, count: u64) -> Result<(), FrameError> {
    with(|b| b.free_run(phys / FRAME_SIZE, count))
}

/// Allocates `count` contiguous zeroed frames; returns the physical address.
pub fn alloc_zeroed(count: u64) -> Result<u64, FrameError> {
    let phys = alloc_run(count, FRAME_SIZE, u64::MAX)?;
    let virt = paging::phys_to_virt(phys).as_mut_ptr::<u8>();
    // SAFETY: the frames were just allocated to us and are mapped by the window.
    unsafe { core::ptr::write_bytes(virt, 0, (count * FRAME_SIZE) as usize) };
    Ok(phys)
}

/// Current totals.
pub fn stats() -> Stats {
    with(|b| Stats {
        usable: b.usable_frames() * FRAME_SIZE,
        free: b.free_frames() * FRAME_SIZE,
        max_phys: b.end_frame() * FRAME_SIZE,
    })
}

/// Allocates `count` contiguous frames with every byte `byte`; returns the address.
pub fn alloc_filled(count: u64, byte: u8) -> Result<u64, FrameError> {
    let phys = alloc_run(count, FRAME_SIZE, u64::MAX)?;
    let virt = paging::phys_to_virt(phys).as_mut_ptr::<u8>();
    // SAFETY: the frames were just allocated to us and are mapped by the window.
    unsafe { core::ptr::write_bytes(virt, byte, (count * FRAME_SIZE) as usize) };
    Ok(phys)
}

/// Allocates `count` contiguous zeroed frames aligned to `align` bytes.
pub fn alloc_zeroed_aligned(count: u64, align: u64) -> Result<u64, FrameError> {
    let phys = alloc_run(count, align, u64::MAX)?;
    let virt = paging::phys_to_virt(phys).as_mut_ptr::<u8>();
    // SAFETY: the frames were just allocated to us and are mapped by the window.
    unsafe { core::ptr::write_bytes(virt, 0, (count * FRAME_SIZE) as usize) };
    Ok(phys)
}
