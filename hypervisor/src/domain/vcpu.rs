//! A virtual CPU: its VMCS, registers and the state oxen keeps beside them.
#![deny(unsafe_code)]

use alloc::sync::Arc;

use oxen_core::frames::FrameError;
use oxen_core::vcpu_state::StartState;
use oxen_core::vmcs::field;
use oxen_core::vmx::{VmcsControls, ctl};
use spin::Once;

use super::Domain;
use crate::arch::cpu;
use crate::mm::frames;
use crate::vmx::entry::GuestRegs;
use crate::vmx::state::{FpuArea, VmcsRegion};
use crate::vmx::vmcs;

/// CR0 bits the host owns: PG (to track long mode), NE (forced on by VMX), and CD and
/// NW, which VM entries and exits never change (Intel SDM Vol. 3, 28.3.2.1 and 29.5.1):
/// a guest's would be the pCPU's own, for the hypervisor and every other guest. The
/// guest reads what it wrote; caches stay on (guest memory is coherent write-back RAM).
pub const CR0_HOST_OWNED: u64 = (1 << 31) | cpu::CR0_CACHES_OFF | (1 << 5);

/// The CR0 a guest runs with when it asked for `cr0`: NE on, CD and NW off.
pub fn guest_cr0(cr0: u64) -> u64 {
    (cr0 | (1 << 5)) & !cpu::CR0_CACHES_OFF
}
/// Whether guests run with INVPCID enabled (the same controls for every vCPU): what
/// CPUID tells them, without a VMREAD per CPUID exit.
pub static INVPCID: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// CR4.VMXE: forced on by VMX operation, hidden from the guest.
pub const CR4_VMXE: u64 = 1 << 13;
/// CR4 bits the host owns: a guest write that sets one exits and gets #GP. VMXE, and
/// every feature oxen hides because it would make state shared or walks it cannot
/// follow: LA57 (12), SMXE (14), PKE (22), CET (23), PKS (24), UINTR (25).
pub const CR4_HOST_OWNED: u64 =
    CR4_VMXE | (1 << 12) | (1 << 14) | (1 << 22) | (1 << 23) | (1 << 24) | (1 << 25);

/// MSR and I/O bitmaps shared by every vCPU: all ones, so every MSR access and every
/// port access exits and meets oxen's policy.
struct Bitmaps {
    msr: u64,
    io_a: u64,
    io_b: u64,
}

static BITMAPS: Once<Bitmaps> = Once::new();

fn bitmaps() -> &'static Bitmaps {
    BITMAPS.call_once(|| {
        let page = || frames::alloc_filled(1, 0xff).expect("memory for VMX bitmaps");
        Bitmaps {
            msr: page(),
            io_a: page(),
            io_b: page(),
        }
    })
}

/// One virtual CPU: the state a pCPU owns while it runs it (see `sched::VcpuSlot` for
/// the part every pCPU may touch).
pub struct Vcpu {
    pub domain: Arc<Domain>,
    /// The vCPU's number in its domain.
    pub id: u32,
    /// The VMCS region.
    vmcs: VmcsRegion,
    /// The VMCS has never been set up (its first load writes every field).
    fresh: bool,
    pub launched: bool,
    /// The HOST_RSP its VMCS holds, for the entry stub (see `entry::run`).
    pub host_rsp: u64,
    /// The pCPU whose host state the VMCS holds (`usize::MAX`: none yet).
    last_cpu: usize,
    pub regs: GuestRegs,
    /// Guest XCR0 (loaded into the CPU while the vCPU is loaded on it).
    pub xcr0: u64,
    /// Its FPU/SIMD state while it is not loaded (the hypervisor itself never touches
    /// that state).
    fpu: FpuArea,
    /// CR2, the debug registers and the SYSCALL/SWAPGS/RDTSCP MSRs: in the CPU while
    /// the vCPU is loaded, here while it is not.
    pub lazy: cpu::LazyState,
    /// Exits and hypercalls handled, for the final report, and the exits by basic
    /// reason.
    pub exits: u64,
    pub hypercalls: u64,
    pub exit_reasons: [u64; EXIT_REASONS],
}

/// Basic exit reasons counted (the SDM's go up to 77).
pub const EXIT_REASONS: usize = 80;

impl Vcpu {
    /// Creates vCPU `id` of `domain`: a VMCS page, set up on its first load.
    pub fn new(domain: Arc<Domain>, id: u32) -> Result<Self, FrameError> {
        let vmcs = VmcsRegion::new()?;
        let fpu = match FpuArea::new() {
            Ok(f) => f,
            Err(e) => {
                vmcs.free();
                return Err(e);
            }
        };
        Ok(Vcpu {
            domain,
            id,
            vmcs,
            fpu,
            fresh: true,
            launched: false,
            host_rsp: 0,
            last_cpu: usize::MAX,
            regs: GuestRegs::default(),
            xcr0: 1,
            lazy: cpu::LazyState::default(),
            exits: 0,
            exit_reasons: [0; EXIT_REASONS],
            hypercalls: 0,
        })
    }

    /// Whether the VMCS has never been loaded (its first load needs a start state).
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Makes this vCPU's VMCS current on this pCPU. The first load writes every field
    /// (`start` is the guest state it begins in); a load on another pCPU than last time
    /// rewrites the host state and drops the TLB entries this pCPU may still hold for
    /// the vCPU from an earlier stay.
    pub fn load(
        &mut self,
        cpu: usize,
        controls: &VmcsControls,
        revision: u32,
        start: Option<&StartState>,
    ) -> bool {
        if self.fresh {
            let Some(start) = start else {
                return false;
            };
            self.vmcs.init_and_load(revision);
            self.write_controls(controls);
            crate::vmx::host::write_host_state();
            self.write_start_state(start);
            self.fresh = false;
            self.launched = false;
        } else {
            vmcs::load(self.vmcs.phys());
            if self.last_cpu != cpu {
                crate::vmx::host::write_host_state();
            }
        }
        if self.last_cpu != cpu {
            vmcs::invept_all();
            self.last_cpu = cpu;
        }
        self.fpu.restore(self.xcr0);
        self.lazy.load();
        true
    }

    /// Takes the VMCS off this pCPU (VMCLEAR writes its state back to memory), so that
    /// any pCPU may load it next.
    pub fn unload(&mut self) {
        if !self.fresh {
            vmcs::clear(self.vmcs.phys());
            self.fpu.save();
            self.lazy.save();
        }
        self.launched = false;
    }

    fn write_controls(&self, c: &VmcsControls) {
        let b = bitmaps();
        vmcs::write(field::PIN_BASED_CONTROLS, u64::from(c.pin));
        vmcs::write(field::PROC_BASED_CONTROLS, u64::from(c.proc));
        vmcs::write(field::PROC_BASED_CONTROLS2, u64::from(c.proc2));
        INVPCID.store(
            c.proc2 & ctl::proc2::ENABLE_INVPCID != 0,
            core::sync::atomic::Ordering::Relaxed,
        );
        if c.proc2 & ctl::proc2::PAUSE_LOOP_EXITING != 0 {
            // Xen's defaults: PAUSEs at most 128 cycles apart form a spin loop; one
            // longer than 4096 cycles exits, and the vCPU yields its pCPU.
            vmcs::write(field::PLE_GAP, 128);
            vmcs::write(field::PLE_WINDOW, 4096);
        }
        vmcs::write(field::EXIT_CONTROLS, u64::from(c.exit));
        vmcs::write(
            field::ENTRY_CONTROLS,
            u64::from(c.entry & !ctl::entry::IA32E_MODE_GUEST),
        );
        // #DB and #AC exit (and are reflected): without that a guest can make either
        // recursive and hang the pCPU inside the CPU's event delivery.
        vmcs::write(field::EXCEPTION_BITMAP, (1 << 1) | (1 << 17));
        vmcs::write(field::CR3_TARGET_COUNT, 0);
        vmcs::write(field::EXIT_MSR_STORE_COUNT, 0);
        vmcs::write(field::EXIT_MSR_LOAD_COUNT, 0);
        vmcs::write(field::ENTRY_MSR_LOAD_COUNT, 0);
        vmcs::write(field::ENTRY_INTERRUPTION_INFO, 0);
        vmcs::write(field::MSR_BITMAP, b.msr);
        vmcs::write(field::IO_BITMAP_A, b.io_a);
        vmcs::write(field::IO_BITMAP_B, b.io_b);
        vmcs::write(field::EPT_POINTER, self.domain.eptp);
        if c.proc2 & ctl::proc2::ENABLE_VPID != 0 {
            // VPID 0 is the host's; give each vCPU of each domain its own tag.
            vmcs::write(
                field::VPID,
                u64::from((self.domain.id * 64 + self.id + 1) & 0xffff),
            );
        }
        vmcs::write(field::CR0_GUEST_HOST_MASK, CR0_HOST_OWNED);
        vmcs::write(field::CR4_GUEST_HOST_MASK, CR4_HOST_OWNED);
    }

    /// The guest state the vCPU starts in.
    fn write_start_state(&mut self, st: &StartState) {
        use field::*;
        let [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi] = st.gprs;
        self.regs = GuestRegs {
            rax,
            rcx,
            rdx,
            rbx,
            rbp,
            rsi,
            rdi,
            ..GuestRegs::default()
        };
        vmcs::write(CR0_READ_SHADOW, st.cr0);
        vmcs::write(GUEST_CR0, guest_cr0(st.cr0));
        vmcs::write(CR4_READ_SHADOW, st.cr4);
        vmcs::write(GUEST_CR4, st.cr4 | CR4_VMXE);
        vmcs::write(GUEST_CR3, st.cr3);
        vmcs::write(GUEST_IA32_EFER, st.efer);
        let controls = vmcs::read(ENTRY_CONTROLS);
        let ia32e = u64::from(ctl::entry::IA32E_MODE_GUEST);
        vmcs::write(
            ENTRY_CONTROLS,
            if st.long_mode {
                controls | ia32e
            } else {
                controls & !ia32e
            },
        );
        let fields = [
            (
                GUEST_CS_SELECTOR,
                GUEST_CS_BASE,
                GUEST_CS_LIMIT,
                GUEST_CS_ACCESS_RIGHTS,
            ),
            (
                GUEST_SS_SELECTOR,
                GUEST_SS_BASE,
                GUEST_SS_LIMIT,
                GUEST_SS_ACCESS_RIGHTS,
            ),
            (
                GUEST_DS_SELECTOR,
                GUEST_DS_BASE,
                GUEST_DS_LIMIT,
                GUEST_DS_ACCESS_RIGHTS,
            ),
            (
                GUEST_ES_SELECTOR,
                GUEST_ES_BASE,
                GUEST_ES_LIMIT,
                GUEST_ES_ACCESS_RIGHTS,
            ),
            (
                GUEST_FS_SELECTOR,
                GUEST_FS_BASE,
                GUEST_FS_LIMIT,
                GUEST_FS_ACCESS_RIGHTS,
            ),
            (
                GUEST_GS_SELECTOR,
                GUEST_GS_BASE,
                GUEST_GS_LIMIT,
                GUEST_GS_ACCESS_RIGHTS,
            ),
            (
                GUEST_TR_SELECTOR,
                GUEST_TR_BASE,
                GUEST_TR_LIMIT,
                GUEST_TR_ACCESS_RIGHTS,
            ),
            (
                GUEST_LDTR_SELECTOR,
                GUEST_LDTR_BASE,
                GUEST_LDTR_LIMIT,
                GUEST_LDTR_ACCESS_RIGHTS,
            ),
        ];
        for ((sel, base, limit, ar), seg) in fields.into_iter().zip(st.segs) {
            vmcs::write(sel, u64::from(seg.selector));
            vmcs::write(base, seg.base);
            vmcs::write(limit, u64::from(seg.limit));
            vmcs::write(ar, u64::from(seg.ar));
        }
        vmcs::write(GUEST_GDTR_BASE, 0);
        vmcs::write(GUEST_GDTR_LIMIT, 0);
        vmcs::write(GUEST_IDTR_BASE, 0);
        vmcs::write(GUEST_IDTR_LIMIT, 0);
        vmcs::write(GUEST_DR7, 0x400);
        vmcs::write(GUEST_RSP, rsp);
        vmcs::write(GUEST_RIP, st.rip);
        vmcs::write(GUEST_RFLAGS, st.rflags);
        vmcs::write(GUEST_PENDING_DEBUG, 0);
        vmcs::write(GUEST_SYSENTER_CS, 0);
        vmcs::write(GUEST_SYSENTER_ESP, 0);
        vmcs::write(GUEST_SYSENTER_EIP, 0);
        vmcs::write(GUEST_IA32_DEBUGCTL, 0);
        vmcs::write(GUEST_IA32_PAT, 0x0007_0406_0007_0406);
        vmcs::write(GUEST_INTERRUPTIBILITY, 0);
        vmcs::write(GUEST_ACTIVITY_STATE, 0);
        vmcs::write(VMCS_LINK_POINTER, u64::MAX);
    }

    /// Advances the guest RIP past the instruction that exited.
    #[inline]
    pub fn skip_instruction(&self) {
        self.advance_rip(vmcs::read(field::EXIT_INSTRUCTION_LENGTH));
    }

    /// Moves RIP past an instruction of `len` bytes that oxen completed for the guest.
    #[inline]
    pub fn advance_rip(&self, len: u64) {
        vmcs::write(
            field::GUEST_RIP,
            vmcs::read(field::GUEST_RIP).wrapping_add(len),
        );
        // The instruction completed, so a shadow it sat in (STI; HLT, MOV SS; ...) is
        // over, as on hardware: without this an interrupt that ends a HLT after STI
        // would wait behind the shadow and then behind the guest's CLI.
        let shadow = vmcs::read(field::GUEST_INTERRUPTIBILITY);
        if shadow & 3 != 0 {
            vmcs::write(field::GUEST_INTERRUPTIBILITY, shadow & !3);
        }
    }

    /// Raises #GP(0) in the guest on the next entry (the instruction is not skipped).
    pub fn inject_gp(&self) {
        vmcs::write(
            field::ENTRY_INTERRUPTION_INFO,
            u64::from(oxen_core::vmcs::inject::GP),
        );
        vmcs::write(field::ENTRY_EXCEPTION_ERROR_CODE, 0);
    }

    /// Raises #UD in the guest on the next entry.
    pub fn inject_ud(&self) {
        vmcs::write(
            field::ENTRY_INTERRUPTION_INFO,
            u64::from(oxen_core::vmcs::inject::UD),
        );
    }

    /// The guest's paging registers, for walking its page tables.
    pub fn paging(&self) -> oxen_core::guest_walk::Paging {
        oxen_core::guest_walk::Paging {
            cr0: vmcs::read(field::GUEST_CR0),
            cr3: vmcs::read(field::GUEST_CR3),
            cr4: vmcs::read(field::GUEST_CR4),
            efer: vmcs::read(field::GUEST_IA32_EFER),
        }
    }

    /// The guest's current privilege level (the DPL of SS).
    pub fn cpl(&self) -> u8 {
        ((vmcs::read(field::GUEST_SS_ACCESS_RIGHTS) >> 5) & 3) as u8
    }

    /// Whether the guest runs in 64-bit mode (EFER.LMA and CS.L).
    pub fn long_mode(&self) -> bool {
        vmcs::read(field::GUEST_IA32_EFER) & (1 << 10) != 0
            && vmcs::read(field::GUEST_CS_ACCESS_RIGHTS) & (1 << 13) != 0
    }

    /// Frees the VMCS (unloaded from every pCPU by then; the domain's memory is
    /// released separately).
    pub fn release(self) {
        self.vmcs.free();
        self.fpu.free();
    }

    /// One line with the state of the guest, for crash reports.
    pub fn dump(&self) -> alloc::string::String {
        use field::*;
        alloc::format!(
            "RIP {:#x} RSP {:#x} RFLAGS {:#x} CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x} CS.ar {:#x} RAX {:#x} RBX {:#x} RCX {:#x} RDX {:#x}",
            vmcs::read(GUEST_RIP),
            vmcs::read(GUEST_RSP),
            vmcs::read(GUEST_RFLAGS),
            vmcs::read(GUEST_CR0),
            vmcs::read(GUEST_CR3),
            vmcs::read(GUEST_CR4),
            vmcs::read(GUEST_IA32_EFER),
            vmcs::read(GUEST_CS_ACCESS_RIGHTS),
            self.regs.rax,
            self.regs.rbx,
            self.regs.rcx,
            self.regs.rdx,
        )
    }
}
