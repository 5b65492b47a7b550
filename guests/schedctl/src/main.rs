//! `schedctl`: the control domain's scheduler calls. Reads domain `target`'s credit
//! parameters with `domctl(XEN_DOMCTL_scheduler_op, getinfo)`, waits `after_ms` of its
//! own run, sets the weight to `weight` (putinfo) and reads it back, and checks the
//! errors bad requests get; with `shutdown_target=1` it then shuts the target down
//! (`SCHEDOP_remote_shutdown`). Prints `schedctl: PASS` and powers off.
#![no_std]
#![no_main]

use oxen_guest_rt::abi::domctl::{self, offset};
use oxen_guest_rt::abi::errno::{EACCES, EINVAL, ESRCH};
use oxen_guest_rt::abi::hypercall as nr;
use oxen_guest_rt::hypercall::hypercall;
use oxen_guest_rt::{StartInfo, println, time, vcpu};

oxen_guest_rt::entry!(main);

/// A `struct xen_domctl` for `XEN_DOMCTL_scheduler_op` on the credit scheduler.
fn sched_op(domain: u16, cmd: u32, weight: u16, cap: u16) -> [u8; domctl::SIZE] {
    let mut op = [0u8; domctl::SIZE];
    op[offset::CMD..][..4].copy_from_slice(&domctl::cmd::SCHEDULER_OP.to_le_bytes());
    op[offset::INTERFACE_VERSION..][..4].copy_from_slice(&domctl::INTERFACE_VERSION.to_le_bytes());
    op[offset::DOMAIN..][..2].copy_from_slice(&domain.to_le_bytes());
    op[offset::SCHED_ID..][..4].copy_from_slice(&domctl::SCHEDULER_CREDIT.to_le_bytes());
    op[offset::SCHED_CMD..][..4].copy_from_slice(&cmd.to_le_bytes());
    op[offset::CREDIT_WEIGHT..][..2].copy_from_slice(&weight.to_le_bytes());
    op[offset::CREDIT_CAP..][..2].copy_from_slice(&cap.to_le_bytes());
    op
}

fn call(op: &mut [u8; domctl::SIZE]) -> i64 {
    // SAFETY: `op` is a whole xen_domctl the hypervisor may read and write.
    unsafe { hypercall(nr::DOMCTL, op.as_mut_ptr() as u64, 0, 0, 0, 0) }
}

/// (weight, cap) of `domain`, as the runtime's toolstack calls read them.
fn getinfo(domain: u16) -> Result<(u16, u16), i64> {
    oxen_guest_rt::control::credit(domain, None)
}

fn main(info: &StartInfo) {
    let arg = |k: &str, default: u64| {
        info.cmdline_arg(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let target = arg("target", 1) as u16;
    let weight = arg("weight", 512) as u16;
    let after = arg("after_ms", 0) * 1_000_000;
    let mut failures = 0;
    let mut check = |ok: bool, what: &str| {
        if !ok {
            failures += 1;
            println!("schedctl: FAIL {what}");
        }
    };
    let before = getinfo(target);
    println!("schedctl: domain {target}: (weight, cap) = {before:?}");
    check(before.is_ok(), "getinfo on the target");
    check(
        getinfo(999) == Err(-ESRCH),
        "getinfo on a missing domain is -ESRCH",
    );
    let mut op = sched_op(target, domctl::SCHEDOP_GETINFO, 0, 0);
    op[offset::INTERFACE_VERSION] ^= 1;
    check(
        call(&mut op) == -EACCES,
        "a wrong interface version is -EACCES",
    );
    let mut op = sched_op(target, domctl::SCHEDOP_GETINFO, 0, 0);
    op[offset::SCHED_ID] = 6;
    check(
        call(&mut op) == -EINVAL,
        "another scheduler's id is -EINVAL",
    );
    let mut op = sched_op(target, domctl::SCHEDOP_PUTINFO, 0, 60_000);
    check(
        call(&mut op) == -EINVAL,
        "a cap above 100 per vCPU is -EINVAL",
    );
    let mut op = sched_op(target, 9, 0, 0);
    check(
        call(&mut op) == -EINVAL,
        "an unknown scheduler_op is -EINVAL",
    );

    let t0 = time::now_ns();
    while time::now_ns() < t0 + after {
        vcpu::sleep_until(0, (t0 + after).min(time::now_ns() + 10_000_000));
    }
    let mut op = sched_op(target, domctl::SCHEDOP_PUTINFO, weight, 0);
    check(call(&mut op) == 0, "putinfo");
    let after_put = getinfo(target);
    println!(
        "schedctl: domain {target}: weight set to {weight} at {} ms; now {after_put:?}",
        time::now_ns() / 1_000_000
    );
    check(
        after_put == Ok((weight, 0)),
        "getinfo reads the new weight back",
    );
    if arg("shutdown_target", 0) != 0 {
        use oxen_guest_rt::abi::sched_op::SHUTDOWN_POWEROFF;
        use oxen_guest_rt::hypercall::remote_shutdown;
        check(
            remote_shutdown(target, 77) == -EINVAL,
            "remote_shutdown with an unknown reason is -EINVAL",
        );
        check(
            remote_shutdown(999, SHUTDOWN_POWEROFF) == -ESRCH,
            "remote_shutdown of a missing domain is -ESRCH",
        );
        check(
            remote_shutdown(target, SHUTDOWN_POWEROFF) == 0,
            "remote_shutdown of the target",
        );
        check(
            remote_shutdown(target, SHUTDOWN_POWEROFF) == -ESRCH,
            "a second remote_shutdown finds no running domain (-ESRCH)",
        );
        println!("schedctl: domain {target} shut down remotely");
    }
    if failures == 0 {
        println!("schedctl: PASS");
    } else {
        panic!("schedctl: {failures} check(s) failed");
    }
}
