//! VMX capabilities: from the raw capability MSRs to the facts and control values oxen uses.
//!
//! The hardware layer reads the MSRs (Intel SDM Vol. 3, Appendix A) into [`RawVmxMsrs`];
//! everything else — what the CPU offers, whether IA32_FEATURE_CONTROL lets us in, which
//! control bits a VMCS must carry — is computed here, on plain integers.

use core::fmt;

/// MSR numbers of the VMX capability registers and the feature-control MSR.
pub mod msr {
    pub const IA32_FEATURE_CONTROL: u32 = 0x3a;
    pub const IA32_VMX_BASIC: u32 = 0x480;
    pub const IA32_VMX_PINBASED_CTLS: u32 = 0x481;
    pub const IA32_VMX_PROCBASED_CTLS: u32 = 0x482;
    pub const IA32_VMX_EXIT_CTLS: u32 = 0x483;
    pub const IA32_VMX_ENTRY_CTLS: u32 = 0x484;
    pub const IA32_VMX_MISC: u32 = 0x485;
    pub const IA32_VMX_CR0_FIXED0: u32 = 0x486;
    pub const IA32_VMX_CR0_FIXED1: u32 = 0x487;
    pub const IA32_VMX_CR4_FIXED0: u32 = 0x488;
    pub const IA32_VMX_CR4_FIXED1: u32 = 0x489;
    pub const IA32_VMX_PROCBASED_CTLS2: u32 = 0x48b;
    pub const IA32_VMX_EPT_VPID_CAP: u32 = 0x48c;
    pub const IA32_VMX_TRUE_PINBASED_CTLS: u32 = 0x48d;
    pub const IA32_VMX_TRUE_PROCBASED_CTLS: u32 = 0x48e;
    pub const IA32_VMX_TRUE_EXIT_CTLS: u32 = 0x48f;
    pub const IA32_VMX_TRUE_ENTRY_CTLS: u32 = 0x490;
}

/// Control bits oxen asks for, by VMCS control field (Intel SDM Vol. 3, chapter 25).
pub mod ctl {
    /// Pin-based VM-execution controls.
    pub mod pin {
        pub const EXTERNAL_INTERRUPT_EXITING: u32 = 1 << 0;
        pub const NMI_EXITING: u32 = 1 << 3;
        pub const VIRTUAL_NMIS: u32 = 1 << 5;
        pub const PREEMPTION_TIMER: u32 = 1 << 6;
    }
    /// Primary processor-based VM-execution controls.
    pub mod proc {
        pub const HLT_EXITING: u32 = 1 << 7;
        pub const MWAIT_EXITING: u32 = 1 << 10;
        pub const RDPMC_EXITING: u32 = 1 << 11;
        pub const CR3_LOAD_EXITING: u32 = 1 << 15;
        pub const CR3_STORE_EXITING: u32 = 1 << 16;
        pub const CR8_LOAD_EXITING: u32 = 1 << 19;
        pub const CR8_STORE_EXITING: u32 = 1 << 20;
        pub const UNCONDITIONAL_IO_EXITING: u32 = 1 << 24;
        pub const USE_IO_BITMAPS: u32 = 1 << 25;
        pub const USE_MSR_BITMAPS: u32 = 1 << 28;
        pub const MONITOR_EXITING: u32 = 1 << 29;
        pub const ACTIVATE_SECONDARY: u32 = 1 << 31;
    }
    /// Secondary processor-based VM-execution controls.
    pub mod proc2 {
        pub const ENABLE_EPT: u32 = 1 << 1;
        pub const ENABLE_RDTSCP: u32 = 1 << 3;
        pub const ENABLE_VPID: u32 = 1 << 5;
        pub const UNRESTRICTED_GUEST: u32 = 1 << 7;
        pub const PAUSE_LOOP_EXITING: u32 = 1 << 10;
        pub const ENABLE_INVPCID: u32 = 1 << 12;
        pub const ENABLE_XSAVES: u32 = 1 << 20;
    }
    /// VM-exit controls.
    pub mod exit {
        pub const SAVE_DEBUG_CONTROLS: u32 = 1 << 2;
        pub const HOST_ADDRESS_SPACE_SIZE: u32 = 1 << 9;
        pub const ACK_INTERRUPT_ON_EXIT: u32 = 1 << 15;
        pub const SAVE_PAT: u32 = 1 << 18;
        pub const LOAD_PAT: u32 = 1 << 19;
        pub const SAVE_EFER: u32 = 1 << 20;
        pub const LOAD_EFER: u32 = 1 << 21;
        pub const SAVE_PREEMPTION_TIMER: u32 = 1 << 22;
    }
    /// VM-entry controls.
    pub mod entry {
        pub const LOAD_DEBUG_CONTROLS: u32 = 1 << 2;
        pub const IA32E_MODE_GUEST: u32 = 1 << 9;
        pub const LOAD_PAT: u32 = 1 << 14;
        pub const LOAD_EFER: u32 = 1 << 15;
    }
}

/// IA32_FEATURE_CONTROL bits.
pub mod feature_control {
    pub const LOCK: u64 = 1 << 0;
    pub const VMX_INSIDE_SMX: u64 = 1 << 1;
    pub const VMX_OUTSIDE_SMX: u64 = 1 << 2;
}

/// What to do with IA32_FEATURE_CONTROL before VMXON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureControlAction {
    /// Locked with VMX outside SMX enabled: nothing to do.
    AlreadyEnabled,
    /// Unlocked: write this value (VMX outside SMX enabled, locked) first.
    EnableAndLock(u64),
    /// Locked with VMX outside SMX disabled: firmware forbids VMX until the next reset.
    DisabledByFirmware,
}

/// Decides how to treat IA32_FEATURE_CONTROL, keeping every bit the firmware set.
pub fn feature_control_action(value: u64) -> FeatureControlAction {
    use feature_control::*;
    if value & LOCK == 0 {
        FeatureControlAction::EnableAndLock(value | VMX_OUTSIDE_SMX | LOCK)
    } else if value & VMX_OUTSIDE_SMX != 0 {
        FeatureControlAction::AlreadyEnabled
    } else {
        FeatureControlAction::DisabledByFirmware
    }
}

/// Applies the CR0/CR4 fixed-bit MSRs: bits set in `fixed0` must be 1, bits clear in
/// `fixed1` must be 0.
pub fn apply_fixed_bits(value: u64, fixed0: u64, fixed1: u64) -> u64 {
    (value | fixed0) & fixed1
}

/// The capability MSRs as read from one CPU. MSRs the CPU does not have read as 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawVmxMsrs {
    pub basic: u64,
    pub pinbased: u64,
    pub procbased: u64,
    pub exit: u64,
    pub entry: u64,
    pub misc: u64,
    pub procbased2: u64,
    pub ept_vpid_cap: u64,
    pub true_pinbased: u64,
    pub true_procbased: u64,
    pub true_exit: u64,
    pub true_entry: u64,
    pub cr0_fixed0: u64,
    pub cr0_fixed1: u64,
    pub cr4_fixed0: u64,
    pub cr4_fixed1: u64,
}

impl RawVmxMsrs {
    /// Whether the TRUE_* control MSRs exist (IA32_VMX_BASIC bit 55).
    pub fn has_true_controls(&self) -> bool {
        self.basic & (1 << 55) != 0
    }

    /// Whether IA32_VMX_PROCBASED_CTLS2 exists (secondary controls may be activated).
    pub fn has_secondary_controls(&self) -> bool {
        Allowed::from_msr(self.procbased).may_set(ctl::proc::ACTIVATE_SECONDARY)
    }

    /// Whether IA32_VMX_EPT_VPID_CAP exists (EPT or VPID may be enabled).
    pub fn has_ept_vpid_cap(&self) -> bool {
        self.has_secondary_controls()
            && Allowed::from_msr(self.procbased2)
                .may_set(ctl::proc2::ENABLE_EPT | ctl::proc2::ENABLE_VPID)
    }
}

/// The allowed settings of one 32-bit control field, from its capability MSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowed {
    /// Bits that must be 1 (the MSR's low half).
    pub must_be_one: u32,
    /// Bits that may be 1 (the MSR's high half).
    pub may_be_one: u32,
}

impl Allowed {
    pub fn from_msr(value: u64) -> Self {
        Allowed {
            must_be_one: value as u32,
            may_be_one: (value >> 32) as u32,
        }
    }

    /// True if every bit of `bits` may be set.
    pub fn may_set(&self, bits: u32) -> bool {
        self.may_be_one & bits == bits
    }

    /// The value to use: every required bit, every mandatory-one bit, and whichever
    /// optional bits the CPU allows. Fails naming the required bits it cannot have.
    pub fn adjust(&self, required: u32, optional: u32) -> Result<u32, u32> {
        let missing = required & !self.may_be_one;
        if missing != 0 {
            return Err(missing);
        }
        Ok(self.must_be_one | required | (optional & self.may_be_one))
    }
}

/// Decoded facts about a CPU's VMX implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmxCapabilities {
    /// VMCS revision identifier (written at the start of the VMXON region and each VMCS).
    pub revision_id: u32,
    /// Size of the VMXON region and of a VMCS, in bytes.
    pub region_size: u32,
    /// Write-back is a supported memory type for VMCS and related structures.
    pub vmcs_write_back: bool,
    pub true_controls: bool,
    pub ept: bool,
    pub vpid: bool,
    pub unrestricted_guest: bool,
    pub preemption_timer: bool,
    /// The preemption timer counts down once every 2^rate TSC ticks.
    pub preemption_timer_rate: u8,
    /// PAUSE-loop exiting (a spinning vCPU exits and yields).
    pub pause_loop_exiting: bool,
    pub ept_4_level: bool,
    pub ept_write_back: bool,
    pub ept_2m_pages: bool,
    pub ept_1g_pages: bool,
    pub ept_accessed_dirty: bool,
    pub invept_single: bool,
    pub invept_all: bool,
    pub invvpid: bool,
}

impl VmxCapabilities {
    pub fn decode(raw: &RawVmxMsrs) -> Self {
        let proc2 = if raw.has_secondary_controls() {
            Allowed::from_msr(raw.procbased2)
        } else {
            Allowed {
                must_be_one: 0,
                may_be_one: 0,
            }
        };
        let ept_cap = if raw.has_ept_vpid_cap() {
            raw.ept_vpid_cap
        } else {
            0
        };
        let bit = |n: u32| ept_cap & (1 << n) != 0;
        let ept = proc2.may_set(ctl::proc2::ENABLE_EPT);
        let vpid = proc2.may_set(ctl::proc2::ENABLE_VPID);
        VmxCapabilities {
            revision_id: (raw.basic & 0x7fff_ffff) as u32,
            region_size: ((raw.basic >> 32) & 0x1fff) as u32,
            vmcs_write_back: (raw.basic >> 50) & 0xf == 6,
            true_controls: raw.has_true_controls(),
            ept,
            vpid,
            unrestricted_guest: ept && proc2.may_set(ctl::proc2::UNRESTRICTED_GUEST),
            preemption_timer: Allowed::from_msr(raw.pinbased).may_set(ctl::pin::PREEMPTION_TIMER),
            preemption_timer_rate: (raw.misc & 0x1f) as u8,
            pause_loop_exiting: proc2.may_set(ctl::proc2::PAUSE_LOOP_EXITING),
            ept_4_level: ept && bit(6),
            ept_write_back: ept && bit(14),
            ept_2m_pages: ept && bit(16),
            ept_1g_pages: ept && bit(17),
            ept_accessed_dirty: ept && bit(21),
            invept_single: ept && bit(20) && bit(25),
            invept_all: ept && bit(20) && bit(26),
            invvpid: vpid && bit(32),
        }
    }

    /// Whether this CPU can run oxen's guests: EPT with 4-level, write-back tables and
    /// unrestricted guest (PVH guests start in 32-bit mode with paging off).
    pub fn can_run_guests(&self) -> Result<(), &'static str> {
        let needs = [
            (self.ept, "EPT"),
            (self.ept_4_level, "4-level EPT"),
            (self.ept_write_back, "write-back EPT"),
            (self.unrestricted_guest, "unrestricted guest"),
            (self.invept_all || self.invept_single, "INVEPT"),
        ];
        match needs.iter().find(|(has, _)| !has) {
            Some((_, what)) => Err(what),
            None => Ok(()),
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

impl fmt::Display for VmxCapabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rev {:#x}, EPT {} (2M {}, 1G {}, A/D {}), VPID {}, unrestricted guest {}, PAUSE-loop exiting {}, preemption timer {}",
            self.revision_id,
            yes(self.ept),
            yes(self.ept_2m_pages),
            yes(self.ept_1g_pages),
            yes(self.ept_accessed_dirty),
            yes(self.vpid),
            yes(self.unrestricted_guest),
            yes(self.pause_loop_exiting),
            yes(self.preemption_timer),
        )?;
        if self.preemption_timer {
            write!(f, " (TSC/{})", 1u64 << self.preemption_timer_rate)?;
        }
        Ok(())
    }
}

/// The five VMCS control fields oxen runs guests with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmcsControls {
    pub pin: u32,
    pub proc: u32,
    pub proc2: u32,
    pub exit: u32,
    pub entry: u32,
}

/// Which control field a missing required bit belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlField {
    PinBased,
    ProcBased,
    ProcBased2,
    Exit,
    Entry,
}

/// A required control the CPU does not offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingControls {
    pub field: ControlField,
    pub bits: u32,
}

impl fmt::Display for MissingControls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} controls lack required bits {:#010x}",
            self.field, self.bits
        )
    }
}

impl VmcsControls {
    /// Computes oxen's control values from the capability MSRs.
    ///
    /// Required: exits on external interrupts, NMIs, HLT, MONITOR/MWAIT, RDPMC, CR8
    /// accesses and all I/O (through bitmaps), MSR bitmaps, EPT, unrestricted guest, a
    /// 64-bit host, debug controls (DR7, DEBUGCTL), EFER and PAT switched on entry and
    /// exit. Optional: virtual NMIs, the preemption timer, VPID, RDTSCP and
    /// INVPCID passthrough. Interrupts are not acknowledged on exit: the host takes them
    /// through its IDT when it enables interrupts after the exit. CR3 accesses do not
    /// exit (EPT makes them harmless) wherever the TRUE MSRs allow clearing them.
    pub fn compute(raw: &RawVmxMsrs) -> Result<Self, MissingControls> {
        use ctl::*;
        let pick = |plain: u64, true_: u64| {
            Allowed::from_msr(if raw.has_true_controls() {
                true_
            } else {
                plain
            })
        };
        let check = |field, allowed: Allowed, required, optional| {
            allowed
                .adjust(required, optional)
                .map_err(|bits| MissingControls { field, bits })
        };
        let pin = check(
            ControlField::PinBased,
            pick(raw.pinbased, raw.true_pinbased),
            pin::EXTERNAL_INTERRUPT_EXITING | pin::NMI_EXITING,
            pin::VIRTUAL_NMIS | pin::PREEMPTION_TIMER,
        )?;
        let proc = check(
            ControlField::ProcBased,
            pick(raw.procbased, raw.true_procbased),
            proc::HLT_EXITING
                | proc::MWAIT_EXITING
                | proc::RDPMC_EXITING
                | proc::CR8_LOAD_EXITING
                | proc::CR8_STORE_EXITING
                | proc::MONITOR_EXITING
                | proc::USE_IO_BITMAPS
                | proc::USE_MSR_BITMAPS
                | proc::ACTIVATE_SECONDARY,
            0,
        )?;
        let secondary = if raw.has_secondary_controls() {
            Allowed::from_msr(raw.procbased2)
        } else {
            Allowed {
                must_be_one: 0,
                may_be_one: 0,
            }
        };
        let proc2 = check(
            ControlField::ProcBased2,
            secondary,
            proc2::ENABLE_EPT | proc2::UNRESTRICTED_GUEST,
            proc2::ENABLE_VPID
                | proc2::ENABLE_RDTSCP
                | proc2::ENABLE_INVPCID
                | proc2::PAUSE_LOOP_EXITING,
        )?;
        let exit = check(
            ControlField::Exit,
            pick(raw.exit, raw.true_exit),
            exit::SAVE_DEBUG_CONTROLS
                | exit::HOST_ADDRESS_SPACE_SIZE
                | exit::SAVE_PAT
                | exit::LOAD_PAT
                | exit::SAVE_EFER
                | exit::LOAD_EFER,
            if pin & pin::PREEMPTION_TIMER != 0 {
                exit::SAVE_PREEMPTION_TIMER
            } else {
                0
            },
        )?;
        let entry = check(
            ControlField::Entry,
            pick(raw.entry, raw.true_entry),
            entry::LOAD_DEBUG_CONTROLS | entry::LOAD_PAT | entry::LOAD_EFER,
            0,
        )?;
        Ok(VmcsControls {
            pin,
            proc,
            proc2,
            exit,
            entry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Capability MSRs as Bochs 3.0 (`corei7_skylake_x`, built with `--enable-vmx=2`)
    /// reports them, read by oxen at debug log level.
    fn bochs_skylake() -> RawVmxMsrs {
        RawVmxMsrs {
            basic: 0x00d8_1000_0000_002b,
            pinbased: 0x0000_00ff_0000_0016,
            procbased: 0xfff9_fffe_0401_e172,
            exit: 0x407f_ffff_0003_6dff,
            entry: 0x0000_ffff_0000_11ff,
            misc: 0x6004_01e0,
            procbased2: 0x0257_7fff_0000_0000,
            ept_vpid_cap: 0x0000_0f01_0673_4141,
            true_pinbased: 0x0000_00ff_0000_0016,
            true_procbased: 0xfff9_fffe_0400_6172,
            true_exit: 0x407f_ffff_0003_6dfb,
            true_entry: 0x0000_ffff_0000_11fb,
            cr0_fixed0: 0x8000_0021,
            cr0_fixed1: 0xffff_ffff,
            cr4_fixed0: 0x2000,
            cr4_fixed1: 0x0037_27ff,
        }
    }

    #[test]
    fn feature_control_decisions() {
        assert_eq!(
            feature_control_action(0),
            FeatureControlAction::EnableAndLock(0x5)
        );
        assert_eq!(
            feature_control_action(0x2),
            FeatureControlAction::EnableAndLock(0x7)
        );
        assert_eq!(
            feature_control_action(0x5),
            FeatureControlAction::AlreadyEnabled
        );
        assert_eq!(
            feature_control_action(0x1),
            FeatureControlAction::DisabledByFirmware
        );
        assert_eq!(
            feature_control_action(0x3),
            FeatureControlAction::DisabledByFirmware
        );
        // Unrelated bits the firmware set survive.
        assert_eq!(
            feature_control_action(1 << 20),
            FeatureControlAction::EnableAndLock((1 << 20) | 0x5)
        );
    }

    #[test]
    fn fixed_bits_force_and_clear() {
        // CR4.VMXE forced on, a bit outside fixed1 forced off.
        assert_eq!(apply_fixed_bits(0x20, 0x2000, 0x3727ff), 0x2020);
        assert_eq!(apply_fixed_bits(0x80_0000 | 0x20, 0x2000, 0x3727ff), 0x2020);
        // CR0: PE, NE and PG are fixed to 1.
        assert_eq!(apply_fixed_bits(0x1, 0x8000_0021, 0xffff_ffff), 0x8000_0021);
    }

    #[test]
    fn allowed_adjust_rules() {
        let a = Allowed {
            must_be_one: 0b0001,
            may_be_one: 0b0111,
        };
        assert_eq!(a.adjust(0b0010, 0b1100), Ok(0b0111));
        assert_eq!(a.adjust(0b1010, 0), Err(0b1000));
        assert_eq!(a.adjust(0, 0), Ok(0b0001));
        assert!(a.may_set(0b0110));
        assert!(!a.may_set(0b1000));
    }

    #[test]
    fn decodes_bochs_capabilities() {
        let caps = VmxCapabilities::decode(&bochs_skylake());
        assert_eq!(caps.revision_id, 0x2b);
        assert_eq!(caps.region_size, 4096);
        assert!(caps.vmcs_write_back);
        assert!(caps.true_controls);
        assert!(caps.ept && caps.vpid && caps.unrestricted_guest && caps.preemption_timer);
        assert_eq!(caps.preemption_timer_rate, 0);
        assert!(caps.ept_4_level && caps.ept_write_back && caps.ept_2m_pages);
        assert!(caps.ept_1g_pages);
        assert!(caps.invept_all && caps.invept_single && caps.invvpid);
        assert_eq!(caps.can_run_guests(), Ok(()));
        let line = caps.to_string();
        assert!(line.contains("EPT yes (2M yes, 1G yes"), "{line}");
        assert!(line.contains("preemption timer yes (TSC/1)"), "{line}");
    }

    #[test]
    fn computes_controls_within_the_allowed_bits() {
        let raw = bochs_skylake();
        let c = VmcsControls::compute(&raw).expect("Bochs offers everything oxen needs");
        let fields = [
            (c.pin, raw.true_pinbased),
            (c.proc, raw.true_procbased),
            (c.proc2, raw.procbased2),
            (c.exit, raw.true_exit),
            (c.entry, raw.true_entry),
        ];
        for (value, msr) in fields {
            let a = Allowed::from_msr(msr);
            assert_eq!(
                value & a.must_be_one,
                a.must_be_one,
                "a mandatory 1 is missing"
            );
            assert_eq!(value & !a.may_be_one, 0, "a forbidden 1 is set");
        }
        assert_ne!(c.pin & ctl::pin::PREEMPTION_TIMER, 0);
        assert_ne!(c.exit & ctl::exit::SAVE_PREEMPTION_TIMER, 0);
        assert_ne!(c.proc2 & ctl::proc2::ENABLE_VPID, 0);
        // DR7 and DEBUGCTL are the guest's own (saved on exit, loaded on entry); CR8,
        // RDPMC, MONITOR and MWAIT exit (the guest never reaches the real TPR or PMU).
        assert_ne!(c.exit & ctl::exit::SAVE_DEBUG_CONTROLS, 0);
        assert_ne!(c.entry & ctl::entry::LOAD_DEBUG_CONTROLS, 0);
        for bit in [
            ctl::proc::CR8_LOAD_EXITING,
            ctl::proc::CR8_STORE_EXITING,
            ctl::proc::RDPMC_EXITING,
            ctl::proc::MONITOR_EXITING,
            ctl::proc::MWAIT_EXITING,
        ] {
            assert_ne!(c.proc & bit, 0, "{bit:#x}");
        }
        // With TRUE controls, CR3 accesses need not exit.
        assert_eq!(
            c.proc & (ctl::proc::CR3_LOAD_EXITING | ctl::proc::CR3_STORE_EXITING),
            0
        );
    }

    #[test]
    fn without_true_controls_the_default1_bits_stay() {
        let mut raw = bochs_skylake();
        raw.basic &= !(1 << 55);
        let c = VmcsControls::compute(&raw).unwrap();
        assert_ne!(c.proc & ctl::proc::CR3_LOAD_EXITING, 0);
        assert_ne!(c.proc & ctl::proc::CR3_STORE_EXITING, 0);
    }

    #[test]
    fn missing_ept_is_reported() {
        let mut raw = bochs_skylake();
        raw.procbased2 &= !((u64::from(ctl::proc2::ENABLE_EPT)) << 32);
        let caps = VmxCapabilities::decode(&raw);
        assert!(!caps.ept && !caps.unrestricted_guest);
        assert_eq!(caps.can_run_guests(), Err("EPT"));
        let err = VmcsControls::compute(&raw).unwrap_err();
        assert_eq!(err.field, ControlField::ProcBased2);
        assert_eq!(err.bits, ctl::proc2::ENABLE_EPT);
    }

    #[test]
    fn no_secondary_controls_means_no_ept_or_vpid() {
        let mut raw = bochs_skylake();
        raw.procbased &= !(u64::from(ctl::proc::ACTIVATE_SECONDARY) << 32);
        raw.true_procbased &= !(u64::from(ctl::proc::ACTIVATE_SECONDARY) << 32);
        let caps = VmxCapabilities::decode(&raw);
        assert!(!caps.ept && !caps.vpid && !caps.invvpid);
        let err = VmcsControls::compute(&raw).unwrap_err();
        assert_eq!(err.field, ControlField::ProcBased);
    }

    #[test]
    fn preemption_timer_rate_comes_from_misc() {
        let mut raw = bochs_skylake();
        raw.misc = (raw.misc & !0x1f) | 5;
        let caps = VmxCapabilities::decode(&raw);
        assert_eq!(caps.preemption_timer_rate, 5);
        assert!(caps.to_string().ends_with("preemption timer yes (TSC/32)"));
    }

    #[test]
    fn missing_preemption_timer_is_optional() {
        let mut raw = bochs_skylake();
        raw.pinbased &= !(u64::from(ctl::pin::PREEMPTION_TIMER) << 32);
        raw.true_pinbased = raw.pinbased;
        let caps = VmxCapabilities::decode(&raw);
        assert!(!caps.preemption_timer);
        assert!(!caps.to_string().contains("TSC/"));
        let c = VmcsControls::compute(&raw).unwrap();
        assert_eq!(c.pin & ctl::pin::PREEMPTION_TIMER, 0);
        assert_eq!(c.exit & ctl::exit::SAVE_PREEMPTION_TIMER, 0);
    }
}
