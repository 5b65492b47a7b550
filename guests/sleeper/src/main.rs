//! `sleeper`: sleeps on its single-shot timer (`VCPUOP_set_singleshot_timer` +
//! `SCHEDOP_block`) for `period_us` (default 3000) at a time and measures how late it
//! runs after each deadline: the wake-to-run latency the scheduler gives a vCPU that
//! wakes from blocking. Reports every 100 wakes; powers off after `wakes` wakes if given.
//! Each sleep also checks that a value it left in XMM7 survives other vCPUs running on
//! the pCPU (the `burn` guests write theirs there), and crashes the domain if not.
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
        // A value in a vector register must survive the sleep: other vCPUs run on this
        // pCPU meanwhile.
        let mark = 0x5eed_0000_0000_0000 | wakes;
        // SAFETY: writing XMM7 only changes this vCPU's own SIMD state.
        unsafe { core::arch::asm!("movq xmm7, {}", in(reg) mark, options(nomem, nostack)) };
        vcpu::sleep_until(0, deadline);
        let seen: u64;
        // SAFETY: reading XMM7.
        unsafe { core::arch::asm!("movq {}, xmm7", out(reg) seen, options(nomem, nostack)) };
        if seen != mark {
            panic!("sleeper: XMM7 changed while asleep: {mark:#x} became {seen:#x}");
        }
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
