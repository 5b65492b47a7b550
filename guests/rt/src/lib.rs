//! `oxen-guest-rt`: the runtime oxen's test guests share.
//!
//! A guest is a static ELF linked at physical 1 MiB (see `guests/rt/link.ld`) that oxen
//! boots like Xen boots a PVH guest. The runtime takes it from the 32-bit PVH entry to
//! 64-bit Rust (`boot.rs`), installs an IDT that reports exceptions and crashes the domain
//! (`fault.rs`, with [`expect_fault`] as the escape hatch), sets up the hypercall page
//! (`hypercall.rs`), and calls the guest's main, supplied with [`entry!`]. Returning from
//! main powers the domain off; a panic crashes it.
#![no_std]

pub mod arch;
mod boot;
pub mod console;
pub mod control;
pub mod events;
mod fault;
pub mod grant;
pub mod hypercall;
pub mod mm;
pub mod start_info;
pub mod time;
pub mod vcpu;
pub mod xen;
pub mod xenbus;
pub mod xencons;

pub use fault::{
    ExceptionFrame, ExceptionHook, expect_fault, route_vector, set_exception_hook, set_gate,
};
pub use hypercall::{hypercall, shutdown, vmcall};
pub use oxen_abi as abi;
pub use start_info::StartInfo;

unsafe extern "Rust" {
    /// The guest's main, defined by [`entry!`].
    fn oxen_guest_main(info: &StartInfo);
}

/// Declares the guest's main: `oxen_guest_rt::entry!(main);` with `fn main(info: &StartInfo)`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        fn oxen_guest_main(info: &$crate::StartInfo) {
            let f: fn(&$crate::StartInfo) = $main;
            f(info)
        }
    };
}

/// The TSC when the runtime made the guest's first hypercall (the TSC is the
/// hypervisor's, not offset: a control domain can compare it with its own).
static FIRST_HYPERCALL_TSC: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The TSC at the guest's first hypercall.
pub fn first_hypercall_tsc() -> u64 {
    FIRST_HYPERCALL_TSC.load(core::sync::atomic::Ordering::Relaxed)
}

/// Called from the 64-bit boot code with the start-info address from EBX.
pub(crate) extern "C" fn rt_entry(start_info_paddr: u64) -> ! {
    fault::init_idt();
    if !hypercall::init_page() {
        println!("guest: hypercall page not filled (not on oxen/Xen?); console on port 0xe9");
    }
    // Console output moves to the PV console ring if the hypervisor provides one. Its
    // HVM parameter reads are the guest's first hypercalls.
    FIRST_HYPERCALL_TSC.store(arch::rdtsc(), core::sync::atomic::Ordering::Relaxed);
    xencons::init();
    // SAFETY: this is the address the hypervisor passed at entry.
    let info = unsafe { StartInfo::from_paddr(start_info_paddr) };
    let magic = info.magic();
    if magic != start_info::MAGIC {
        panic!("bad hvm_start_info magic {magic:#x} at {start_info_paddr:#x}");
    }
    // SAFETY: `oxen_guest_main` is defined by the guest binary through `entry!`.
    unsafe { oxen_guest_main(&info) };
    shutdown(abi::sched_op::SHUTDOWN_POWEROFF)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    match info.location() {
        Some(l) => println!("PANIC at {}:{}: {}", l.file(), l.line(), info.message()),
        None => println!("PANIC: {}", info.message()),
    }
    shutdown(abi::sched_op::SHUTDOWN_CRASH)
}
