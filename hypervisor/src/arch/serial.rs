//! COM1, through `uart_16550`, and the `log` backend that writes to it.

use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

use oxen_core::units::Timestamp;
use spin::Mutex;
use uart_16550::Uart16550Tty;
use uart_16550::backend::PioBackend;

use super::{cpu, percpu};

const COM1: u16 = 0x3f8;

static PORT: Mutex<Option<Uart16550Tty<PioBackend>>> = Mutex::new(None);

/// TSC at entry and its frequency once calibrated (0 until then): the log's clock.
static TSC_BASE: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

/// Sets up COM1 and installs the logger. Called once, first thing on the BSP.
pub fn init() {
    TSC_BASE.store(cpu::rdtsc(), Ordering::Relaxed);
    let config = uart_16550::Config {
        baud_rate: uart_16550::BaudRate::Baud115200,
        ..Default::default()
    };
    // SAFETY: 0x3f8..0x3ff is COM1's register block; nothing else in oxen uses it.
    let port = unsafe { Uart16550Tty::new_port(COM1, config) };
    // Without a working COM1 there is nowhere to log to; carry on silently.
    *PORT.lock() = port.ok();
    log::set_logger(&LOGGER).expect("logger installed once");
    log::set_max_level(log::LevelFilter::Info);
}

/// Tells the log clock how fast the TSC runs.
pub fn set_tsc_hz(hz: u64) {
    TSC_HZ.store(hz, Ordering::Relaxed);
}

/// The TSC value at entry.
pub fn tsc_base() -> u64 {
    TSC_BASE.load(Ordering::Relaxed)
}

/// The TSC frequency, once calibrated.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Time since entry, by the TSC.
pub fn uptime() -> Timestamp {
    let delta = cpu::rdtsc().wrapping_sub(TSC_BASE.load(Ordering::Relaxed));
    Timestamp::from_tsc(delta, TSC_HZ.load(Ordering::Relaxed))
}

/// Writes straight to the port, taking the lock even if its holder died (panic path).
pub fn write_forced(args: core::fmt::Arguments<'_>) {
    for _ in 0..1_000_000 {
        if let Some(mut guard) = PORT.try_lock() {
            if let Some(port) = guard.as_mut() {
                let _ = port.write_fmt(args);
            }
            return;
        }
        core::hint::spin_loop();
    }
    // The holder is stuck (it panicked or was stopped mid-line): take the port over.
    // SAFETY: only reached when the lock has been held for a very long time, i.e. its
    // holder will never release it; we are the only writer from here on.
    unsafe { PORT.force_unlock() };
    if let Some(port) = PORT.lock().as_mut() {
        let _ = port.write_fmt(args);
    }
}

/// Waits until the UART has sent everything (before the machine powers off).
pub fn flush() {
    if let Some(port) = PORT.lock().as_mut() {
        for _ in 0..100_000 {
            if port
                .inner_mut()
                .lsr()
                .contains(uart_16550::spec::registers::LSR::TRANSMITTER_EMPTY)
            {
                break;
            }
            core::hint::spin_loop();
        }
    }
}

struct Logger;
static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => "ERROR",
            log::Level::Warn => "WARN ",
            log::Level::Info => "INFO ",
            log::Level::Debug => "DEBUG",
            log::Level::Trace => "TRACE",
        };
        let mut guard = PORT.lock();
        if let Some(port) = guard.as_mut() {
            let _ = writeln!(
                port,
                "[{}] cpu{} {} {}",
                uptime(),
                percpu::index(),
                level,
                record.args()
            );
        }
    }

    fn flush(&self) {}
}
