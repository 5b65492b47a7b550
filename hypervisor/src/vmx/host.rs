//! The host half of a VMCS: what the CPU returns to on every VM exit, from the live
//! registers and tables of the CPU that loads the VMCS.

use core::arch::asm;

use oxen_core::vmcs::field;

use super::vmcs;
use crate::arch::cpu;

/// Host state for the current VMCS, from this CPU's live registers and tables.
pub fn write_host_state() {
    use field::*;
    let (cr0, cr3, cr4): (u64, u64, u64);
    // SAFETY: reading control registers has no side effects.
    unsafe {
        asm!("mov {}, cr0", "mov {}, cr3", "mov {}, cr4", out(reg) cr0, out(reg) cr3, out(reg) cr4, options(nomem, nostack))
    };
    vmcs::write(HOST_CR0, cr0);
    vmcs::write(HOST_CR3, cr3);
    vmcs::write(HOST_CR4, cr4);
    vmcs::write(HOST_RIP, super::entry::exit_address());
    let gdt = x86_64::instructions::tables::sgdt();
    let idt = x86_64::instructions::tables::sidt();
    vmcs::write(HOST_GDTR_BASE, gdt.base.as_u64());
    vmcs::write(HOST_IDTR_BASE, idt.base.as_u64());
    let sel = |s: x86_64::structures::gdt::SegmentSelector| u64::from(s.0 & !7);
    use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
    vmcs::write(HOST_CS_SELECTOR, sel(CS::get_reg()));
    vmcs::write(HOST_SS_SELECTOR, sel(SS::get_reg()));
    vmcs::write(HOST_DS_SELECTOR, sel(DS::get_reg()));
    vmcs::write(HOST_ES_SELECTOR, sel(ES::get_reg()));
    vmcs::write(HOST_FS_SELECTOR, 0);
    vmcs::write(HOST_GS_SELECTOR, 0);
    let tr: u16;
    // SAFETY: STR only reads the task register.
    unsafe { asm!("str {:x}", out(reg) tr, options(nomem, nostack, preserves_flags)) };
    vmcs::write(HOST_TR_SELECTOR, u64::from(tr & !7));
    vmcs::write(HOST_TR_BASE, tss_base(gdt.base.as_u64(), tr));
    vmcs::write(HOST_FS_BASE, 0);
    // SAFETY: IA32_GS_BASE exists; it holds this CPU's per-CPU pointer.
    vmcs::write(HOST_GS_BASE, unsafe { cpu::rdmsr(0xc000_0101) });
    vmcs::write(HOST_SYSENTER_CS, 0);
    vmcs::write(HOST_SYSENTER_ESP, 0);
    vmcs::write(HOST_SYSENTER_EIP, 0);
    // SAFETY: IA32_PAT and IA32_EFER exist on every x86_64 CPU.
    unsafe {
        vmcs::write(HOST_IA32_PAT, cpu::rdmsr(0x277));
        vmcs::write(HOST_IA32_EFER, cpu::rdmsr(0xc000_0080));
    }
}

/// The base address in the 16-byte TSS descriptor at `selector` of the GDT at `gdt`.
fn tss_base(gdt: u64, selector: u16) -> u64 {
    let at = gdt + u64::from(selector & !7);
    // SAFETY: the GDT is this CPU's live GDT and TR names a TSS descriptor in it.
    let (lo, hi) = unsafe {
        (
            core::ptr::read_volatile(at as *const u64),
            core::ptr::read_volatile((at + 8) as *const u64),
        )
    };
    ((lo >> 16) & 0xff_ffff) | (((lo >> 56) & 0xff) << 24) | ((hi & 0xffff_ffff) << 32)
}
