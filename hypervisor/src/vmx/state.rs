//! The memory a vCPU's state lives in while it is not on a CPU: its VMCS region and its
//! FPU/SIMD save area, each one frame owned by its value (so their safe methods can only
//! ever touch frames of their own).

use oxen_core::frames::FrameError;

use super::vmcs;
use crate::arch::{cpu, paging};
use crate::mm::frames;

/// A VMCS region.
pub struct VmcsRegion(u64);

impl VmcsRegion {
    /// A zeroed region.
    pub fn new() -> Result<Self, FrameError> {
        frames::alloc_zeroed(1).map(VmcsRegion)
    }

    /// Physical address (what VMPTRLD and VMCLEAR take).
    pub fn phys(&self) -> u64 {
        self.0
    }

    /// Writes the revision id into a region not yet used, clears it and makes it
    /// current on this CPU.
    pub fn init_and_load(&mut self, revision: u32) {
        // SAFETY: the frame is this region's own (allocated in `new`, freed only by
        // `free`, which consumes it), mapped by the window; its first word is the
        // revision id.
        unsafe {
            paging::phys_to_virt(self.0)
                .as_mut_ptr::<u32>()
                .write_volatile(revision)
        };
        vmcs::clear(self.0);
        vmcs::load(self.0);
    }

    /// Gives the frame back (the region must be clear on every CPU).
    pub fn free(self) {
        let _ = frames::free_run(self.0, 1);
    }
}

/// A vCPU's FPU/SIMD state while it is off the CPU.
pub struct FpuArea(u64);

impl FpuArea {
    /// The initial state: every component absent from the header (XRSTOR puts it in its
    /// reset state), MXCSR at its reset value 0x1f80 (offset 24).
    pub fn new() -> Result<Self, FrameError> {
        let f = frames::alloc_zeroed(1)?;
        // SAFETY: the frame was just allocated to us and the window maps it.
        unsafe {
            paging::phys_to_virt(f)
                .as_mut_ptr::<u8>()
                .add(24)
                .cast::<u32>()
                .write_volatile(0x1f80)
        };
        Ok(FpuArea(f))
    }

    /// Saves this CPU's FPU/SIMD state here (XCR0 is left at the host's mask).
    pub fn save(&mut self) {
        // SAFETY: the area is this value's own page-aligned 4 KiB frame.
        unsafe { cpu::save_fpu(paging::phys_to_virt(self.0).as_mut_ptr()) };
    }

    /// Loads the state saved here, then XCR0 = `xcr0` if it is a valid value for this
    /// CPU (`oxen_core::cpuid::xcr0_valid`, the rule XSETBV exits are checked by), else
    /// x87 alone, as a reset leaves it.
    pub fn restore(&self, xcr0: u64) {
        let xcr0 = if oxen_core::cpuid::xcr0_valid(xcr0, cpu::fpu_mask()) {
            xcr0
        } else {
            1
        };
        // SAFETY: the area is this value's own frame, holding its initial image or one
        // `save` wrote; `xcr0` was checked above.
        unsafe { cpu::restore_fpu(paging::phys_to_virt(self.0).as_ptr(), xcr0) };
    }

    /// Gives the frame back.
    pub fn free(self) {
        let _ = frames::free_run(self.0, 1);
    }
}
