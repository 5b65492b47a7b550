//! Leaving the machine: emulator exit devices, then halt.

use super::{cpu, serial};

/// Powers the machine off where we know how (QEMU's isa-debug-exit, Bochs' shutdown
/// port); otherwise halts this CPU.
pub fn poweroff() -> ! {
    log::info!("power: powering off");
    serial::flush();
    // Let the last line leave the emulated UART before the emulator goes away.
    cpu::spin_tsc(serial::tsc_hz() / 50);
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit (value 0x10 exits with status 33) and
    // 0x8900 is Bochs' shutdown port; on other machines these ports are unused.
    unsafe {
        cpu::outl(0xf4, 0x10);
        for b in *b"Shutdown" {
            cpu::outb(0x8900, b);
        }
    }
    log::warn!("power: no poweroff device answered; halting");
    cpu::halt_forever();
}
