//! `smp`: brings up every secondary vCPU with `VCPUOP_initialise`/`VCPUOP_up`, checks
//! that all of them run (the domain may have more vCPUs than the machine has pCPUs),
//! takes one down and up again, and checks the errors the vCPU and timer calls give
//! for bad arguments. Prints `smp: PASS` and powers off.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use oxen_guest_rt::abi::errno::{EEXIST, EINVAL, ENOENT, EPERM, ETIME};
use oxen_guest_rt::abi::vcpu::{HVM_CONTEXT_SIZE, SSHOTTMR_FUTURE};
use oxen_guest_rt::hypercall::{hypercall, sched_yield};
use oxen_guest_rt::{StartInfo, println, time, vcpu};

oxen_guest_rt::entry!(main);

static SPINS: [AtomicU64; vcpu::MAX_SECONDARY + 1] =
    [const { AtomicU64::new(0) }; vcpu::MAX_SECONDARY + 1];

extern "C" fn secondary(n: u32) -> ! {
    let counter = &SPINS[n as usize];
    let mut i = 0u64;
    loop {
        counter.fetch_add(1, Ordering::Relaxed);
        i += 1;
        // Sleep now and then: the timer works on every vCPU.
        if i.is_multiple_of(4096) {
            vcpu::sleep_until(n, time::now_ns() + 1_000_000);
        }
    }
}

static FAILURES: AtomicU64 = AtomicU64::new(0);

fn check(ok: bool, what: &str) {
    if !ok {
        FAILURES.fetch_add(1, Ordering::Relaxed);
        println!("smp: FAIL {what}");
    }
}

/// Yields until `cond` holds or `ms` milliseconds of system time pass.
fn wait_for(ms: u64, cond: impl Fn() -> bool) -> bool {
    let end = time::now_ns() + ms * 1_000_000;
    while time::now_ns() < end {
        if cond() {
            return true;
        }
        sched_yield();
    }
    cond()
}

fn main(_info: &StartInfo) {
    // Bad arguments first, while vCPU 1 is still down and uninitialised.
    check(
        vcpu::up(1) == -EINVAL,
        "VCPUOP_up before initialise is -EINVAL",
    );
    check(vcpu::is_up(1) == 0, "vCPU 1 starts down");
    check(vcpu::is_up(999) == -ENOENT, "is_up of vCPU 999 is -ENOENT");
    check(
        vcpu::up(u32::MAX) == -ENOENT,
        "up of vCPU 2^32-1 is -ENOENT",
    );
    check(
        vcpu::initialise_raw(1, &[0xff; HVM_CONTEXT_SIZE]) == -EINVAL,
        "a context with an unknown mode is -EINVAL",
    );
    let mut bad = [0u8; HVM_CONTEXT_SIZE];
    bad[0] = 1; // 64-bit mode, but CR0/CR4/EFER all zero
    check(
        vcpu::initialise_raw(1, &bad) == -EINVAL,
        "a 64-bit context without paging is -EINVAL",
    );
    // SAFETY: a pointer the hypervisor cannot read: it must answer -EFAULT.
    let rc = unsafe { vcpu::vcpu_op(0, 1, 0xdead_0000_0000) };
    check(rc == -14, "an unreadable context is -EFAULT");
    check(
        vcpu::down(0) == -EINVAL,
        "the last vCPU that is up cannot go down",
    );
    check(
        vcpu::set_timer(0, 1, SSHOTTMR_FUTURE) == -ETIME,
        "a past deadline with VCPU_SSHOTTMR_future is -ETIME",
    );
    check(
        vcpu::set_timer(1, u64::MAX, 0) == -EINVAL,
        "another vCPU's timer is -EINVAL",
    );
    check(vcpu::stop_timer(0) == 0, "stop_singleshot_timer");
    // SAFETY: no argument; an unknown sub-op.
    check(
        unsafe { vcpu::vcpu_op(77, 0, 0) } == -38,
        "an unknown vcpu_op is -ENOSYS",
    );
    // An unprivileged domain may not use domctl.
    let op = [0u8; 144];
    // SAFETY: the hypervisor refuses before reading.
    let rc = unsafe { hypercall(36, op.as_ptr() as u64, 0, 0, 0, 0) };
    check(rc == -EPERM, "domctl from an unprivileged domain is -EPERM");

    let start = time::now_ns();
    vcpu::sleep_until(0, start + 5_000_000);
    check(
        time::now_ns() >= start + 5_000_000,
        "a 5 ms sleep lasts 5 ms",
    );

    check(
        vcpu::initialise(1, secondary, vcpu::stack_top(1)) == 0,
        "initialise vCPU 1",
    );
    check(
        vcpu::initialise(1, secondary, vcpu::stack_top(1)) == -EEXIST,
        "a second initialise is -EEXIST",
    );
    let n = vcpu::start_all(secondary);
    println!("smp: {n} vCPUs started");
    check(n >= 2, "the domain has secondary vCPUs");
    for k in 1..n {
        check(vcpu::is_up(k) == 1, "every started vCPU is up");
    }
    let all_ran = wait_for(3000, || {
        (1..n as usize).all(|k| SPINS[k].load(Ordering::Relaxed) > 10_000)
    });
    check(all_ran, "every secondary vCPU runs");
    if all_ran {
        println!("smp: all {n} vCPUs ran");
    }

    // Down and up again.
    check(vcpu::down(1) == 0, "VCPUOP_down(1)");
    check(vcpu::is_up(1) == 0, "vCPU 1 is down");
    wait_for(20, || false);
    let frozen = SPINS[1].load(Ordering::Relaxed);
    wait_for(50, || false);
    check(
        SPINS[1].load(Ordering::Relaxed) == frozen,
        "a down vCPU does not run",
    );
    check(vcpu::up(1) == 0, "VCPUOP_up(1) again");
    check(
        wait_for(1000, || SPINS[1].load(Ordering::Relaxed) > frozen + 1000),
        "vCPU 1 runs again where it stopped",
    );

    let failures = FAILURES.load(Ordering::Relaxed);
    if failures == 0 {
        println!("smp: PASS ({n} vCPUs)");
    } else {
        panic!("smp: {failures} check(s) failed");
    }
}
