//! VMCS field encodings, exit reasons and the decoding of exit information
//! (Intel SDM Vol. 3, Appendix B and C, §28.2).

/// VMCS field encodings oxen uses.
pub mod field {
    // 16-bit control, guest and host fields.
    pub const VPID: u32 = 0x0000;
    pub const GUEST_ES_SELECTOR: u32 = 0x0800;
    pub const GUEST_CS_SELECTOR: u32 = 0x0802;
    pub const GUEST_SS_SELECTOR: u32 = 0x0804;
    pub const GUEST_DS_SELECTOR: u32 = 0x0806;
    pub const GUEST_FS_SELECTOR: u32 = 0x0808;
    pub const GUEST_GS_SELECTOR: u32 = 0x080a;
    pub const GUEST_LDTR_SELECTOR: u32 = 0x080c;
    pub const GUEST_TR_SELECTOR: u32 = 0x080e;
    pub const HOST_ES_SELECTOR: u32 = 0x0c00;
    pub const HOST_CS_SELECTOR: u32 = 0x0c02;
    pub const HOST_SS_SELECTOR: u32 = 0x0c04;
    pub const HOST_DS_SELECTOR: u32 = 0x0c06;
    pub const HOST_FS_SELECTOR: u32 = 0x0c08;
    pub const HOST_GS_SELECTOR: u32 = 0x0c0a;
    pub const HOST_TR_SELECTOR: u32 = 0x0c0c;
    // 64-bit control fields.
    pub const IO_BITMAP_A: u32 = 0x2000;
    pub const IO_BITMAP_B: u32 = 0x2002;
    pub const MSR_BITMAP: u32 = 0x2004;
    pub const EPT_POINTER: u32 = 0x201a;
    // 64-bit read-only data.
    pub const GUEST_PHYSICAL_ADDRESS: u32 = 0x2400;
    // 64-bit guest and host state.
    pub const VMCS_LINK_POINTER: u32 = 0x2800;
    pub const GUEST_IA32_DEBUGCTL: u32 = 0x2802;
    pub const GUEST_IA32_PAT: u32 = 0x2804;
    pub const GUEST_IA32_EFER: u32 = 0x2806;
    pub const HOST_IA32_PAT: u32 = 0x2c00;
    pub const HOST_IA32_EFER: u32 = 0x2c02;
    // 32-bit control fields.
    pub const PIN_BASED_CONTROLS: u32 = 0x4000;
    pub const PROC_BASED_CONTROLS: u32 = 0x4002;
    pub const EXCEPTION_BITMAP: u32 = 0x4004;
    pub const CR3_TARGET_COUNT: u32 = 0x400a;
    pub const EXIT_CONTROLS: u32 = 0x400c;
    pub const EXIT_MSR_STORE_COUNT: u32 = 0x400e;
    pub const EXIT_MSR_LOAD_COUNT: u32 = 0x4010;
    pub const ENTRY_CONTROLS: u32 = 0x4012;
    pub const ENTRY_MSR_LOAD_COUNT: u32 = 0x4014;
    pub const ENTRY_INTERRUPTION_INFO: u32 = 0x4016;
    pub const ENTRY_EXCEPTION_ERROR_CODE: u32 = 0x4018;
    pub const ENTRY_INSTRUCTION_LENGTH: u32 = 0x401a;
    pub const PROC_BASED_CONTROLS2: u32 = 0x401e;
    pub const PLE_GAP: u32 = 0x4020;
    pub const PLE_WINDOW: u32 = 0x4022;
    // 32-bit read-only data.
    pub const VM_INSTRUCTION_ERROR: u32 = 0x4400;
    pub const EXIT_REASON: u32 = 0x4402;
    pub const EXIT_INTERRUPTION_INFO: u32 = 0x4404;
    pub const EXIT_INTERRUPTION_ERROR_CODE: u32 = 0x4406;
    pub const EXIT_INSTRUCTION_LENGTH: u32 = 0x440c;
    pub const IDT_VECTORING_INFO: u32 = 0x4408;
    pub const IDT_VECTORING_ERROR_CODE: u32 = 0x440a;
    pub const EXIT_INSTRUCTION_INFO: u32 = 0x440e;
    // 32-bit guest state.
    pub const GUEST_ES_LIMIT: u32 = 0x4800;
    pub const GUEST_CS_LIMIT: u32 = 0x4802;
    pub const GUEST_SS_LIMIT: u32 = 0x4804;
    pub const GUEST_DS_LIMIT: u32 = 0x4806;
    pub const GUEST_FS_LIMIT: u32 = 0x4808;
    pub const GUEST_GS_LIMIT: u32 = 0x480a;
    pub const GUEST_LDTR_LIMIT: u32 = 0x480c;
    pub const GUEST_TR_LIMIT: u32 = 0x480e;
    pub const GUEST_GDTR_LIMIT: u32 = 0x4810;
    pub const GUEST_IDTR_LIMIT: u32 = 0x4812;
    pub const GUEST_ES_ACCESS_RIGHTS: u32 = 0x4814;
    pub const GUEST_CS_ACCESS_RIGHTS: u32 = 0x4816;
    pub const GUEST_SS_ACCESS_RIGHTS: u32 = 0x4818;
    pub const GUEST_DS_ACCESS_RIGHTS: u32 = 0x481a;
    pub const GUEST_FS_ACCESS_RIGHTS: u32 = 0x481c;
    pub const GUEST_GS_ACCESS_RIGHTS: u32 = 0x481e;
    pub const GUEST_LDTR_ACCESS_RIGHTS: u32 = 0x4820;
    pub const GUEST_TR_ACCESS_RIGHTS: u32 = 0x4822;
    pub const GUEST_INTERRUPTIBILITY: u32 = 0x4824;
    pub const GUEST_ACTIVITY_STATE: u32 = 0x4826;
    pub const GUEST_SYSENTER_CS: u32 = 0x482a;
    pub const PREEMPTION_TIMER_VALUE: u32 = 0x482e;
    pub const HOST_SYSENTER_CS: u32 = 0x4c00;
    // Natural-width control fields.
    pub const CR0_GUEST_HOST_MASK: u32 = 0x6000;
    pub const CR4_GUEST_HOST_MASK: u32 = 0x6002;
    pub const CR0_READ_SHADOW: u32 = 0x6004;
    pub const CR4_READ_SHADOW: u32 = 0x6006;
    // Natural-width read-only data.
    pub const EXIT_QUALIFICATION: u32 = 0x6400;
    pub const GUEST_LINEAR_ADDRESS: u32 = 0x640a;
    // Natural-width guest state.
    pub const GUEST_CR0: u32 = 0x6800;
    pub const GUEST_CR3: u32 = 0x6802;
    pub const GUEST_CR4: u32 = 0x6804;
    pub const GUEST_ES_BASE: u32 = 0x6806;
    pub const GUEST_CS_BASE: u32 = 0x6808;
    pub const GUEST_SS_BASE: u32 = 0x680a;
    pub const GUEST_DS_BASE: u32 = 0x680c;
    pub const GUEST_FS_BASE: u32 = 0x680e;
    pub const GUEST_GS_BASE: u32 = 0x6810;
    pub const GUEST_LDTR_BASE: u32 = 0x6812;
    pub const GUEST_TR_BASE: u32 = 0x6814;
    pub const GUEST_GDTR_BASE: u32 = 0x6816;
    pub const GUEST_IDTR_BASE: u32 = 0x6818;
    pub const GUEST_DR7: u32 = 0x681a;
    pub const GUEST_RSP: u32 = 0x681c;
    pub const GUEST_RIP: u32 = 0x681e;
    pub const GUEST_RFLAGS: u32 = 0x6820;
    pub const GUEST_PENDING_DEBUG: u32 = 0x6822;
    pub const GUEST_SYSENTER_ESP: u32 = 0x6824;
    pub const GUEST_SYSENTER_EIP: u32 = 0x6826;
    // Natural-width host state.
    pub const HOST_CR0: u32 = 0x6c00;
    pub const HOST_CR3: u32 = 0x6c02;
    pub const HOST_CR4: u32 = 0x6c04;
    pub const HOST_FS_BASE: u32 = 0x6c06;
    pub const HOST_GS_BASE: u32 = 0x6c08;
    pub const HOST_TR_BASE: u32 = 0x6c0a;
    pub const HOST_GDTR_BASE: u32 = 0x6c0c;
    pub const HOST_IDTR_BASE: u32 = 0x6c0e;
    pub const HOST_SYSENTER_ESP: u32 = 0x6c10;
    pub const HOST_SYSENTER_EIP: u32 = 0x6c12;
    pub const HOST_RSP: u32 = 0x6c14;
    pub const HOST_RIP: u32 = 0x6c16;
}

/// Basic exit reasons (bits 15:0 of the exit reason).
pub mod reason {
    pub const EXCEPTION_OR_NMI: u16 = 0;
    pub const EXTERNAL_INTERRUPT: u16 = 1;
    pub const TRIPLE_FAULT: u16 = 2;
    pub const INIT: u16 = 3;
    pub const SIPI: u16 = 4;
    pub const INTERRUPT_WINDOW: u16 = 7;
    pub const TASK_SWITCH: u16 = 9;
    pub const CPUID: u16 = 10;
    pub const GETSEC: u16 = 11;
    pub const HLT: u16 = 12;
    pub const INVD: u16 = 13;
    pub const INVLPG: u16 = 14;
    pub const RDPMC: u16 = 15;
    pub const RDTSC: u16 = 16;
    pub const VMCALL: u16 = 18;
    pub const VMCLEAR: u16 = 19;
    pub const VMLAUNCH: u16 = 20;
    pub const VMPTRLD: u16 = 21;
    pub const VMPTRST: u16 = 22;
    pub const VMREAD: u16 = 23;
    pub const VMRESUME: u16 = 24;
    pub const VMWRITE: u16 = 25;
    pub const VMXOFF: u16 = 26;
    pub const VMXON: u16 = 27;
    pub const CR_ACCESS: u16 = 28;
    pub const DR_ACCESS: u16 = 29;
    pub const IO_INSTRUCTION: u16 = 30;
    pub const RDMSR: u16 = 31;
    pub const WRMSR: u16 = 32;
    pub const INVALID_GUEST_STATE: u16 = 33;
    pub const MSR_LOADING: u16 = 34;
    pub const MWAIT: u16 = 36;
    pub const MONITOR_TRAP_FLAG: u16 = 37;
    pub const MONITOR: u16 = 39;
    pub const PAUSE: u16 = 40;
    pub const MACHINE_CHECK: u16 = 41;
    pub const EPT_VIOLATION: u16 = 48;
    pub const EPT_MISCONFIG: u16 = 49;
    pub const INVEPT: u16 = 50;
    pub const RDTSCP: u16 = 51;
    pub const PREEMPTION_TIMER: u16 = 52;
    pub const INVVPID: u16 = 53;
    pub const WBINVD: u16 = 54;
    pub const XSETBV: u16 = 55;
    pub const INVPCID: u16 = 58;
    pub const VMFUNC: u16 = 59;
    pub const XSAVES: u16 = 63;
    pub const XRSTORS: u16 = 64;
}

/// A name for a basic exit reason, for logs.
pub fn reason_name(basic: u16) -> &'static str {
    use reason::*;
    match basic {
        EXCEPTION_OR_NMI => "exception or NMI",
        EXTERNAL_INTERRUPT => "external interrupt",
        TRIPLE_FAULT => "triple fault",
        INIT => "INIT signal",
        SIPI => "SIPI",
        INTERRUPT_WINDOW => "interrupt window",
        TASK_SWITCH => "task switch (not emulated)",
        CPUID => "CPUID",
        GETSEC => "GETSEC",
        HLT => "HLT",
        INVD => "INVD",
        INVLPG => "INVLPG",
        RDPMC => "RDPMC",
        RDTSC => "RDTSC",
        VMCALL => "VMCALL",
        VMCLEAR..=VMXON => "VMX instruction",
        CR_ACCESS => "control-register access",
        DR_ACCESS => "debug-register access",
        IO_INSTRUCTION => "I/O instruction",
        RDMSR => "RDMSR",
        WRMSR => "WRMSR",
        INVALID_GUEST_STATE => "VM entry with invalid guest state",
        MSR_LOADING => "VM entry failure loading MSRs",
        MWAIT => "MWAIT",
        MONITOR_TRAP_FLAG => "monitor trap flag",
        MONITOR => "MONITOR",
        PAUSE => "PAUSE",
        MACHINE_CHECK => "machine check during VM entry",
        EPT_VIOLATION => "EPT violation",
        EPT_MISCONFIG => "EPT misconfiguration",
        INVEPT => "INVEPT",
        RDTSCP => "RDTSCP",
        PREEMPTION_TIMER => "preemption timer",
        INVVPID => "INVVPID",
        WBINVD => "WBINVD",
        XSETBV => "XSETBV",
        INVPCID => "INVPCID",
        VMFUNC => "VMFUNC",
        XSAVES => "XSAVES",
        XRSTORS => "XRSTORS",
        _ => "unknown",
    }
}

/// A control-register access (exit qualification of reason 28).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrAccess {
    /// MOV to CRn from general register `gpr` (0 = RAX … 15 = R15).
    MovTo {
        cr: u8,
        gpr: u8,
    },
    /// MOV from CRn to general register `gpr`.
    MovFrom {
        cr: u8,
        gpr: u8,
    },
    Clts,
    /// LMSW with the given source value (low 16 bits).
    Lmsw {
        value: u16,
    },
}

impl CrAccess {
    pub fn decode(qualification: u64) -> Self {
        let cr = (qualification & 0xf) as u8;
        let gpr = ((qualification >> 8) & 0xf) as u8;
        match (qualification >> 4) & 3 {
            0 => CrAccess::MovTo { cr, gpr },
            1 => CrAccess::MovFrom { cr, gpr },
            2 => CrAccess::Clts,
            _ => CrAccess::Lmsw {
                value: (qualification >> 16) as u16,
            },
        }
    }
}

/// An I/O instruction (exit qualification of reason 30).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoAccess {
    pub port: u16,
    /// 1, 2 or 4 bytes.
    pub size: u8,
    pub is_in: bool,
    /// INS/OUTS.
    pub string: bool,
    pub rep: bool,
}

impl IoAccess {
    pub fn decode(qualification: u64) -> Self {
        IoAccess {
            size: (qualification & 7) as u8 + 1,
            is_in: qualification & (1 << 3) != 0,
            string: qualification & (1 << 4) != 0,
            rep: qualification & (1 << 5) != 0,
            port: (qualification >> 16) as u16,
        }
    }
}

/// The part of a string I/O instruction (INS/OUTS, maybe with REP) one exit handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StringIo {
    /// Elements to move now (each `size` bytes), at the exit's linear address and then
    /// `stride` bytes apart (negative with RFLAGS.DF).
    pub count: u64,
    pub stride: i64,
    /// The mask of the address size (RSI/RDI/RCX wrap within it).
    pub mask: u64,
    /// Whether the instruction is complete after these (else the guest executes it
    /// again for the rest, with RCX counting what is left).
    pub complete: bool,
}

impl StringIo {
    /// Plans one exit's share of a string I/O: `io` the decoded qualification,
    /// `instruction_info` the exit's instruction information (bits 9:7: address size
    /// 16, 32 or 64 bits), `rcx` and `df` the guest's, at most `batch` elements.
    /// `None` for an address size the SDM reserves.
    pub fn plan(
        io: IoAccess,
        instruction_info: u32,
        rcx: u64,
        df: bool,
        batch: u64,
    ) -> Option<Self> {
        let mask = match (instruction_info >> 7) & 7 {
            0 => 0xffff,
            1 => 0xffff_ffff,
            2 => u64::MAX,
            _ => return None,
        };
        let wanted = if io.rep { rcx & mask } else { 1 };
        let count = wanted.min(batch.max(1));
        let size = i64::from(io.size);
        Some(StringIo {
            count,
            stride: if df { -size } else { size },
            mask,
            complete: count == wanted,
        })
    }

    /// A register (RSI or RDI) after `self.count` elements, within the address size.
    pub fn advance(&self, reg: u64) -> u64 {
        let moved = (self.count as i64).wrapping_mul(self.stride) as u64;
        (reg & !self.mask) | (reg.wrapping_add(moved) & self.mask)
    }

    /// RCX after them (a REP count; unchanged without REP).
    pub fn remaining(&self, io: IoAccess, rcx: u64) -> u64 {
        if io.rep {
            (rcx & !self.mask) | ((rcx & self.mask) - self.count)
        } else {
            rcx
        }
    }
}

/// An EPT violation (exit qualification of reason 48).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EptViolation {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
    /// Whether the guest-physical address was mapped at all (any of R/W/X allowed).
    pub mapped: bool,
    /// Whether the guest linear address field is valid.
    pub linear_valid: bool,
    /// Whether the access was to the linear address an instruction used (bit 8, with
    /// `linear_valid`), not to a paging structure during its translation.
    pub data_access: bool,
}

impl EptViolation {
    pub fn decode(qualification: u64) -> Self {
        let bit = |n: u32| qualification & (1 << n) != 0;
        EptViolation {
            read: bit(0),
            write: bit(1),
            execute: bit(2),
            mapped: qualification & 0b111_000 != 0,
            linear_valid: bit(7),
            data_access: bit(7) && bit(8),
        }
    }

    /// Whether an instruction's own load or store caused it (not a fetch, not a walk of
    /// the guest's page tables): the accesses an MMIO emulator may complete.
    pub fn is_data_access(&self) -> bool {
        self.data_access && !self.execute
    }

    /// "read", "write" or "instruction fetch".
    pub fn kind(&self) -> &'static str {
        if self.write {
            "write"
        } else if self.execute {
            "instruction fetch"
        } else {
            "read"
        }
    }
}

/// Interruption information for event injection on VM entry (§26.2.1.3).
pub mod inject {
    const VALID: u32 = 1 << 31;
    const DELIVER_ERROR_CODE: u32 = 1 << 11;
    const HARDWARE_EXCEPTION: u32 = 3 << 8;
    /// Bit 12 of the IDT-vectoring information (undefined there; reserved, must be 0,
    /// in the VM-entry interruption information).
    const UNDEFINED_BIT12: u32 = 1 << 12;
    /// Bits 30:12 are reserved in the VM-entry interruption information.
    const ENTRY_RESERVED: u32 = 0x7fff_f000;

    /// What to inject on the next entry when a VM exit interrupted the delivery of an
    /// event through the guest's IDT (the IDT-vectoring information of the exit is
    /// valid): the same event, so that it is not lost. `None` if nothing was being
    /// delivered. Software interrupts and exceptions (types 4-6) also need the exit's
    /// instruction length in the VM-entry instruction length: [`needs_length`].
    pub fn redeliver(idt_vectoring_info: u32) -> Option<u32> {
        (idt_vectoring_info & VALID != 0)
            .then_some(idt_vectoring_info & !(UNDEFINED_BIT12 | ENTRY_RESERVED))
    }

    /// Whether an event injected with `info` needs the VM-entry instruction length
    /// (software interrupt, privileged software exception, software exception).
    pub fn needs_length(info: u32) -> bool {
        matches!((info >> 8) & 7, 4..=6)
    }

    /// Whether an event injected with `info` pushes an error code.
    pub fn has_error_code(info: u32) -> bool {
        info & DELIVER_ERROR_CODE != 0
    }

    /// What to inject to hand the guest an exception that the exception bitmap
    /// intercepted (`exit_info` is the exit's interruption information): the same
    /// vector, type and error-code flag. `None` for what is not the guest's to take:
    /// an invalid field, an external interrupt or an NMI. Types 4-6 need the exit's
    /// instruction length ([`needs_length`]), an error code the exit's error code.
    ///
    /// The intercepted exceptions (#DB, #AC) are benign: if one happened while another
    /// event was being delivered, the CPU would deliver it alone too, so this replaces
    /// the event [`redeliver`] set up.
    pub fn reflect(exit_info: u32) -> Option<u32> {
        let kind = (exit_info >> 8) & 7;
        (exit_info & VALID != 0 && matches!(kind, 3 | 5 | 6))
            .then_some(exit_info & !(UNDEFINED_BIT12 | ENTRY_RESERVED))
    }

    /// DR6 as the guest must see it after a #DB that was intercepted: the CPU does not
    /// write DR6 on such an exit but reports the bits in the exit qualification (B0-B3,
    /// BD, BS; bit 16 set when an RTM region caused it, which DR6 shows as RTM clear).
    /// B0-B3 are replaced, the other status bits are sticky, as on a native #DB.
    pub fn debug_dr6(old: u64, qualification: u64) -> u64 {
        const B0_B3: u64 = 0xf;
        const BD_BS: u64 = 0x6000;
        const RTM: u64 = 1 << 16;
        // Bits that read as 1 (4-11 and 16, and the upper half of the low 32 bits).
        const ONES: u64 = 0xffff_0ff0;
        let mut dr6 = ((old & 0xffff_ffff) | ONES) & !B0_B3;
        dr6 |= qualification & (B0_B3 | BD_BS);
        if qualification & RTM != 0 {
            dr6 &= !RTM;
        }
        dr6
    }

    /// #GP(0).
    pub const GP: u32 = VALID | HARDWARE_EXCEPTION | DELIVER_ERROR_CODE | 13;
    /// An NMI (type 2, vector 2).
    pub const NMI: u32 = VALID | (2 << 8) | 2;
    /// #UD.
    pub const UD: u32 = VALID | HARDWARE_EXCEPTION | 6;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_io_moves_in_batches_and_wraps_in_its_address_size() {
        // rep outsb to port 0xe9, 32-bit addresses, RCX = 10,000, batches of 4,096.
        let io = IoAccess::decode((0xe9 << 16) | (1 << 5) | (1 << 4));
        assert!(io.string && io.rep && !io.is_in && io.size == 1);
        let p = StringIo::plan(io, 1 << 7, 10_000, false, 4096).unwrap();
        assert_eq!((p.count, p.stride, p.complete), (4096, 1, false));
        assert_eq!(p.remaining(io, 10_000), 10_000 - 4096);
        assert_eq!(p.advance(0x1000), 0x2000);
        // The last batch completes; upper halves outside the address size stay.
        let p = StringIo::plan(io, 1 << 7, 0xdead_0000_0000_0010, false, 4096).unwrap();
        assert_eq!((p.count, p.complete), (0x10, true));
        assert_eq!(
            p.remaining(io, 0xdead_0000_0000_0010),
            0xdead_0000_0000_0000
        );
        assert_eq!(
            p.advance(0x1_ffff_fff8),
            0x1_0000_0008,
            "ESI wraps at 4 GiB"
        );
        // Without REP: one element, RCX untouched; DF counts down; 16-bit addresses.
        let insw = IoAccess::decode((0x60 << 16) | (1 << 4) | (1 << 3) | 1);
        let p = StringIo::plan(insw, 0, 77, true, 4096).unwrap();
        assert_eq!((p.count, p.stride, p.complete), (1, -2, true));
        assert_eq!(p.remaining(insw, 77), 77);
        assert_eq!(p.advance(0xabcd_0001), 0xabcd_ffff);
        // REP with RCX = 0 moves nothing and is complete; a reserved size is refused.
        let p = StringIo::plan(io, 2 << 7, 0, false, 4096).unwrap();
        assert_eq!((p.count, p.complete), (0, true));
        assert_eq!(StringIo::plan(io, 3 << 7, 1, false, 4096), None);
    }

    #[test]
    fn intercepted_exceptions_are_reflected_as_they_came() {
        // #AC(0): hardware exception with an error code.
        let ac = (1 << 31) | (3 << 8) | (1 << 11) | 17;
        assert_eq!(inject::reflect(ac), Some(ac));
        assert!(inject::has_error_code(ac) && !inject::needs_length(ac));
        // #DB from a breakpoint or single step, with "NMI unblocking" (bit 12) dropped.
        let db = (1 << 31) | (3 << 8) | 1;
        assert_eq!(inject::reflect(db | (1 << 12)), Some(db));
        // INT1 (ICEBP): a privileged software exception, re-injected with its length.
        let icebp = (1 << 31) | (5 << 8) | 1;
        assert_eq!(inject::reflect(icebp), Some(icebp));
        assert!(inject::needs_length(icebp));
        // Not the guest's: invalid, external interrupts, NMIs.
        assert_eq!(inject::reflect(3 << 8 | 1), None);
        assert_eq!(inject::reflect((1 << 31) | 0x20), None);
        assert_eq!(inject::reflect((1 << 31) | (2 << 8) | 2), None);
    }

    #[test]
    fn dr6_after_an_intercepted_debug_exception() {
        // From the reset value: a hit on DR2 sets B2.
        assert_eq!(inject::debug_dr6(0xffff_0ff0, 1 << 2), 0xffff_0ff4);
        // B0-B3 are replaced, BS is added and stays.
        let a = inject::debug_dr6(0xffff_0ff1, 1 << 14);
        assert_eq!(a, 0xffff_4ff0);
        assert_eq!(inject::debug_dr6(a, 1 << 3), 0xffff_4ff8);
        // RTM: qualification bit 16 clears DR6 bit 16; junk above bit 31 goes.
        assert_eq!(inject::debug_dr6(u64::MAX, 1 << 16), 0xfffe_fff0);
        assert_eq!(inject::debug_dr6(0, 1 << 13), 0xffff_2ff0);
    }

    #[test]
    fn field_encodings_follow_the_sdm_scheme() {
        // Bits 14:13 width (0 = 16-bit, 1 = 64-bit, 2 = 32-bit, 3 = natural),
        // bits 11:10 type (0 control, 1 read-only, 2 guest, 3 host).
        let width = |f: u32| (f >> 13) & 3;
        let kind = |f: u32| (f >> 10) & 3;
        assert_eq!(
            (
                width(field::GUEST_CS_SELECTOR),
                kind(field::GUEST_CS_SELECTOR)
            ),
            (0, 2)
        );
        assert_eq!(
            (
                width(field::HOST_TR_SELECTOR),
                kind(field::HOST_TR_SELECTOR)
            ),
            (0, 3)
        );
        assert_eq!(
            (width(field::EPT_POINTER), kind(field::EPT_POINTER)),
            (1, 0)
        );
        assert_eq!(
            (width(field::GUEST_IA32_EFER), kind(field::GUEST_IA32_EFER)),
            (1, 2)
        );
        assert_eq!(
            (width(field::EXIT_REASON), kind(field::EXIT_REASON)),
            (2, 1)
        );
        assert_eq!(
            (
                width(field::GUEST_TR_ACCESS_RIGHTS),
                kind(field::GUEST_TR_ACCESS_RIGHTS)
            ),
            (2, 2)
        );
        assert_eq!(
            (
                width(field::EXIT_QUALIFICATION),
                kind(field::EXIT_QUALIFICATION)
            ),
            (3, 1)
        );
        assert_eq!((width(field::GUEST_RIP), kind(field::GUEST_RIP)), (3, 2));
        assert_eq!((width(field::HOST_RIP), kind(field::HOST_RIP)), (3, 3));
        // Full 64-bit fields are even (the odd encoding is the high half).
        assert_eq!(field::VMCS_LINK_POINTER & 1, 0);
    }

    #[test]
    fn cr_access_decoding() {
        // MOV CR0, RBX: cr 0, type 0, gpr 3.
        assert_eq!(CrAccess::decode(0x300), CrAccess::MovTo { cr: 0, gpr: 3 });
        // MOV R12, CR4.
        assert_eq!(
            CrAccess::decode(0xc14),
            CrAccess::MovFrom { cr: 4, gpr: 12 }
        );
        assert_eq!(CrAccess::decode(0x20), CrAccess::Clts);
        assert_eq!(CrAccess::decode(0x0001_0030), CrAccess::Lmsw { value: 1 });
    }

    #[test]
    fn io_decoding() {
        // OUT 0xE9, AL.
        let io = IoAccess::decode(0x00e9_0000);
        assert_eq!(
            io,
            IoAccess {
                port: 0xe9,
                size: 1,
                is_in: false,
                string: false,
                rep: false
            }
        );
        // REP INSD from port 0x1f0.
        let io = IoAccess::decode(0x01f0_0000 | 0b11_1011);
        assert_eq!(
            io,
            IoAccess {
                port: 0x1f0,
                size: 4,
                is_in: true,
                string: true,
                rep: true
            }
        );
    }

    #[test]
    fn ept_violation_decoding() {
        let v = EptViolation::decode(0b1000_0010);
        assert!(v.write && !v.read && !v.execute && !v.mapped && v.linear_valid);
        assert_eq!(v.kind(), "write");
        let v = EptViolation::decode(0b0000_1100);
        assert!(v.execute && v.mapped);
        assert_eq!(v.kind(), "instruction fetch");
        assert_eq!(EptViolation::decode(1).kind(), "read");
        // A data read at a translated linear address may be emulated; a fetch, a walk
        // of the guest's page tables (bit 8 clear) or an unknown address may not.
        assert!(EptViolation::decode(0b1_1000_0001).is_data_access());
        assert!(!EptViolation::decode(0b0_1000_0001).is_data_access());
        assert!(!EptViolation::decode(0b1_1000_0100).is_data_access());
        assert!(!EptViolation::decode(0b1_0000_0001).is_data_access());
    }

    #[test]
    fn names_and_injection_values() {
        assert_eq!(reason_name(reason::VMCALL), "VMCALL");
        assert_eq!(reason_name(reason::VMPTRLD), "VMX instruction");
        assert_eq!(reason_name(999), "unknown");
        assert_eq!(inject::GP, 0x8000_0b0d);
        assert_eq!(inject::UD, 0x8000_0306);
    }

    #[test]
    fn interrupted_deliveries_are_redelivered() {
        use super::inject::{has_error_code, needs_length, redeliver};
        assert_eq!(redeliver(0), None);
        assert_eq!(redeliver(0x0000_0e0e), None, "not valid");
        // #PF with its error code, bit 12 set by the CPU: kept but for bit 12.
        let pf = (1 << 31) | (1 << 12) | (1 << 11) | (3 << 8) | 14;
        let again = redeliver(pf).unwrap();
        assert_eq!(again, (1 << 31) | (1 << 11) | (3 << 8) | 14);
        assert!(has_error_code(again) && !needs_length(again));
        // INT3 (software exception) and INT n (software interrupt) need the length.
        let int3 = redeliver((1 << 31) | (6 << 8) | 3).unwrap();
        assert!(needs_length(int3) && !has_error_code(int3));
        let intn = redeliver((1 << 31) | (4 << 8) | 0x81).unwrap();
        assert!(needs_length(intn));
        // An external interrupt: no length, no error code.
        let ext = redeliver((1 << 31) | 0xf3).unwrap();
        assert_eq!(ext, (1 << 31) | 0xf3);
        assert!(!needs_length(ext) && !has_error_code(ext));
    }
}
