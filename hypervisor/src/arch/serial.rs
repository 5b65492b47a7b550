//! COM1, through `uart_16550`, and the `log` backend that writes to it.
//!
//! Log lines go into a transmit ring and leave it as fast as the UART takes them: a log
//! call copies its line and sends what fits in the UART's FIFO, and the rest is pumped
//! out later (every scheduler step and timer tick, see [`pump`]). A CPU only waits for
//! the wire when the ring is full, or when the machine stops (`flush`). Waiting for
//! every byte would charge the wire's speed to whichever guest happens to run: at
//! 115200 baud a 60-character line takes 5 ms.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use oxen_core::units::Timestamp;
use spin::Mutex;
use uart_16550::Uart16550Tty;
use uart_16550::backend::PioBackend;

use super::{cpu, percpu};

const COM1: u16 = 0x3f8;

static PORT: Mutex<Out> = Mutex::new(Out {
    port: None,
    ring: [0; RING],
    head: 0,
    tail: 0,
    kept_from: 0,
});
/// Set while the ring holds bytes (read without the lock).
static PENDING: AtomicBool = AtomicBool::new(false);

/// Bytes the transmit ring holds.
const RING: usize = 64 * 1024;

/// The UART and its transmit ring (`head` and `tail` count bytes ever written and
/// sent).
struct Out {
    port: Option<Uart16550Tty<PioBackend>>,
    ring: [u8; RING],
    head: usize,
    tail: usize,
    /// The log kept for `readconsole` starts here (moved by a clear).
    kept_from: usize,
}

impl Out {
    /// Sends what the UART takes now, without waiting.
    fn pump(&mut self) {
        let Some(port) = self.port.as_mut() else {
            self.tail = self.head;
            PENDING.store(false, Ordering::Release);
            return;
        };
        while self.tail != self.head {
            let at = self.tail % RING;
            let end = RING.min(at + (self.head - self.tail));
            let sent = port.inner_mut().send_bytes(&self.ring[at..end]);
            if sent == 0 {
                break;
            }
            self.tail += sent;
        }
        PENDING.store(self.tail != self.head, Ordering::Release);
    }

    /// Sends everything, waiting for the wire.
    fn drain(&mut self) {
        while self.tail != self.head {
            self.pump();
            core::hint::spin_loop();
        }
    }
}

impl Write for Out {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.head - self.tail == RING {
                // Full: wait for the wire.
                while self.head - self.tail == RING {
                    self.pump();
                    core::hint::spin_loop();
                }
            }
            self.ring[self.head % RING] = b;
            self.head += 1;
        }
        PENDING.store(true, Ordering::Release);
        Ok(())
    }
}

/// One formatted line, truncated to fit.
struct LineBuf {
    bytes: [u8; 512],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.bytes.len() - self.len;
        let n = s.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// The hypervisor's log as `sysctl readconsole` reads it: copies into `buf` what was
/// logged from byte `from` on (or from the oldest byte still kept, if that is later),
/// and returns the bytes copied and where the next read goes on. `clear` forgets what
/// was logged so far, once read.
pub fn history(from: usize, buf: &mut [u8], clear: bool) -> (usize, usize) {
    let mut out = PORT.lock();
    let oldest = out.head.saturating_sub(RING).max(out.kept_from);
    let start = from.max(oldest);
    let n = buf.len().min(out.head.saturating_sub(start));
    for (i, b) in buf[..n].iter_mut().enumerate() {
        *b = out.ring[(start + i) % RING];
    }
    if clear {
        out.kept_from = out.head;
    }
    (n, start + n)
}

/// Logs one line on behalf of a guest, at level INFO, if the ring has room for it with
/// half of the ring to spare (kept for the hypervisor's own lines). Never waits for
/// the wire: false means the line was dropped.
pub fn guest_line(args: core::fmt::Arguments<'_>) -> bool {
    if !log::log_enabled!(log::Level::Info) {
        return true;
    }
    let mut line = LineBuf {
        bytes: [0; 512],
        len: 0,
    };
    let _ = write!(line, "[{}] cpu{} INFO  {args}", uptime(), percpu::index());
    line.len = line.len.min(line.bytes.len() - 1);
    line.bytes[line.len] = b'\n';
    line.len += 1;
    guest_raw(&line.bytes[..line.len])
}

/// Writes guest output as it is, if the ring has room with half of it to spare (kept
/// for the hypervisor's own lines): a formatted [`guest_line`], or the control domain's
/// `console_io` bytes (Xen prints the hardware domain's writes unprefixed: its shell
/// draws prompts and edits lines). Never waits for the wire: false means the bytes were
/// dropped.
pub fn guest_raw(bytes: &[u8]) -> bool {
    let mut out = PORT.lock();
    if out.port.is_none() {
        return true;
    }
    let free = RING - (out.head - out.tail);
    if free < RING / 2 + bytes.len() {
        return false;
    }
    for &b in bytes {
        let at = out.head % RING;
        out.ring[at] = b;
        out.head += 1;
    }
    PENDING.store(true, Ordering::Release);
    out.pump();
    true
}

/// Moves buffered log bytes to the UART if it can take some (never waits, and does
/// nothing if another CPU is logging).
pub fn pump() {
    if PENDING.load(Ordering::Acquire)
        && let Some(mut out) = PORT.try_lock()
    {
        out.pump();
    }
}

/// Reads what the UART has received, up to `buf.len()` bytes (never waits; nothing if
/// another CPU holds the port). Bytes not read stay in the UART, and on a real line
/// the sender's flow control or the FIFO holds them.
pub fn receive(buf: &mut [u8]) -> usize {
    match PORT.try_lock() {
        Some(mut out) => out
            .port
            .as_mut()
            .map_or(0, |p| p.inner_mut().receive_bytes(buf)),
        None => 0,
    }
}

/// Whether log bytes wait in the ring.
pub fn pending() -> bool {
    PENDING.load(Ordering::Acquire)
}

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
    PORT.lock().port = port.ok();
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
        if let Some(mut out) = PORT.try_lock() {
            out.drain();
            if let Some(port) = out.port.as_mut() {
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
    let mut out = PORT.lock();
    out.drain();
    if let Some(port) = out.port.as_mut() {
        let _ = port.write_fmt(args);
    }
}

/// Waits until the UART has sent everything (before the machine powers off).
pub fn flush() {
    let mut out = PORT.lock();
    out.drain();
    if let Some(port) = out.port.as_mut() {
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
        let mut out = PORT.lock();
        if out.port.is_some() {
            let _ = writeln!(
                out,
                "[{}] cpu{} {} {}",
                uptime(),
                percpu::index(),
                level,
                record.args()
            );
            out.pump();
        }
    }

    fn flush(&self) {}
}
