//! Calibration: the TSC against the 8254 PIT (channel 2), then the local APIC timer
//! against the TSC.

use super::{apic, cpu};

const PIT_HZ: u64 = 1_193_182;
/// Length of each calibration window.
const WINDOW_MS: u64 = 10;

/// Measures the TSC frequency over a 10 ms PIT one-shot.
pub fn tsc_hz() -> u64 {
    let count = (PIT_HZ * WINDOW_MS / 1000) as u16;
    // SAFETY: port 0x61 gates PIT channel 2 (speaker output kept off), 0x43/0x42 program
    // channel 2. Nothing else in oxen uses channel 2.
    let start = unsafe {
        let gate = cpu::inb(0x61);
        cpu::outb(0x61, gate & !0x03); // gate low, speaker off
        cpu::outb(0x43, 0b1011_0000); // channel 2, lo/hi byte, mode 0, binary
        cpu::outb(0x42, count as u8);
        cpu::outb(0x42, (count >> 8) as u8);
        cpu::outb(0x61, (gate & !0x02) | 0x01); // gate high: counting starts
        cpu::rdtsc()
    };
    // SAFETY: reading port 0x61 has no side effects; bit 5 is channel 2's output.
    while unsafe { cpu::inb(0x61) } & 0x20 == 0 {
        core::hint::spin_loop();
    }
    (cpu::rdtsc() - start) * (1000 / WINDOW_MS)
}

/// Measures the local APIC timer (divide by 16) over 10 ms of TSC time.
pub fn apic_timer_hz(tsc_hz: u64) -> u64 {
    apic::timer_start_free_running();
    let start = apic::timer_current();
    cpu::spin_tsc(tsc_hz * WINDOW_MS / 1000);
    u64::from(start.wrapping_sub(apic::timer_current())) * (1000 / WINDOW_MS)
}
