//! The hypervisor heap: a `linked_list_allocator` over frames taken at boot.

use linked_list_allocator::LockedHeap;
use oxen_core::frames::{FRAME_SIZE, FrameError};

use super::frames;
use crate::arch::paging;

/// Heap size taken at boot.
pub const HEAP_SIZE: u64 = 4 << 20;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Takes `HEAP_SIZE` of contiguous frames and hands them to the allocator.
pub fn init() -> Result<(), FrameError> {
    let phys = frames::alloc_run(HEAP_SIZE / FRAME_SIZE, FRAME_SIZE, u64::MAX)?;
    let start = paging::phys_to_virt(phys).as_mut_ptr::<u8>();
    // SAFETY: the frames are ours alone from now on and mapped by the physical window.
    unsafe { HEAP.lock().init(start, HEAP_SIZE as usize) };
    Ok(())
}

/// Bytes of heap in use.
pub fn used() -> usize {
    HEAP.lock().used()
}
