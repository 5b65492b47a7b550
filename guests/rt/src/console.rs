//! Console output through `console_io(CONSOLEIO_write)`, line-buffered per call.

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
            crate::hypercall::console_write(&self.buf[..self.len]);
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
