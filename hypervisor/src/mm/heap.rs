//! The hypervisor heap: `linked_list_allocator` heaps over runs of frames, the first
//! taken at boot, more from the frame allocator whenever none has room (so the number
//! of domains is bounded by memory, not by a heap size fixed at boot). A grown region
//! stays a heap region for good: what is freed in it serves later allocations.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use linked_list_allocator::Heap;
use oxen_core::frames::{FRAME_SIZE, FrameError};
use spin::Mutex;

use super::frames;
use crate::arch::paging;

/// Heap size taken at boot, and the least each growth adds.
pub const HEAP_SIZE: u64 = 4 << 20;
/// Most regions the heap can have (the first and 31 growths: at least 128 MiB).
const MAX_REGIONS: usize = 32;

struct Regions {
    heaps: [Heap; MAX_REGIONS],
    count: usize,
}

impl Regions {
    /// Adds a region of `bytes` (a multiple of the frame size) from the frame allocator.
    fn grow(&mut self, bytes: u64) -> Result<(), FrameError> {
        if self.count == MAX_REGIONS {
            return Err(FrameError::OutOfMemory {
                frames: bytes / FRAME_SIZE,
                free: 0,
            });
        }
        let phys = frames::alloc_run(bytes / FRAME_SIZE, FRAME_SIZE, u64::MAX)?;
        let start = paging::phys_to_virt(phys).as_mut_ptr::<u8>();
        // SAFETY: the frames are ours alone from now on (never given back) and mapped by
        // the physical-memory window; the region is new to this heap.
        unsafe { self.heaps[self.count].init(start, bytes as usize) };
        self.count += 1;
        Ok(())
    }

    /// An allocation, and whether the heap had to grow for it.
    fn alloc(&mut self, layout: Layout) -> (*mut u8, bool) {
        for h in &mut self.heaps[..self.count] {
            if let Ok(p) = h.allocate_first_fit(layout) {
                return (p.as_ptr(), false);
            }
        }
        // Room for the request with its alignment, and some: at least HEAP_SIZE.
        let need = (layout.size() + layout.align() + 4096) as u64;
        let bytes = need.div_ceil(FRAME_SIZE) * FRAME_SIZE;
        if self.grow(bytes.max(HEAP_SIZE)).is_err() {
            return (ptr::null_mut(), false);
        }
        let p = self.heaps[self.count - 1]
            .allocate_first_fit(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr);
        (p, true)
    }

    fn dealloc(&mut self, p: *mut u8, layout: Layout) {
        let at = p as usize;
        let Some(h) = self.heaps[..self.count]
            .iter_mut()
            .find(|h| (h.bottom() as usize..h.top() as usize).contains(&at))
        else {
            log::error!("memory: freeing {at:#x}, which no heap region holds");
            return;
        };
        // SAFETY: `p` came from `allocate_first_fit` of this region (the only one whose
        // range holds it) with this layout, as `GlobalAlloc::dealloc` promises.
        unsafe { h.deallocate(NonNull::new_unchecked(p), layout) };
    }

    fn used(&self) -> usize {
        self.heaps[..self.count].iter().map(Heap::used).sum()
    }

    fn size(&self) -> usize {
        self.heaps[..self.count].iter().map(Heap::size).sum()
    }
}

struct Growing(Mutex<Regions>);

// SAFETY: every allocation comes from one region's `allocate_first_fit` and goes back to
// the region that holds it, under one lock; regions never shrink or move.
unsafe impl GlobalAlloc for Growing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (p, grew) = self.0.lock().alloc(layout);
        if grew {
            // After the lock is gone: logging may allocate.
            let (regions, bytes) = {
                let r = self.0.lock();
                (r.count, r.size())
            };
            log::info!("memory: heap grew to {regions} regions ({bytes} bytes)");
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        self.0.lock().dealloc(p, layout)
    }
}

#[global_allocator]
static HEAP: Growing = Growing(Mutex::new(Regions {
    heaps: [const { Heap::empty() }; MAX_REGIONS],
    count: 0,
}));

/// Takes the first `HEAP_SIZE` of frames for the heap.
pub fn init() -> Result<(), FrameError> {
    HEAP.0.lock().grow(HEAP_SIZE)
}

/// Bytes of heap in use.
pub fn used() -> usize {
    HEAP.0.lock().used()
}

/// Bytes the heap has, in all its regions.
pub fn size() -> usize {
    HEAP.0.lock().size()
}
