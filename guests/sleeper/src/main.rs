//! `sleeper`: sleeps on its single-shot timer (`VCPUOP_set_singleshot_timer` +
//! `SCHEDOP_block`) for `period_us` (default 3000) at a time and measures how late it
//! runs after each deadline: the wake-to-run latency the scheduler gives a vCPU that
//! wakes from blocking. Reports every 100 wakes; powers off after `wakes` wakes if given.
#![no_std]
#![no_main]

use oxen_guest_rt::{StartInfo, println, time, vcpu};

oxen_guest_rt::entry!(main);

fn main(info: &StartInfo) {
    let arg = |k: &str, default: u64| {
        info.cmdline_arg(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let period = arg("period_us", 3000) * 1000;
    let limit = arg("wakes", 0);
    println!("sleeper: sleeping {} us at a time", period / 1000);
    let (mut wakes, mut total, mut max) = (0u64, 0u64, 0u64);
    loop {
        let deadline = time::now_ns() + period;
        vcpu::sleep_until(0, deadline);
        let late = time::now_ns() - deadline;
        wakes += 1;
        total += late;
        max = max.max(late);
        if wakes % 100 == 0 || wakes == limit {
            println!(
                "sleeper: {wakes} wakes, wake-to-run latency mean {} us, max {} us",
                total / wakes / 1000,
                max / 1000
            );
        }
        if wakes == limit {
            println!("sleeper: PASS");
            return;
        }
    }
}
