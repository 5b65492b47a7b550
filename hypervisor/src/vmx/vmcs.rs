//! VMCS access: VMPTRLD, VMCLEAR, VMREAD and VMWRITE, as thin safe wrappers.
//!
//! Every wrapper runs in VMX root operation (VMXON is done on every CPU before any
//! domain exists). A failing VMREAD/VMWRITE means oxen used a wrong encoding: a bug in
//! the hypervisor, so it panics with the field.

use core::arch::asm;

use oxen_core::vmcs::field;

/// Checks RFLAGS after a VMX instruction: CF or ZF set means it failed.
fn failed(rflags: u64) -> bool {
    rflags & 0x41 != 0
}

/// Makes the VMCS at `phys` current on this CPU.
pub fn load(phys: u64) {
    let rflags: u64;
    // SAFETY: `phys` is a VMCS region oxen allocated and initialised with the revision
    // id; VMPTRLD only makes it current.
    unsafe {
        asm!("vmptrld qword ptr [{p}]", "pushfq", "pop {f}", p = in(reg) &phys, f = out(reg) rflags);
    }
    assert!(!failed(rflags), "VMPTRLD {phys:#x} failed");
}

/// Flushes the VMCS at `phys` to memory and marks it clear (not launched).
pub fn clear(phys: u64) {
    let rflags: u64;
    // SAFETY: as in `load`.
    unsafe {
        asm!("vmclear qword ptr [{p}]", "pushfq", "pop {f}", p = in(reg) &phys, f = out(reg) rflags);
    }
    assert!(!failed(rflags), "VMCLEAR {phys:#x} failed");
}

/// Reads a field of the current VMCS.
#[inline(always)]
pub fn read(f: u32) -> u64 {
    let value: u64;
    // SAFETY: VMREAD reads the current VMCS into a register; no memory is touched. A
    // failure (CF or ZF set) jumps to the label, which does not return.
    unsafe {
        asm!(
            "vmread {v}, {f}",
            "jbe {fail}",
            f = in(reg) u64::from(f),
            v = out(reg) value,
            fail = label { failed_access("VMREAD", f) },
            options(nomem, nostack),
        );
    }
    value
}

/// Writes a field of the current VMCS.
#[inline(always)]
pub fn write(f: u32, value: u64) {
    // SAFETY: VMWRITE changes the current VMCS only; what the value means for the next
    // VM entry is the caller's business (an invalid combination fails the entry, which
    // oxen reports as the domain's error). A failure jumps to the label, which does not
    // return.
    unsafe {
        asm!(
            "vmwrite {f}, {v}",
            "jbe {fail}",
            f = in(reg) u64::from(f),
            v = in(reg) value,
            fail = label { failed_access("VMWRITE", f) },
            options(nostack),
        );
    }
}

/// A VMREAD or VMWRITE failed: oxen used an encoding the CPU does not have.
#[cold]
#[inline(never)]
fn failed_access(what: &str, f: u32) -> ! {
    panic!("{what} of field {f:#x} failed")
}

/// The VM-instruction error of the current VMCS (after a failed entry).
pub fn instruction_error() -> u64 {
    read(field::VM_INSTRUCTION_ERROR)
}

/// Invalidates EPT-derived translations for every EPTP (INVEPT all-context).
pub fn invept_all() {
    let descriptor = [0u64; 2];
    // SAFETY: INVEPT type 2 (all-context) reads the 16-byte descriptor (ignored for this
    // type) and only drops cached translations.
    unsafe {
        asm!("invept {t}, [{d}]", t = in(reg) 2u64, d = in(reg) &descriptor, options(nostack))
    };
}
