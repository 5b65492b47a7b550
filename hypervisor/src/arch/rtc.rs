//! The CMOS real-time clock: read once at boot for the guests' wallclock.

use oxen_core::time::{rtc_value, unix_seconds};

use super::cpu;

const INDEX: u16 = 0x70;
const DATA: u16 = 0x71;

fn read(reg: u8) -> u8 {
    // SAFETY: ports 0x70/0x71 are the CMOS index and data registers; selecting a
    // register and reading it has no other effect (NMIs stay enabled: bit 7 clear).
    unsafe {
        cpu::outb(INDEX, reg);
        cpu::inb(DATA)
    }
}

/// The RTC's time as seconds since the Unix epoch, or `None` if there is no sensible
/// RTC (all-ones registers, an impossible date).
pub fn unix_time() -> Option<u64> {
    let snapshot = || {
        // Wait (bounded) while an update is in progress (status A bit 7).
        for _ in 0..100_000 {
            if read(0x0a) & 0x80 == 0 {
                break;
            }
            core::hint::spin_loop();
        }
        [
            read(0x00),
            read(0x02),
            read(0x04),
            read(0x07),
            read(0x08),
            read(0x09),
            read(0x32),
        ]
    };
    // Two equal readings in a row: no update happened in between.
    let mut regs = snapshot();
    for _ in 0..5 {
        let again = snapshot();
        if again == regs {
            break;
        }
        regs = again;
    }
    let status_b = read(0x0b);
    let bcd = status_b & 0x04 == 0;
    let [sec, min, hour, day, month, year, century] = regs;
    let mut h = rtc_value(hour & 0x7f, bcd);
    if status_b & 0x02 == 0 && hour & 0x80 != 0 {
        // 12-hour mode, PM.
        h = (h % 12) + 12;
    } else if status_b & 0x02 == 0 && h == 12 {
        h = 0;
    }
    let c = match rtc_value(century, bcd) {
        19..=99 => rtc_value(century, bcd),
        _ => 20,
    };
    unix_seconds(
        c * 100 + rtc_value(year, bcd),
        rtc_value(month, bcd),
        rtc_value(day, bcd),
        h,
        rtc_value(min, bcd),
        rtc_value(sec, bcd),
    )
}
