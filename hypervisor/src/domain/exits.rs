//! VM-exit dispatch: one handler per basic exit reason. A handler returns what the vCPU
//! does next; anything unexpected crashes the domain with a full dump, never the
//! hypervisor.
#![deny(unsafe_code)]

use alloc::format;
use alloc::string::String;

use oxen_core::cpuid::{self, Regs};
use oxen_core::vmcs::{CrAccess, EptViolation, IoAccess, StringIo, field, inject, reason};
use oxen_core::vmx::ctl;

use super::vcpu::{CR4_HOST_OWNED, CR4_VMXE, Vcpu, guest_cr0};
use super::{DomainState, hypercall, lifecycle};
use crate::arch::{cpu, time};
use crate::vmx::vmcs;

/// What happens after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Re-enter the guest.
    Resume,
    /// Return to the pCPU's loop (an interrupt or timer: something may be due).
    Reschedule,
    /// The vCPU gives up the pCPU (`SCHEDOP_yield`).
    Yield,
    /// The vCPU waits for a wake (HLT, `SCHEDOP_block`).
    Block,
    /// The vCPU waits in `SCHEDOP_poll` (for an event or its timeout).
    Poll,
    /// The domain is finished (shut down or crashed).
    Finished,
}

/// Handles the exit the current VMCS records.
pub fn handle(vcpu: &mut Vcpu) -> Next {
    vcpu.exits += 1;
    if !vcpu.domain.running() {
        // Another vCPU ended the domain: this one stops here, whatever it was doing
        // (a hypercall of a dying domain would create state that outlives it).
        return Next::Finished;
    }
    let full = vmcs::read(field::EXIT_REASON) as u32;
    let basic = (full & 0xffff) as u16;
    if let Some(n) = vcpu.exit_reasons.get_mut(usize::from(basic)) {
        *n += 1;
    }
    if full & (1 << 31) != 0 {
        return crash(
            vcpu,
            format!(
                "VM entry failed: {} (exit reason {full:#x})",
                oxen_core::vmcs::reason_name(basic)
            ),
        );
    }
    redeliver_interrupted_event();
    match basic {
        reason::EXTERNAL_INTERRUPT => {
            // The interrupt is still pending at the local APIC: take it through the IDT.
            x86_64::instructions::interrupts::enable();
            core::hint::spin_loop();
            x86_64::instructions::interrupts::disable();
            Next::Reschedule
        }
        reason::EXCEPTION_OR_NMI => exception_or_nmi(vcpu),
        reason::INTERRUPT_WINDOW => {
            // The guest can take the upcall now; the next entry injects it.
            set_interrupt_window(false);
            Next::Resume
        }
        reason::PREEMPTION_TIMER => Next::Reschedule,
        reason::TRIPLE_FAULT => crash(vcpu, "triple fault".into()),
        reason::CPUID => cpuid(vcpu),
        reason::HLT => {
            vcpu.skip_instruction();
            if vmcs::read(field::GUEST_RFLAGS) & RFLAGS_IF != 0 {
                return Next::Block;
            }
            // Nothing can end a HLT with interrupts off: the vCPU goes down, as in
            // Xen (Linux's `poweroff -f` and every "halt forever" end this way).
            let Some(slot) = vcpu.domain.vcpu(u64::from(vcpu.id)) else {
                return Next::Block;
            };
            match lifecycle::vcpu_down(&vcpu.domain, slot, time::now()) {
                lifecycle::Down::LastOne => Next::Finished,
                lifecycle::Down::Down => Next::Reschedule,
            }
        }
        reason::RDPMC => {
            // No performance counters are offered (CPUID leaf 0xA is empty): #GP, as Xen.
            vcpu.inject_gp();
            Next::Resume
        }
        reason::MONITOR | reason::MWAIT => {
            // CPUID hides MONITOR/MWAIT: #UD, as Xen.
            vcpu.inject_ud();
            Next::Resume
        }
        reason::PAUSE => {
            // PAUSE-loop exiting: the vCPU spins on a lock whose holder may not be
            // running; give the pCPU away (the PAUSE itself has done nothing yet).
            vcpu.skip_instruction();
            Next::Yield
        }
        reason::INVD | reason::WBINVD => {
            // Caches are coherent for guests; nothing to write back on their behalf.
            vcpu.skip_instruction();
            Next::Resume
        }
        reason::VMCALL => hypercall::dispatch(vcpu),
        reason::VMCLEAR..=reason::VMXON
        | reason::INVEPT
        | reason::INVVPID
        | reason::VMFUNC
        | reason::GETSEC => {
            // VMX is hidden from guests.
            vcpu.inject_ud();
            Next::Resume
        }
        reason::CR_ACCESS => cr_access(vcpu),
        reason::IO_INSTRUCTION => io(vcpu),
        reason::RDMSR => rdmsr(vcpu),
        reason::WRMSR => wrmsr(vcpu),
        reason::XSETBV => xsetbv(vcpu),
        reason::EPT_VIOLATION => {
            let q = EptViolation::decode(vmcs::read(field::EXIT_QUALIFICATION));
            let gpa = vmcs::read(field::GUEST_PHYSICAL_ADDRESS);
            let backed = vcpu.domain.p2m_lookup(gpa >> 12).is_some();
            let unbacked = !backed && gpa >> vcpu.domain.phys_bits() == 0;
            if unbacked && q.is_data_access() {
                return unbacked_mmio(vcpu, gpa);
            }
            let linear = if q.linear_valid {
                format!(", linear {:#x}", vmcs::read(field::GUEST_LINEAR_ADDRESS))
            } else {
                String::new()
            };
            let what = if backed {
                "not permitted"
            } else {
                "outside its memory"
            };
            crash(
                vcpu,
                format!(
                    "EPT violation: {} at guest-physical {gpa:#x} ({what}{linear})",
                    q.kind()
                ),
            )
        }
        reason::EPT_MISCONFIG => {
            let gpa = vmcs::read(field::GUEST_PHYSICAL_ADDRESS);
            crash(
                vcpu,
                format!("EPT misconfiguration at guest-physical {gpa:#x}"),
            )
        }
        other => crash(
            vcpu,
            format!(
                "unhandled exit {other} ({}), qualification {:#x}",
                oxen_core::vmcs::reason_name(other),
                vmcs::read(field::EXIT_QUALIFICATION)
            ),
        ),
    }
}

/// If this exit interrupted the delivery of an event through the guest's IDT (an EPT
/// violation on the guest's stack, an interrupt during an injection), sets the same
/// event up for the next entry so that it is not lost, as the SDM prescribes (Vol. 3,
/// 28.2.4). An exit handler that injects something of its own overwrites it; the exits
/// that can interrupt a delivery are not instructions and inject nothing.
fn redeliver_interrupted_event() {
    let Some(info) = inject::redeliver(vmcs::read(field::IDT_VECTORING_INFO) as u32) else {
        return;
    };
    inject_again(info, field::IDT_VECTORING_ERROR_CODE);
}

/// Sets up the event `info` for the next entry as the exit reported it: its error code
/// from the exit field `error_code`, the exit's instruction length for software events.
fn inject_again(info: u32, error_code: u32) {
    vmcs::write(field::ENTRY_INTERRUPTION_INFO, u64::from(info));
    if inject::has_error_code(info) {
        vmcs::write(field::ENTRY_EXCEPTION_ERROR_CODE, vmcs::read(error_code));
    }
    if inject::needs_length(info) {
        vmcs::write(
            field::ENTRY_INSTRUCTION_LENGTH,
            vmcs::read(field::EXIT_INSTRUCTION_LENGTH),
        );
    }
}

/// Crashes the domain, logging the reason and the vCPU state.
pub fn crash(vcpu: &Vcpu, why: String) -> Next {
    let dump = vcpu.dump();
    vcpu.domain.finish(DomainState::Crashed(why));
    log::error!(
        "domain {} ({}) vcpu{}: {dump}",
        vcpu.domain.id,
        vcpu.domain.name,
        vcpu.id
    );
    Next::Finished
}

fn exception_or_nmi(vcpu: &mut Vcpu) -> Next {
    let info = vmcs::read(field::EXIT_INTERRUPTION_INFO);
    let vector = info & 0xff;
    let kind = (info >> 8) & 7;
    if kind == 2 && vector == 2 {
        // An NMI for the host: the only sender is a panicking CPU.
        if crate::panicking() {
            cpu::halt_forever();
        }
        return Next::Resume;
    }
    // #DB and #AC are intercepted only so that a guest cannot make the CPU deliver them
    // forever without an exit (CVE-2015-8104, CVE-2015-5307): each is handed back.
    let Some(entry) = inject::reflect(info as u32) else {
        return crash(vcpu, format!("unexpected exception exit, vector {vector}"));
    };
    if vector == 1 && kind == 3 {
        // A debug trap or fault: the CPU left DR6 to us (ICEBP, type 5, sets nothing).
        let q = vmcs::read(field::EXIT_QUALIFICATION);
        cpu::set_dr6(inject::debug_dr6(cpu::dr6(), q));
        // As on a native #DB, general detect ends with DR7.GD clear.
        let dr7 = vmcs::read(field::GUEST_DR7);
        vmcs::write(field::GUEST_DR7, dr7 & !(1 << 13));
    }
    inject_again(entry, field::EXIT_INTERRUPTION_ERROR_CODE);
    Next::Resume
}

fn cpuid(vcpu: &mut Vcpu) -> Next {
    let leaf = vcpu.regs.rax as u32;
    let subleaf = vcpu.regs.rcx as u32;
    let h = cpu::cpuid(leaf, subleaf);
    let host = Regs {
        eax: h.eax,
        ebx: h.ebx,
        ecx: h.ecx,
        edx: h.edx,
    };
    let who = cpuid::Asker {
        vcpu: vcpu.id,
        domid: vcpu.domain.id,
        tsc_hz: crate::arch::serial::tsc_hz(),
        xcr0_allowed: cpu::fpu_mask(),
        xsave_size: cpu::xsave_size(),
        invpcid: super::vcpu::INVPCID.load(core::sync::atomic::Ordering::Relaxed),
    };
    let mut r = cpuid::guest_view(leaf, subleaf, host, who);
    if leaf == 1 {
        // OSXSAVE mirrors the guest's own CR4.OSXSAVE, not the host's.
        let osxsave = vmcs::read(field::GUEST_CR4) & (1 << 18) != 0;
        r.ecx = (r.ecx & !(1 << 27)) | if osxsave { 1 << 27 } else { 0 };
    }
    vcpu.regs.rax = u64::from(r.eax);
    vcpu.regs.rbx = u64::from(r.ebx);
    vcpu.regs.rcx = u64::from(r.ecx);
    vcpu.regs.rdx = u64::from(r.edx);
    vcpu.skip_instruction();
    Next::Resume
}

/// General register `n` as an instruction of the guest's current mode reads it: the
/// low 32 bits outside 64-bit mode (the upper half is undefined there).
fn gpr(vcpu: &Vcpu, n: u8) -> u64 {
    let v = if n == 4 {
        vmcs::read(field::GUEST_RSP)
    } else {
        vcpu.regs.get(n)
    };
    if vcpu.long_mode() { v } else { v & 0xffff_ffff }
}

fn set_gpr(vcpu: &mut Vcpu, n: u8, value: u64) {
    if n == 4 {
        vmcs::write(field::GUEST_RSP, value);
    } else {
        vcpu.regs.set(n, value);
    }
}

/// RFLAGS.IF: the guest takes maskable interrupts.
const RFLAGS_IF: u64 = 1 << 9;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// Keeps EFER.LMA and the "IA-32e mode guest" entry control in step with LME and PG.
fn update_long_mode(cr0: u64) {
    let efer = vmcs::read(field::GUEST_IA32_EFER);
    let long = efer & EFER_LME != 0 && cr0 & (1 << 31) != 0;
    let efer = if long {
        efer | EFER_LMA
    } else {
        efer & !EFER_LMA
    };
    vmcs::write(field::GUEST_IA32_EFER, efer);
    if long {
        // VM entry into IA-32e mode wants TR to be a busy 64-bit TSS. A vCPU that came
        // up from real mode (a start-up IPI: Linux's trampoline) still has the 16-bit
        // TSS of reset, which only matters once it loads its own TR: retype it, as the
        // processor itself never checks TR when paging turns on.
        let tr = vmcs::read(field::GUEST_TR_ACCESS_RIGHTS);
        if tr & 0xf != 0xb {
            vmcs::write(field::GUEST_TR_ACCESS_RIGHTS, (tr & !0xf) | 0xb);
        }
    }
    let entry = vmcs::read(field::ENTRY_CONTROLS);
    let mode = u64::from(ctl::entry::IA32E_MODE_GUEST);
    vmcs::write(
        field::ENTRY_CONTROLS,
        if long { entry | mode } else { entry & !mode },
    );
}

fn cr_access(vcpu: &mut Vcpu) -> Next {
    match CrAccess::decode(vmcs::read(field::EXIT_QUALIFICATION)) {
        CrAccess::MovTo { cr: 0, gpr: g } => {
            let value = gpr(vcpu, g);
            // As on hardware, #GP for: PG without PE; NW without CD; clearing PG in
            // 64-bit mode; PG with EFER.LME but without CR4.PAE; bits 63:32 set.
            let pg = value & (1 << 31) != 0;
            let lme = vmcs::read(field::GUEST_IA32_EFER) & EFER_LME != 0;
            let pae = vmcs::read(field::GUEST_CR4) & (1 << 5) != 0;
            if (pg && value & 1 == 0)
                || (value & (1 << 29) != 0 && value & (1 << 30) == 0)
                || (!pg && vcpu.long_mode())
                || (pg && lme && !pae)
                || value >> 32 != 0
            {
                vcpu.inject_gp();
                return Next::Resume;
            }
            vmcs::write(field::CR0_READ_SHADOW, value);
            vmcs::write(field::GUEST_CR0, guest_cr0(value));
            update_long_mode(value);
        }
        CrAccess::MovTo { cr: 4, gpr: g } => {
            let value = gpr(vcpu, g);
            if value & CR4_HOST_OWNED != 0 {
                // VMX, PKE, CET, LA57 and the rest: not offered (CPUID hides them).
                vcpu.inject_gp();
                return Next::Resume;
            }
            vmcs::write(field::CR4_READ_SHADOW, value);
            vmcs::write(field::GUEST_CR4, value | CR4_VMXE);
        }
        CrAccess::MovTo { cr: 8, gpr: g } => {
            // The guest's task priority is its own (CR8 exits both ways); the
            // physical local APIC's TPR is never touched. Bits 63:4 are reserved.
            let value = gpr(vcpu, g);
            if value > 15 {
                vcpu.inject_gp();
                return Next::Resume;
            }
            if let Some(slot) = vcpu.domain.clone().vcpu(u64::from(vcpu.id)) {
                super::vlapic::set_cr8(slot, value);
            }
        }
        CrAccess::MovFrom { cr: 8, gpr: g } => {
            let d = vcpu.domain.clone();
            let v = d
                .vcpu(u64::from(vcpu.id))
                .map_or(0, |s| super::vlapic::cr8(s));
            set_gpr(vcpu, g, v);
        }
        CrAccess::MovFrom { cr: 3, gpr: g } => {
            let v = vmcs::read(field::GUEST_CR3);
            set_gpr(vcpu, g, v);
        }
        CrAccess::MovTo { cr: 3, gpr: g } => {
            let v = gpr(vcpu, g);
            vmcs::write(field::GUEST_CR3, v);
        }
        CrAccess::Clts => {
            let shadow = vmcs::read(field::CR0_READ_SHADOW) & !(1 << 3);
            vmcs::write(field::CR0_READ_SHADOW, shadow);
            vmcs::write(field::GUEST_CR0, vmcs::read(field::GUEST_CR0) & !(1 << 3));
        }
        other => {
            return crash(
                vcpu,
                format!("unsupported control-register access {other:?}"),
            );
        }
    }
    vcpu.skip_instruction();
    Next::Resume
}

/// Port policy: 0xE9 writes go to the domain's log; every other write is dropped and
/// every other read returns all ones (no device there). String I/O is not emulated.
fn io(vcpu: &mut Vcpu) -> Next {
    let io = IoAccess::decode(vmcs::read(field::EXIT_QUALIFICATION));
    if io.string {
        return string_io(vcpu, io);
    }
    if io.is_in {
        let mask = match io.size {
            1 => 0xff,
            2 => 0xffff,
            _ => 0xffff_ffff,
        };
        let rax = vcpu.regs.rax;
        vcpu.regs.rax = if io.size == 4 {
            mask
        } else {
            (rax & !mask) | mask
        };
    } else if io.port == 0xe9 {
        let byte = vcpu.regs.rax as u8;
        let d = vcpu.domain.clone();
        d.emit(&d.e9_line, " e9", &[byte]);
    }
    vcpu.skip_instruction();
    Next::Resume
}

/// A load or store of guest-physical memory that nothing backs (no RAM, no device: an
/// HPET or I/O APIC a PVH guest probes, say): as Xen does for a PVH guest without a
/// device model, reads return all ones and writes are dropped. The instruction is
/// decoded from the guest's RIP (`oxen_core::decode`: the MOV forms); one oxen does
/// not emulate crashes the domain with its first byte.
fn unbacked_mmio(vcpu: &mut Vcpu, gpa: u64) -> Next {
    use oxen_core::decode::{Access, decode_mov, merge_load};
    let long = vcpu.long_mode();
    let rip = vmcs::read(field::GUEST_RIP);
    let at = if long {
        rip
    } else {
        vmcs::read(field::GUEST_CS_BASE).wrapping_add(rip) & 0xffff_ffff
    };
    let mut bytes = [0u8; 15];
    let mut n = 0;
    while n < bytes.len() {
        if hypercall::copy_from_guest(vcpu, at.wrapping_add(n as u64), &mut bytes[n..n + 1])
            .is_err()
        {
            break;
        }
        n += 1;
    }
    let default32 = vmcs::read(field::GUEST_CS_ACCESS_RIGHTS) & (1 << 14) != 0;
    let m = match decode_mov(&bytes[..n], long, default32) {
        Ok(m) => m,
        Err(e) => {
            return crash(
                vcpu,
                format!(
                    "access to guest-physical {gpa:#x} (no memory there) by an instruction oxen does not emulate ({e:?}, bytes {:02x?})",
                    &bytes[..n.min(4)]
                ),
            );
        }
    };
    if let Access::Load {
        dst,
        zero_extend_to,
    } = m.access
    {
        let ones = if m.size == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * m.size)) - 1
        };
        let old = if dst.num == 4 {
            vmcs::read(field::GUEST_RSP)
        } else {
            vcpu.regs.get(dst.num)
        };
        let new = merge_load(old, ones, zero_extend_to, dst.high_byte);
        set_gpr(vcpu, dst.num, new);
    }
    vcpu.advance_rip(u64::from(m.len));
    Next::Resume
}

/// Most elements one exit moves for a string I/O instruction; a longer REP is
/// continued by the guest executing it again (RCX counts what is left).
const STRING_IO_BATCH: u64 = 4096;

/// INS/OUTS (with or without REP), with the port policy of IN/OUT: OUTS to 0xE9 goes
/// to the domain's log line (the low byte of each element), other ports drop what is
/// written; INS reads all ones. The memory operand is at the exit's guest-linear
/// address, then one element apart (backwards with RFLAGS.DF).
fn string_io(vcpu: &mut Vcpu, io: IoAccess) -> Next {
    let info = vmcs::read(field::EXIT_INSTRUCTION_INFO) as u32;
    let df = vmcs::read(field::GUEST_RFLAGS) & (1 << 10) != 0;
    let Some(plan) = StringIo::plan(io, info, vcpu.regs.rcx, df, STRING_IO_BATCH) else {
        return crash(
            vcpu,
            format!("string I/O with a reserved address size ({info:#x})"),
        );
    };
    let size = usize::from(io.size);
    let mut at = vmcs::read(field::GUEST_LINEAR_ADDRESS);
    let d = vcpu.domain.clone();
    for _ in 0..plan.count {
        let mut buf = [0xffu8; 4];
        let r = if io.is_in {
            hypercall::copy_to_guest(vcpu, at, &buf[..size])
        } else {
            hypercall::copy_from_guest(vcpu, at, &mut buf[..size])
        };
        if r.is_err() {
            return crash(
                vcpu,
                format!(
                    "string I/O on port {:#x} with an unmapped memory operand at {at:#x}",
                    io.port
                ),
            );
        }
        if !io.is_in && io.port == 0xe9 {
            d.emit(&d.e9_line, " e9", &buf[..1]);
        }
        at = at.wrapping_add(plan.stride as u64);
    }
    if io.is_in {
        vcpu.regs.rdi = plan.advance(vcpu.regs.rdi);
    } else {
        vcpu.regs.rsi = plan.advance(vcpu.regs.rsi);
    }
    vcpu.regs.rcx = plan.remaining(io, vcpu.regs.rcx);
    if plan.complete {
        vcpu.skip_instruction();
    }
    Next::Resume
}

const MSR_APIC_BASE: u32 = 0x1b;
const MSR_MISC_ENABLE: u32 = 0x1a0;
/// IA32_BIOS_SIGN_ID: the microcode revision, in bits 63:32 after a write of 0 and a
/// CPUID(1) (Linux's way to read it). Guests see revision 0, as no microcode is theirs.
const MSR_UCODE_REV: u32 = 0x8b;
const MSR_DEBUGCTL: u32 = 0x1d9;
const MSR_SYSENTER_CS: u32 = 0x174;
const MSR_SYSENTER_ESP: u32 = 0x175;
const MSR_SYSENTER_EIP: u32 = 0x176;
const MSR_PAT: u32 = 0x277;
const MSR_EFER: u32 = 0xc000_0080;
const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_HYPERCALL: u32 = oxen_abi::cpuid::HYPERCALL_MSR;

/// MSR policy: a small set is virtualised (EFER, PAT, segment bases, SYSENTER and
/// SYSCALL MSRs, TSC_AUX, the hypercall page, read-only APIC base and MISC_ENABLE);
/// every other MSR raises #GP.
fn rdmsr(vcpu: &mut Vcpu) -> Next {
    let msr = vcpu.regs.rcx as u32;
    let value = match msr {
        MSR_EFER => Some(vmcs::read(field::GUEST_IA32_EFER)),
        MSR_PAT => Some(vmcs::read(field::GUEST_IA32_PAT)),
        MSR_FS_BASE => Some(vmcs::read(field::GUEST_FS_BASE)),
        MSR_GS_BASE => Some(vmcs::read(field::GUEST_GS_BASE)),
        MSR_SYSENTER_CS => Some(vmcs::read(field::GUEST_SYSENTER_CS)),
        MSR_SYSENTER_ESP => Some(vmcs::read(field::GUEST_SYSENTER_ESP)),
        MSR_SYSENTER_EIP => Some(vmcs::read(field::GUEST_SYSENTER_EIP)),
        MSR_APIC_BASE => Some(super::vlapic::apic_base(vcpu.id)),
        m if super::vlapic::is_apic_msr(m) => {
            let d = vcpu.domain.clone();
            d.vcpu(u64::from(vcpu.id))
                .and_then(|s| super::vlapic::read(s, m))
        }
        MSR_MISC_ENABLE => Some(1),
        MSR_UCODE_REV => Some(0),
        // No branch tracing or LBRs are offered: DEBUGCTL reads 0 (Xen's policy).
        MSR_DEBUGCTL => Some(vmcs::read(field::GUEST_IA32_DEBUGCTL)),
        // KERNEL_GS_BASE, the SYSCALL MSRs and TSC_AUX (the vCPU is loaded: the CPU's);
        // any other MSR is None there.
        _ => vcpu.lazy.msr(msr, true),
    };
    match value {
        Some(v) => {
            vcpu.regs.rax = v & 0xffff_ffff;
            vcpu.regs.rdx = v >> 32;
            vcpu.skip_instruction();
        }
        None => vcpu.inject_gp(),
    }
    Next::Resume
}

fn wrmsr(vcpu: &mut Vcpu) -> Next {
    let msr = vcpu.regs.rcx as u32;
    let value = (vcpu.regs.rdx << 32) | (vcpu.regs.rax & 0xffff_ffff);
    let ok = match msr {
        MSR_EFER => {
            // SCE, LME, NXE may be set; LMA is the hardware's to decide.
            let efer = vmcs::read(field::GUEST_IA32_EFER);
            let paging = vmcs::read(field::CR0_READ_SHADOW) & (1 << 31) != 0;
            if value & !(1 | EFER_LME | EFER_LMA | (1 << 11)) != 0 {
                false
            } else if paging && (value ^ efer) & EFER_LME != 0 {
                // LME may not change while paging is on (SDM: #GP).
                false
            } else {
                let lma = vmcs::read(field::GUEST_IA32_EFER) & EFER_LMA;
                vmcs::write(field::GUEST_IA32_EFER, (value & !EFER_LMA) | lma);
                update_long_mode(vmcs::read(field::CR0_READ_SHADOW));
                true
            }
        }
        MSR_PAT => {
            let valid = (0..8).all(|i| matches!((value >> (i * 8)) & 0xff, 0 | 1 | 4 | 5 | 6 | 7));
            if valid {
                vmcs::write(field::GUEST_IA32_PAT, value);
            }
            valid
        }
        MSR_FS_BASE | MSR_GS_BASE | MSR_SYSENTER_ESP | MSR_SYSENTER_EIP
            if !cpu::canonical(value) =>
        {
            false
        }
        MSR_FS_BASE => {
            vmcs::write(field::GUEST_FS_BASE, value);
            true
        }
        MSR_GS_BASE => {
            vmcs::write(field::GUEST_GS_BASE, value);
            true
        }
        MSR_SYSENTER_CS => {
            vmcs::write(field::GUEST_SYSENTER_CS, value & 0xffff_ffff);
            true
        }
        MSR_SYSENTER_ESP => {
            vmcs::write(field::GUEST_SYSENTER_ESP, value);
            true
        }
        MSR_SYSENTER_EIP => {
            vmcs::write(field::GUEST_SYSENTER_EIP, value);
            true
        }
        MSR_HYPERCALL => hypercall::install_page(vcpu, value),
        // Only 0 is accepted: none of its features is offered.
        MSR_DEBUGCTL => value == 0,
        // As Xen: only the 0 that precedes reading the revision.
        MSR_UCODE_REV => value == 0,
        // Writes to the APIC base and MISC_ENABLE are ignored (the APIC stays enabled
        // in x2APIC mode).
        MSR_APIC_BASE | MSR_MISC_ENABLE => true,
        m if super::vlapic::is_apic_msr(m) => {
            let d = vcpu.domain.clone();
            d.vcpu(u64::from(vcpu.id))
                .is_some_and(|s| super::vlapic::write(&d, s, m, value))
        }
        // KERNEL_GS_BASE, the SYSCALL MSRs and TSC_AUX, checked and loaded in the CPU
        // while the vCPU runs (SYSCALL, SWAPGS and RDTSCP use them); any other MSR is
        // refused there.
        _ => vcpu.lazy.set_msr(msr, value, true),
    };
    if ok {
        vcpu.skip_instruction();
    } else {
        vcpu.inject_gp();
    }
    Next::Resume
}

/// XSETBV: validated against what the host supports, then loaded for the guest (the
/// hypervisor itself uses no extended state).
fn xsetbv(vcpu: &mut Vcpu) -> Next {
    let index = vcpu.regs.rcx as u32;
    let value = (vcpu.regs.rdx << 32) | (vcpu.regs.rax & 0xffff_ffff);
    // The components whose state oxen keeps per vCPU (x87, SSE, AVX, AVX-512 that the
    // host has: `fpu_mask` is already limited to CPUID leaf 0xD).
    let ok = index == 0
        && cpuid::xcr0_valid(value, cpu::fpu_mask())
        && vmcs::read(field::GUEST_CR4) & (1 << 18) != 0
        && vcpu.cpl() == 0;
    if !ok {
        vcpu.inject_gp();
        return Next::Resume;
    }
    vcpu.xcr0 = value;
    cpu::set_xcr0(value);
    vcpu.skip_instruction();
    Next::Resume
}

/// Primary processor-based control "interrupt-window exiting".
const INTERRUPT_WINDOW_EXITING: u64 = 1 << 2;

fn set_interrupt_window(on: bool) {
    let c = vmcs::read(field::PROC_BASED_CONTROLS);
    let want = if on {
        c | INTERRUPT_WINDOW_EXITING
    } else {
        c & !INTERRUPT_WINDOW_EXITING
    };
    if want != c {
        vmcs::write(field::PROC_BASED_CONTROLS, want);
    }
}

/// The current vCPU has an upcall pending: inject `vector` as an external interrupt if
/// the guest can take one now (RFLAGS.IF set, no STI/MOV SS shadow, nothing else being
/// injected), else exit as soon as it can.
/// Injects an NMI (`VCPUOP_send_nmi`) if the guest can take one on this entry: no
/// other event is being injected and it is not blocking NMIs (after an NMI, until its
/// IRET) or in an STI or MOV SS shadow. False: it stays pending for a later entry.
pub fn offer_nmi() -> bool {
    if vmcs::read(field::ENTRY_INTERRUPTION_INFO) & (1 << 31) != 0
        || vmcs::read(field::GUEST_INTERRUPTIBILITY) & 0b1011 != 0
    {
        return false;
    }
    vmcs::write(field::ENTRY_INTERRUPTION_INFO, u64::from(inject::NMI));
    true
}

/// Injects external interrupt `vector` (the upcall, or a vector of the vCPU's APIC) if
/// the guest can take one on this entry: RFLAGS.IF set, no STI or MOV SS shadow, no
/// other event being injected. Otherwise asks for an interrupt-window exit. Returns
/// whether it was injected.
pub fn offer_interrupt(vector: u8) -> bool {
    if vmcs::read(field::ENTRY_INTERRUPTION_INFO) & (1 << 31) != 0 {
        return false;
    }
    let can = vmcs::read(field::GUEST_RFLAGS) & RFLAGS_IF != 0
        && vmcs::read(field::GUEST_INTERRUPTIBILITY) & 3 == 0;
    if can {
        // Valid, type 0 (external interrupt), vector.
        vmcs::write(
            field::ENTRY_INTERRUPTION_INFO,
            (1 << 31) | u64::from(vector),
        );
        set_interrupt_window(false);
    } else {
        set_interrupt_window(true);
    }
    can
}
