//! Per-CPU GDT and TSS, with separate interrupt stacks for double faults and NMIs.

use alloc::boxed::Box;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (0-based) of the double-fault stack.
pub const DOUBLE_FAULT_IST: u16 = 0;
/// IST slot (0-based) of the NMI stack.
pub const NMI_IST: u16 = 1;

const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; IST_STACK_SIZE]);

fn new_stack_top() -> VirtAddr {
    let stack: &'static mut Stack = Box::leak(Box::new(Stack([0; IST_STACK_SIZE])));
    VirtAddr::from_ptr(stack) + IST_STACK_SIZE as u64
}

/// Builds and loads this CPU's GDT and TSS; reloads every segment register.
pub fn load_for_this_cpu() {
    let tss: &'static mut TaskStateSegment = Box::leak(Box::new(TaskStateSegment::new()));
    tss.interrupt_stack_table[usize::from(DOUBLE_FAULT_IST)] = new_stack_top();
    tss.interrupt_stack_table[usize::from(NMI_IST)] = new_stack_top();
    let tss: &'static TaskStateSegment = tss;

    let gdt: &'static mut GlobalDescriptorTable = Box::leak(Box::new(GlobalDescriptorTable::new()));
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    let gdt: &'static GlobalDescriptorTable = gdt;
    gdt.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded, which lives
    // forever; code is a 64-bit ring-0 segment, data a writable ring-0 segment, and the
    // TSS descriptor points at a TSS that lives forever.
    unsafe {
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(data);
        ES::set_reg(data);
        load_tss(tss_sel);
    }
}
