//! `vcpu_op`: secondary vCPUs and the single-shot timer, and sleeping with
//! `SCHEDOP_block`.
//!
//! A secondary vCPU starts in 64-bit mode on vCPU 0's page tables (Xen's
//! `VCPU_HVM_MODE_64B`), at [`rt_ap_start64`] with its own stack: it loads the
//! runtime's GDT and IDT and calls the function it was given with its vCPU number.

use oxen_abi::hypercall as nr;
use oxen_abi::vcpu::{self as abi, HvmContext};

use crate::arch;
use crate::hypercall::{hypercall, sched_op};

/// `vcpu_op(cmd, vcpu, arg)`.
///
/// # Safety
/// `arg` must point to what `cmd` expects (or be unused by it).
pub unsafe fn vcpu_op(cmd: u32, vcpu: u32, arg: u64) -> i64 {
    // SAFETY: as for this function.
    unsafe { hypercall(nr::VCPU_OP, u64::from(cmd), u64::from(vcpu), arg, 0, 0) }
}

/// The entry of a secondary vCPU: called with its number, never returns.
pub type ApMain = extern "C" fn(u32) -> !;

core::arch::global_asm!(
    ".pushsection .text.rt_ap, \"ax\"",
    ".global rt_ap_start64",
    // RDI = vCPU number, RSI = its main, RSP = its stack (from the start-up context).
    "rt_ap_start64:",
    "lgdt [rip + rt_gdt_ptr]",
    "lea rax, [rip + 2f]",
    "push 0x08",
    "push rax",
    "retfq",
    "2:",
    "mov eax, 0x10",
    "mov ds, eax",
    "mov es, eax",
    "mov ss, eax",
    "xor eax, eax",
    "mov fs, eax",
    "mov gs, eax",
    "and rsp, -16",
    "xor ebp, ebp",
    "call {enter}",
    "ud2",
    ".popsection",
    enter = sym rt_ap_enter,
);

unsafe extern "C" {
    fn rt_ap_start64();
}

extern "C" fn rt_ap_enter(n: u32, main: ApMain) -> ! {
    crate::fault::load_idt();
    main(n)
}

/// Gives vCPU `n` its start-up state (`VCPUOP_initialise`): 64-bit mode on this vCPU's
/// page tables, running `main(n)` on the stack that ends at `stack_top`.
pub fn initialise(n: u32, main: ApMain, stack_top: u64) -> i64 {
    let mut gprs = [0u64; 8];
    gprs[4] = stack_top; // RSP
    gprs[6] = main as usize as u64; // RSI
    gprs[7] = u64::from(n); // RDI
    let ctx = HvmContext::Mode64 {
        gprs,
        rip: rt_ap_start64 as *const () as u64,
        rflags: 0x2,
        cr0: arch::read_cr0(),
        cr3: arch::read_cr3(),
        cr4: arch::read_cr4(),
        // SAFETY: EFER exists on every 64-bit CPU.
        efer: unsafe { arch::rdmsr(0xc000_0080) },
    };
    let bytes = ctx.to_bytes();
    initialise_raw(n, &bytes)
}

/// `VCPUOP_initialise` with the given bytes as the context (for hostile tests).
pub fn initialise_raw(n: u32, ctx: &[u8]) -> i64 {
    // SAFETY: the hypervisor only reads the context.
    unsafe { vcpu_op(abi::op::INITIALISE, n, ctx.as_ptr() as u64) }
}

/// `VCPUOP_up`.
pub fn up(n: u32) -> i64 {
    // SAFETY: no argument.
    unsafe { vcpu_op(abi::op::UP, n, 0) }
}

/// `VCPUOP_down`.
pub fn down(n: u32) -> i64 {
    // SAFETY: no argument.
    unsafe { vcpu_op(abi::op::DOWN, n, 0) }
}

/// `VCPUOP_is_up`.
pub fn is_up(n: u32) -> i64 {
    // SAFETY: no argument.
    unsafe { vcpu_op(abi::op::IS_UP, n, 0) }
}

/// `VCPUOP_set_singleshot_timer` for the calling vCPU `me`.
pub fn set_timer(me: u32, deadline_ns: u64, flags: u32) -> i64 {
    let arg = abi::SingleshotTimer {
        timeout_abs_ns: deadline_ns,
        flags,
    }
    .to_bytes();
    // SAFETY: the hypervisor only reads the argument.
    unsafe { vcpu_op(abi::op::SET_SINGLESHOT_TIMER, me, arg.as_ptr() as u64) }
}

/// `VCPUOP_stop_singleshot_timer` for the calling vCPU `me`.
pub fn stop_timer(me: u32) -> i64 {
    // SAFETY: no argument.
    unsafe { vcpu_op(abi::op::STOP_SINGLESHOT_TIMER, me, 0) }
}

/// `VCPUOP_register_runstate_memory_area`'s number, for [`vcpu_op`].
pub const REGISTER_RUNSTATE_MEMORY_AREA: u32 = abi::op::REGISTER_RUNSTATE_MEMORY_AREA;

/// `VCPUOP_set_periodic_timer` of vCPU `n`: `VIRQ_TIMER` every `period_ns`.
pub fn set_periodic_timer(n: u32, period_ns: u64) -> i64 {
    let arg = abi::PeriodicTimer { period_ns }.to_bytes();
    // SAFETY: the hypervisor only reads the argument.
    unsafe { vcpu_op(abi::op::SET_PERIODIC_TIMER, n, arg.as_ptr() as u64) }
}

/// `VCPUOP_stop_periodic_timer` of vCPU `n`.
pub fn stop_periodic_timer(n: u32) -> i64 {
    // SAFETY: no argument.
    unsafe { vcpu_op(abi::op::STOP_PERIODIC_TIMER, n, 0) }
}

/// `VCPUOP_get_runstate_info` of vCPU `n`.
pub fn runstate(n: u32) -> Result<abi::RunstateInfo, i64> {
    let mut b = [0u8; abi::RunstateInfo::SIZE];
    // SAFETY: the hypervisor writes the structure's bytes into `b`, which is that big.
    let rc = unsafe { vcpu_op(abi::op::GET_RUNSTATE_INFO, n, b.as_mut_ptr() as u64) };
    if rc != 0 {
        return Err(rc);
    }
    Ok(abi::RunstateInfo::from_bytes(&b).unwrap_or_default())
}

/// `SCHEDOP_block`: waits for a wake (the timer, or a spurious one).
pub fn block() -> i64 {
    // SAFETY: block takes no argument.
    unsafe { sched_op(oxen_abi::sched_op::BLOCK, 0) }
}

/// Sleeps until system time `deadline_ns` (timer + block, again after an early wake).
pub fn sleep_until(me: u32, deadline_ns: u64) {
    while crate::time::now_ns() < deadline_ns {
        set_timer(me, deadline_ns, 0);
        block();
    }
}

/// Stack bytes of each secondary vCPU the runtime starts.
const AP_STACK_BYTES: usize = 16 * 1024;
/// Most secondary vCPUs [`start_all`] starts.
pub const MAX_SECONDARY: usize = 15;

#[repr(C, align(16))]
struct Stacks([[u8; AP_STACK_BYTES]; MAX_SECONDARY]);

static mut AP_STACKS: Stacks = Stacks([[0; AP_STACK_BYTES]; MAX_SECONDARY]);

/// The top of the runtime's stack for secondary vCPU `n` (1..=[`MAX_SECONDARY`]).
pub fn stack_top(n: u32) -> u64 {
    let stacks = &raw mut AP_STACKS;
    (stacks as u64) + (n as u64) * AP_STACK_BYTES as u64
}

/// Which vCPU runs on the stack holding `addr`: `n` on the runtime's stack of secondary
/// vCPU `n`, else 0 (the boot stack, or a stack of the guest's own).
pub fn on_stack(addr: u64) -> usize {
    let base = &raw const AP_STACKS as u64;
    let size = AP_STACK_BYTES as u64;
    if addr < base || addr >= base + size * MAX_SECONDARY as u64 {
        0
    } else {
        // Stack `n` occupies [base + (n-1)*size, base + n*size).
        ((addr - base) / size) as usize + 1
    }
}

/// Starts every secondary vCPU the domain has (up to [`MAX_SECONDARY`]), each running
/// `main(n)` on its own stack. Returns the domain's vCPU count.
pub fn start_all(main: ApMain) -> u32 {
    let mut n = 1;
    while (n as usize) <= MAX_SECONDARY {
        match initialise(n, main, stack_top(n)) {
            0 => {}
            // Already given its state (by the caller): just bring it up.
            e if e == -oxen_abi::errno::EEXIST => {}
            e if e == -oxen_abi::errno::ENOENT => break,
            e => {
                crate::println!("guest: VCPUOP_initialise({n}) failed: {e}");
                break;
            }
        }
        let rc = up(n);
        if rc != 0 {
            crate::println!("guest: VCPUOP_up({n}) failed: {rc}");
            break;
        }
        n += 1;
    }
    n
}
