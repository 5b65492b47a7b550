//! The VM entry/exit stub: loads the guest's general registers, enters the guest, and
//! on exit stores them back and returns to Rust as if from a call.

use core::arch::global_asm;

/// A vCPU's general-purpose registers (RSP and RIP live in the VMCS).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestRegs {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

impl GuestRegs {
    /// Register `n` in the SDM's numbering (0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP, 5 RBP, …).
    /// RSP (4) is not here: the caller reads it from the VMCS.
    pub fn get(&self, n: u8) -> u64 {
        match n {
            0 => self.rax,
            1 => self.rcx,
            2 => self.rdx,
            3 => self.rbx,
            5 => self.rbp,
            6 => self.rsi,
            7 => self.rdi,
            8 => self.r8,
            9 => self.r9,
            10 => self.r10,
            11 => self.r11,
            12 => self.r12,
            13 => self.r13,
            14 => self.r14,
            15 => self.r15,
            _ => 0,
        }
    }

    /// Sets register `n` (RSP, 4, is ignored: see `get`).
    pub fn set(&mut self, n: u8, value: u64) {
        let slot = match n {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            15 => &mut self.r15,
            _ => return,
        };
        *slot = value;
    }
}

// oxen_vmx_run(regs: *mut GuestRegs, launched: u64, host_rsp: *mut u64) -> u64
//   returns 0 after a VM exit, or RFLAGS (CF/ZF set) if VMLAUNCH/VMRESUME failed.
// The host RSP in the VMCS points at the saved regs pointer, so the exit path
// (HOST_RIP = oxen_vmx_exit, written with the rest of the host state) finds it at
// [rsp]. `*host_rsp` is the HOST_RSP the VMCS holds: the field is written only when
// the stack moved or the VMCS is being launched (its first entry on this pCPU).
global_asm!(
    r#"
    .global oxen_vmx_run
    .global oxen_vmx_exit
oxen_vmx_run:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    push rdi
    test rsi, rsi
    jz 1f
    cmp rsp, [rdx]
    je 5f
1:  mov [rdx], rsp
    mov rax, 0x6c14
    vmwrite rax, rsp
5:  test rsi, rsi
    mov rax, [rdi + 0x00]
    mov rcx, [rdi + 0x08]
    mov rdx, [rdi + 0x10]
    mov rbx, [rdi + 0x18]
    mov rbp, [rdi + 0x20]
    mov rsi, [rdi + 0x28]
    mov r8,  [rdi + 0x38]
    mov r9,  [rdi + 0x40]
    mov r10, [rdi + 0x48]
    mov r11, [rdi + 0x50]
    mov r12, [rdi + 0x58]
    mov r13, [rdi + 0x60]
    mov r14, [rdi + 0x68]
    mov r15, [rdi + 0x70]
    mov rdi, [rdi + 0x30]
    jnz 2f
    vmlaunch
    jmp 3f
2:  vmresume
3:  pushfq
    pop rax
    jmp 4f

oxen_vmx_exit:
    push rdi
    mov rdi, [rsp + 8]
    mov [rdi + 0x00], rax
    mov [rdi + 0x08], rcx
    mov [rdi + 0x10], rdx
    mov [rdi + 0x18], rbx
    mov [rdi + 0x20], rbp
    mov [rdi + 0x28], rsi
    mov [rdi + 0x38], r8
    mov [rdi + 0x40], r9
    mov [rdi + 0x48], r10
    mov [rdi + 0x50], r11
    mov [rdi + 0x58], r12
    mov [rdi + 0x60], r13
    mov [rdi + 0x68], r14
    mov [rdi + 0x70], r15
    pop rax
    mov [rdi + 0x30], rax
    xor eax, eax
4:  pop rdi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
"#
);

unsafe extern "C" {
    fn oxen_vmx_run(regs: *mut GuestRegs, launched: u64, host_rsp: *mut u64) -> u64;
    fn oxen_vmx_exit();
}

/// Where a VM exit lands (the VMCS's HOST_RIP).
pub fn exit_address() -> u64 {
    oxen_vmx_exit as *const () as u64
}

/// Enters the guest of the current VMCS with `regs` and returns after the next VM exit
/// (`Ok`) or a failed entry (`Err(rflags)`). `host_rsp` caches the VMCS's HOST_RSP
/// field (any value before the VMCS's first launch on a pCPU).
pub fn run(regs: &mut GuestRegs, launched: bool, host_rsp: &mut u64) -> Result<(), u64> {
    // SAFETY: the current VMCS has complete host and guest state (set up by
    // `vcpu::Vcpu::init`); the stub saves and restores every callee-saved register, and
    // the exit path returns here on the stack it left from, with the guest's registers
    // written to `regs`. HOST_RIP is written with the host state.
    let rflags = unsafe { oxen_vmx_run(regs, u64::from(launched), host_rsp) };
    if rflags == 0 { Ok(()) } else { Err(rflags) }
}
