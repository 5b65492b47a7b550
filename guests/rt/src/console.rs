//! Console output, line-buffered: each line is one write.
//!
//! A write goes to the PV console ring ([`crate::xencons`]) if the hypervisor gave the
//! domain one, else (or for whatever the ring did not take, e.g. once its back end
//! misbehaved) through `console_io(CONSOLEIO_write)`. If the hypercall page could not be
//! set up (the guest is not running on oxen or Xen, e.g. under plain QEMU/KVM while
//! debugging the runtime), output goes to the debug port 0xE9 instead (QEMU
//! `-debugcon stdio`).

use core::fmt::{self, Write};

const LINE: usize = 256;

/// Buffers output and flushes it on a newline or when full.
pub struct LineWriter {
    buf: [u8; LINE],
    len: usize,
}

impl LineWriter {
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE],
            len: 0,
        }
    }

    pub fn flush(&mut self) {
        if self.len > 0 {
            write_bytes(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Default for LineWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for LineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == LINE {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Writes raw bytes to the console.
pub fn write_bytes(bytes: &[u8]) {
    let mut bytes = bytes;
    if crate::xencons::active() {
        let taken = crate::xencons::write(bytes);
        bytes = &bytes[taken.min(bytes.len())..];
        if crate::xencons::take_failure() {
            direct(b"guest: PV console back end misbehaved; console_io from now on\n");
        }
        if bytes.is_empty() {
            return;
        }
    }
    direct(bytes);
}

/// Writes raw bytes with `console_io` (or to port 0xE9 without a hypervisor).
fn direct(bytes: &[u8]) {
    if crate::hypercall::page_ready() {
        crate::hypercall::console_write(bytes);
    } else {
        for &b in bytes {
            // SAFETY: port 0xE9 is the debug console; writing it has no other effect.
            unsafe { crate::arch::outb(0xe9, b) };
        }
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut w = LineWriter::new();
    let _ = w.write_fmt(args);
}

/// Prints to the hypervisor console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

/// Prints a line to the hypervisor console.
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::console::_print(format_args!("{}\n", format_args!($($arg)*))));
}
