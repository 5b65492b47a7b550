//! VMX root mode: turning VT-x on, per CPU.

use core::sync::atomic::Ordering;

use oxen_core::vmx::{
    FeatureControlAction, RawVmxMsrs, VmxCapabilities, apply_fixed_bits, feature_control_action,
    msr,
};
use spin::Once;

use crate::arch::{cpu, paging, percpu};
use crate::mm::frames;

/// Why VMX is not on for a CPU.
#[derive(Clone, Copy, Debug)]
pub enum VmxError {
    /// CPUID.1:ECX.VMX is clear: the CPU (or the emulator) has no VT-x.
    NotSupported,
    /// IA32_FEATURE_CONTROL is locked with VMX disabled.
    DisabledByFirmware,
    /// VMXON failed (CF or ZF set).
    VmxonFailed { rflags: u64 },
    /// No memory for the VMXON region.
    NoMemory,
}

impl core::fmt::Display for VmxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotSupported => write!(f, "VT-x not available (CPUID.1:ECX.VMX = 0)"),
            Self::DisabledByFirmware => {
                write!(f, "VT-x disabled by firmware (IA32_FEATURE_CONTROL locked)")
            }
            Self::VmxonFailed { rflags } => write!(f, "VMXON failed (RFLAGS {rflags:#x})"),
            Self::NoMemory => write!(f, "no memory for the VMXON region"),
        }
    }
}

pub mod entry;
pub mod host;
pub mod state;
pub mod vmcs;

/// The BSP's capabilities, shared by every CPU (checked equal as each comes up).
static CAPS: Once<VmxCapabilities> = Once::new();
/// The BSP's raw capability MSRs (the VMCS controls are computed from them).
static RAW: Once<RawVmxMsrs> = Once::new();

/// The capabilities of the boot CPU, if VMX is on there.
pub fn capabilities() -> Option<&'static VmxCapabilities> {
    CAPS.get()
}

/// The boot CPU's raw capability MSRs, if VMX is on there.
pub fn raw_msrs() -> Option<&'static RawVmxMsrs> {
    RAW.get()
}

fn read_msrs() -> RawVmxMsrs {
    // SAFETY: CPUID reported VMX, so the basic capability MSRs exist; the optional ones
    // are read only when the MSRs they depend on say they exist.
    unsafe {
        let mut raw = RawVmxMsrs {
            basic: cpu::rdmsr(msr::IA32_VMX_BASIC),
            pinbased: cpu::rdmsr(msr::IA32_VMX_PINBASED_CTLS),
            procbased: cpu::rdmsr(msr::IA32_VMX_PROCBASED_CTLS),
            exit: cpu::rdmsr(msr::IA32_VMX_EXIT_CTLS),
            entry: cpu::rdmsr(msr::IA32_VMX_ENTRY_CTLS),
            misc: cpu::rdmsr(msr::IA32_VMX_MISC),
            cr0_fixed0: cpu::rdmsr(msr::IA32_VMX_CR0_FIXED0),
            cr0_fixed1: cpu::rdmsr(msr::IA32_VMX_CR0_FIXED1),
            cr4_fixed0: cpu::rdmsr(msr::IA32_VMX_CR4_FIXED0),
            cr4_fixed1: cpu::rdmsr(msr::IA32_VMX_CR4_FIXED1),
            ..RawVmxMsrs::default()
        };
        if raw.has_true_controls() {
            raw.true_pinbased = cpu::rdmsr(msr::IA32_VMX_TRUE_PINBASED_CTLS);
            raw.true_procbased = cpu::rdmsr(msr::IA32_VMX_TRUE_PROCBASED_CTLS);
            raw.true_exit = cpu::rdmsr(msr::IA32_VMX_TRUE_EXIT_CTLS);
            raw.true_entry = cpu::rdmsr(msr::IA32_VMX_TRUE_ENTRY_CTLS);
        }
        if raw.has_secondary_controls() {
            raw.procbased2 = cpu::rdmsr(msr::IA32_VMX_PROCBASED_CTLS2);
        }
        if raw.has_ept_vpid_cap() {
            raw.ept_vpid_cap = cpu::rdmsr(msr::IA32_VMX_EPT_VPID_CAP);
        }
        raw
    }
}

/// Turns VMX on for this CPU: feature control, CR0/CR4 fixed bits, VMXON.
pub fn enable_this_cpu() -> Result<VmxCapabilities, VmxError> {
    if !cpu::has_leaf1_ecx(5) {
        return Err(VmxError::NotSupported);
    }
    // SAFETY: IA32_FEATURE_CONTROL exists on every CPU with VMX.
    let fc = unsafe { cpu::rdmsr(msr::IA32_FEATURE_CONTROL) };
    match feature_control_action(fc) {
        FeatureControlAction::AlreadyEnabled => {}
        // SAFETY: the register is unlocked; the value keeps the firmware's bits and adds
        // VMX-outside-SMX and the lock, as the SDM prescribes before VMXON.
        FeatureControlAction::EnableAndLock(v) => unsafe {
            cpu::wrmsr(msr::IA32_FEATURE_CONTROL, v)
        },
        FeatureControlAction::DisabledByFirmware => return Err(VmxError::DisabledByFirmware),
    }
    let raw = read_msrs();
    let caps = VmxCapabilities::decode(&raw);
    log::debug!("vmx: raw capability MSRs {raw:x?}");

    let region = frames::alloc_zeroed(1).map_err(|_| VmxError::NoMemory)?;
    let revision = paging::phys_to_virt(region).as_mut_ptr::<u32>();
    // SAFETY: the frame was just allocated to us and is mapped by the window.
    unsafe { revision.write_volatile(caps.revision_id) };

    let rflags: u64;
    // SAFETY: CR0 and CR4 are adjusted to the VMX fixed bits (CR4.VMXE included), which
    // changes nothing the hypervisor relies on (PE, PG, NE, PAE stay set); then VMXON
    // enters VMX root operation with a region that carries the revision id.
    unsafe {
        let (cr0, cr4): (u64, u64);
        core::arch::asm!("mov {}, cr0", "mov {}, cr4", out(reg) cr0, out(reg) cr4, options(nomem, nostack));
        let cr0 = apply_fixed_bits(cr0, raw.cr0_fixed0, raw.cr0_fixed1);
        let cr4 = apply_fixed_bits(cr4 | (1 << 13), raw.cr4_fixed0, raw.cr4_fixed1);
        core::arch::asm!("mov cr0, {}", "mov cr4, {}", in(reg) cr0, in(reg) cr4, options(nostack));
        core::arch::asm!(
            "vmxon qword ptr [{region}]",
            "pushfq",
            "pop {flags}",
            region = in(reg) &region,
            flags = out(reg) rflags,
        );
    }
    // CF = VMfailInvalid, ZF = VMfailValid.
    if rflags & 0x41 != 0 {
        return Err(VmxError::VmxonFailed { rflags });
    }
    percpu::this().vmx_on.store(true, Ordering::Release);
    RAW.call_once(|| raw);
    let first = *CAPS.call_once(|| caps);
    if first != caps {
        log::warn!(
            "vmx: cpu{} differs from the boot CPU: {caps}",
            percpu::index()
        );
    }
    Ok(caps)
}

/// CPUs in VMX root operation.
pub fn cpus_on() -> usize {
    (0..percpu::count())
        .filter(|&i| percpu::get(i).vmx_on.load(Ordering::Acquire))
        .count()
}
