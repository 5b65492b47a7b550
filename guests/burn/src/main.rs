//! `burn`: burns CPU on every vCPU the domain has and reports its progress every 100 ms
//! of system time (`burn: at <ms> ms: <loops> loops, ran <us> us`), so a scenario can
//! compare what the domain got with what the hypervisor's accounting says. Two counters,
//! both kept by the guest alone: chunks of work done, and the time it saw itself run
//! (summed over its vCPUs: the TSC advancing less than 200 us between two chunks counts
//! as running; a larger gap means the vCPU was descheduled). Never ends by itself.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use oxen_guest_rt::{StartInfo, println, time, vcpu};

oxen_guest_rt::entry!(main);

/// One vCPU's counter, alone on its page.
#[repr(align(4096))]
struct Counter(AtomicU64);

/// Work chunks done, per vCPU.
static LOOPS: [Counter; vcpu::MAX_SECONDARY + 1] =
    [const { Counter(AtomicU64::new(0)) }; vcpu::MAX_SECONDARY + 1];

/// One chunk of work: a few thousand instructions of arithmetic.
/// TSC ticks each vCPU saw itself run.
static SEEN: [Counter; vcpu::MAX_SECONDARY + 1] =
    [const { Counter(AtomicU64::new(0)) }; vcpu::MAX_SECONDARY + 1];

fn seen(n: usize, last: &mut u64) {
    let now = oxen_guest_rt::arch::rdtsc();
    let gap = now - *last;
    *last = now;
    if time::tsc_to_ns(gap) < 200_000 {
        SEEN[n].0.fetch_add(gap, Ordering::Relaxed);
    }
}

fn chunk(counter: &AtomicU64) {
    let mut x = core::hint::black_box(0x9e37_79b9_7f4a_7c15u64);
    for _ in 0..500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    // Leave our mark in a vector register: a sleeper sharing the pCPU checks that it
    // never sees it (each vCPU's FPU/SIMD state is its own).
    // SAFETY: writing XMM7 only changes this vCPU's own SIMD state.
    unsafe { core::arch::asm!("movq xmm7, {}", in(reg) x, options(nomem, nostack)) };
    counter.fetch_add(1, Ordering::Relaxed);
}

extern "C" fn secondary(n: u32) -> ! {
    let counter = &LOOPS[n as usize].0;
    let mut last = oxen_guest_rt::arch::rdtsc();
    loop {
        chunk(counter);
        seen(n as usize, &mut last);
    }
}

fn main(_info: &StartInfo) {
    let vcpus = vcpu::start_all(secondary);
    println!("burn: {vcpus} vCPU(s) burning");
    let every = 100_000_000;
    let mut next = time::now_ns() / every * every + every;
    let mut last = oxen_guest_rt::arch::rdtsc();
    loop {
        chunk(&LOOPS[0].0);
        seen(0, &mut last);
        let now = time::now_ns();
        if now >= next {
            let loops: u64 = LOOPS.iter().map(|c| c.0.load(Ordering::Relaxed)).sum();
            let ran: u64 = SEEN.iter().map(|c| c.0.load(Ordering::Relaxed)).sum();
            println!(
                "burn: at {} ms: {loops} loops, ran {} us",
                now / 1_000_000,
                time::tsc_to_ns(ran) / 1000
            );
            next = now / every * every + every;
        }
    }
}
