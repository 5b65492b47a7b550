//! Hypercalls: through the hypercall page (the normal path) or a raw inline VMCALL.
//!
//! Calling convention (Xen, 64-bit HVM): number in RAX, arguments in RDI, RSI, RDX,
//! R10, R8, result in RAX.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

use oxen_abi::hypercall as nr;

unsafe extern "C" {
    static rt_hypercall_page: u8;
}

// The hypercall page: 4 KiB of page-aligned text. Writing its address to the hypercall
// MSR has the hypervisor fill it with 32-byte stubs (`mov eax, N; vmcall; ret`).
core::arch::global_asm!(
    ".pushsection .text.rt_hypercall_page, \"ax\"",
    ".balign 4096",
    ".global rt_hypercall_page",
    "rt_hypercall_page:",
    ".fill 4096, 1, 0xcc",
    ".popsection",
);

static PAGE_READY: AtomicBool = AtomicBool::new(false);

/// Guest-physical (== virtual) address of the hypercall page.
pub fn page_address() -> u64 {
    &raw const rt_hypercall_page as u64
}

/// Whether the hypervisor filled the hypercall page.
pub fn page_ready() -> bool {
    PAGE_READY.load(Ordering::Relaxed)
}

/// Asks the hypervisor to fill the hypercall page. Returns whether it did.
pub(crate) fn init_page() -> bool {
    let page = page_address();
    // SAFETY: the hypercall MSR is Xen's interface for this; the page is ours and
    // only contains filler.
    let written = unsafe { crate::arch::try_wrmsr(oxen_abi::cpuid::HYPERCALL_MSR, page) };
    // SAFETY: the page is mapped, readable text.
    let first = unsafe { core::ptr::read_volatile(page as *const u8) };
    let ready = written.is_ok() && first != 0xcc;
    PAGE_READY.store(ready, Ordering::Relaxed);
    ready
}

/// Issues hypercall `nr` through the hypercall page (or a raw VMCALL if the page was
/// never filled).
///
/// # Safety
/// Pointer arguments let the hypervisor write guest memory: they must be valid for what
/// the hypercall does with them.
pub unsafe fn hypercall(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    if !page_ready() || nr >= 4096 / 32 {
        // SAFETY: as for this function.
        return unsafe { vmcall(u64::from(nr), a1, a2, a3, a4, a5) };
    }
    let stub = page_address() + 32 * u64::from(nr);
    let ret: i64;
    // SAFETY: the stub is hypervisor-provided code that issues the hypercall and returns;
    // the caller vouches for the arguments. Argument registers are treated as clobbered.
    unsafe {
        asm!(
            "call {stub}",
            stub = in(reg) stub,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r9") _,
            lateout("r11") _,
        )
    };
    ret
}

/// Issues a hypercall with an inline VMCALL, bypassing the hypercall page. `nr` is a full
/// 64-bit RAX value (for testing out-of-range numbers).
///
/// # Safety
/// As [`hypercall`].
pub unsafe fn vmcall(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: i64;
    // SAFETY: VMCALL traps to the hypervisor; the caller vouches for the arguments.
    unsafe {
        asm!(
            "vmcall",
            inlateout("rax") nr as i64 => ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            options(nostack),
        )
    };
    ret
}

/// `console_io(CONSOLEIO_write, len, buf)`.
pub fn console_write(bytes: &[u8]) -> i64 {
    // SAFETY: the hypervisor only reads `bytes`.
    unsafe {
        hypercall(
            nr::CONSOLE_IO,
            u64::from(oxen_abi::console_io::WRITE),
            bytes.len() as u64,
            bytes.as_ptr() as u64,
            0,
            0,
        )
    }
}

/// `console_io(CONSOLEIO_read, len, buf)`: typed input for the control domain (the
/// number of bytes read, or a negative errno).
pub fn console_read(buf: &mut [u8]) -> i64 {
    // SAFETY: the hypervisor writes at most `buf.len()` bytes into `buf`.
    unsafe {
        hypercall(
            nr::CONSOLE_IO,
            u64::from(oxen_abi::console_io::READ),
            buf.len() as u64,
            buf.as_mut_ptr() as u64,
            0,
            0,
        )
    }
}

/// `sched_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point to the structure `cmd` expects (or be unused by it).
pub unsafe fn sched_op(cmd: u32, arg: u64) -> i64 {
    // SAFETY: as for this function.
    unsafe { hypercall(nr::SCHED_OP, u64::from(cmd), arg, 0, 0, 0) }
}

/// `sched_op(SCHEDOP_yield)`.
pub fn sched_yield() -> i64 {
    // SAFETY: yield takes no argument.
    unsafe { sched_op(oxen_abi::sched_op::YIELD, 0) }
}

/// `xen_version(cmd, arg)`.
///
/// # Safety
/// `arg` must point to a buffer of the size `cmd` writes (or be unused by it).
pub unsafe fn xen_version(cmd: u32, arg: u64) -> i64 {
    // SAFETY: as for this function.
    unsafe { hypercall(nr::XEN_VERSION, u64::from(cmd), arg, 0, 0, 0) }
}

/// `SCHEDOP_remote_shutdown`: shuts domain `domid` down with `reason` (privileged
/// callers only).
pub fn remote_shutdown(domid: u16, reason: u32) -> i64 {
    let arg = oxen_abi::SchedRemoteShutdown {
        domain_id: domid,
        reason,
    }
    .to_bytes();
    // SAFETY: `arg` is a valid sched_remote_shutdown for the duration of the call.
    unsafe { sched_op(oxen_abi::sched_op::REMOTE_SHUTDOWN, arg.as_ptr() as u64) }
}

/// Shuts the domain down with `reason` (`SHUTDOWN_*`). Never returns: if the hypervisor
/// returns from the hypercall, the vCPU halts forever.
pub fn shutdown(reason: u32) -> ! {
    let arg = reason; // struct sched_shutdown { unsigned int reason; }
    // SAFETY: `arg` is a valid sched_shutdown for the duration of the call.
    let rc = unsafe { sched_op(oxen_abi::sched_op::SHUTDOWN, &raw const arg as u64) };
    crate::println!("guest: SCHEDOP_shutdown({reason}) returned {rc}; halting");
    halt_forever()
}

/// Halts the vCPU with interrupts off, forever.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: halting with interrupts off stops the vCPU; nothing else to do.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
