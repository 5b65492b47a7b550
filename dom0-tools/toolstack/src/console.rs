//! What dom0 keeps of a domain's console: a bounded history of everything it wrote
//! (shown when `xl console` attaches, as the tail of a log), and the line being put
//! together for the serial log's mirror, `[dN name] text` (how scenarios and users see
//! detached domains, in the form the hypervisor uses for the domains it serves).

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// Bytes of history kept per domain.
pub const HISTORY_BYTES: usize = 16 * 1024;
/// A mirrored line is cut at this many characters (as the hypervisor cuts them).
pub const LINE_MAX: usize = 256;
/// `xl console`'s escape character, Ctrl-] (Xen's default).
pub const ESCAPE: u8 = 0x1d;

/// One domain's console as dom0 keeps it.
#[derive(Debug)]
pub struct ConsoleLog {
    history: VecDeque<u8>,
    cap: usize,
    line: String,
}

impl ConsoleLog {
    /// A log keeping the last `cap` bytes.
    pub fn new(cap: usize) -> Self {
        ConsoleLog {
            history: VecDeque::new(),
            cap,
            line: String::new(),
        }
    }

    /// Records what the domain wrote; `line` gets every line it completed, control
    /// characters shown as `?`, carriage returns dropped.
    pub fn record(&mut self, bytes: &[u8], mut line: impl FnMut(&str)) {
        let keep = bytes.len().min(self.cap);
        let over = (self.history.len() + keep).saturating_sub(self.cap);
        self.history.drain(..over);
        self.history.extend(&bytes[bytes.len() - keep..]);
        for &b in bytes {
            match b {
                b'\n' => {
                    line(&self.line);
                    self.line.clear();
                }
                b'\r' => {}
                b if b.is_ascii_graphic() || b == b' ' || b == b'\t' => self.line.push(b as char),
                _ => self.line.push('?'),
            }
            if self.line.len() >= LINE_MAX {
                line(&self.line);
                self.line.clear();
            }
        }
    }

    /// The line not yet ended (at the domain's end it is mirrored as it is).
    pub fn take_partial(&mut self) -> Option<String> {
        (!self.line.is_empty()).then(|| core::mem::take(&mut self.line))
    }

    /// The history, oldest byte first.
    pub fn history(&self) -> Vec<u8> {
        self.history.iter().copied().collect()
    }
}

/// The mirror's form of one line of domain `id` (`name`).
pub fn mirror_line(id: u16, name: &str, text: &str) -> String {
    alloc::format!("[d{id} {name}] {text}")
}

/// Output for a terminal: a line feed not after a carriage return gets one, as a tty's
/// `onlcr` would add (our guests end lines with `\n`, Linux's hvc with `\r\n`).
/// `last` is the byte shown before `bytes` and is updated.
pub fn for_terminal(bytes: &[u8], last: &mut u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    for &b in bytes {
        if b == b'\n' && *last != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        *last = b;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn lines(log: &mut ConsoleLog, bytes: &[u8]) -> Vec<String> {
        let mut v = Vec::new();
        log.record(bytes, |l| v.push(l.to_string()));
        v
    }

    #[test]
    fn lines_are_put_together_across_writes_and_cleaned() {
        let mut log = ConsoleLog::new(HISTORY_BYTES);
        assert!(lines(&mut log, b"hel").is_empty());
        assert_eq!(
            lines(&mut log, b"lo\r\nbell\x07 tab\tend\nnext"),
            ["hello", "bell? tab\tend"]
        );
        assert_eq!(log.take_partial().as_deref(), Some("next"));
        assert_eq!(log.take_partial(), None);
        assert_eq!(lines(&mut log, b"\n"), [""], "an empty line is a line");
    }

    #[test]
    fn long_lines_are_cut() {
        let mut log = ConsoleLog::new(HISTORY_BYTES);
        let long = vec![b'x'; LINE_MAX * 2 + 3];
        let got = lines(&mut log, &long);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|l| l.len() == LINE_MAX));
        assert_eq!(log.take_partial().map(|l| l.len()), Some(3));
    }

    #[test]
    fn history_keeps_the_newest_bytes_within_its_bound() {
        let mut log = ConsoleLog::new(10);
        log.record(b"0123456", |_| {});
        assert_eq!(log.history(), b"0123456");
        log.record(b"789ab", |_| {});
        assert_eq!(log.history(), b"23456789ab");
        log.record(b"a write longer than the bound", |_| {});
        assert_eq!(log.history(), b" the bound");
        log.record(b"XYZ", |_| {});
        assert_eq!(log.history(), b"e boundXYZ");
    }

    #[test]
    fn the_mirror_names_the_domain_as_the_hypervisor_does() {
        assert_eq!(mirror_line(3, "web", "up"), "[d3 web] up");
    }

    #[test]
    fn line_feeds_get_carriage_returns_once() {
        let mut last = 0;
        assert_eq!(for_terminal(b"a\nb\r\nc\n", &mut last), b"a\r\nb\r\nc\r\n");
        // A CR at the end of one write and its LF at the start of the next.
        assert_eq!(for_terminal(b"d\r", &mut last), b"d\r");
        assert_eq!(for_terminal(b"\ne", &mut last), b"\ne");
    }
}
