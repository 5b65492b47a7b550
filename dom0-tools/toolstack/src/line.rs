//! The shell's line: words of a command line, and a line editor for a serial terminal
//! (printable input echoed, Backspace, Ctrl-U, Ctrl-C, and a history under the Up and
//! Down arrows), fed byte by byte, answering with what to print.

use alloc::string::String;
use alloc::vec::Vec;

/// The words of `line`: split at blanks, a quoted part ('…' or "…") one word without
/// its quotes.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_default().push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_default();
            }
            (None, c) if c.is_whitespace() => out.extend(word.take()),
            (None, c) => word.get_or_insert_default().push(c),
        }
    }
    out.extend(word);
    out
}

/// What a byte of input did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Print this (echo, erase, redraw).
    Echo(String),
    /// A whole line was entered (the newline already echoed).
    Line(String),
}

/// Most bytes a line holds and lines the history keeps.
const MAX_LINE: usize = 512;
const HISTORY: usize = 32;

/// A line being typed, with the lines typed before it.
#[derive(Debug, Default)]
pub struct LineEditor {
    line: String,
    history: Vec<String>,
    /// Where the Up/Down arrows are in the history (`history.len()`: the new line).
    at: usize,
    /// Bytes of an escape sequence seen so far.
    escape: Vec<u8>,
}

impl LineEditor {
    pub fn new() -> Self {
        Self::default()
    }

    /// The line typed so far.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Takes one byte of input; `prompt` is redrawn when the history replaces the line.
    pub fn feed(&mut self, b: u8, prompt: &str) -> Option<Edit> {
        if !self.escape.is_empty() || b == 0x1b {
            return self.escape(b, prompt);
        }
        match b {
            b'\r' | b'\n' => {
                let line = core::mem::take(&mut self.line);
                if !line.trim().is_empty() && self.history.last() != Some(&line) {
                    if self.history.len() == HISTORY {
                        self.history.remove(0);
                    }
                    self.history.push(line.clone());
                }
                self.at = self.history.len();
                Some(Edit::Line(line))
            }
            0x7f | 0x08 => self
                .line
                .pop()
                .map(|_| Edit::Echo(String::from("\x08 \x08"))),
            // Ctrl-C: forget the line.
            0x03 => {
                self.line.clear();
                self.at = self.history.len();
                Some(Edit::Line(String::new()))
            }
            // Ctrl-U: erase the line.
            0x15 => {
                let n = self.line.chars().count();
                self.line.clear();
                (n > 0).then(|| Edit::Echo("\x08 \x08".repeat(n)))
            }
            b if (0x20..0x7f).contains(&b) && self.line.len() < MAX_LINE => {
                self.line.push(b as char);
                Some(Edit::Echo(String::from(b as char)))
            }
            _ => None,
        }
    }

    /// ESC [ A (up) and ESC [ B (down) walk the history; other sequences are ignored.
    fn escape(&mut self, b: u8, prompt: &str) -> Option<Edit> {
        self.escape.push(b);
        match self.escape[..] {
            [0x1b] | [0x1b, b'['] => return None,
            [0x1b, b'[', b'A'] if self.at > 0 => self.at -= 1,
            [0x1b, b'[', b'B'] if self.at < self.history.len() => self.at += 1,
            [0x1b, b'[', c] if c.is_ascii_digit() || c == b';' => return None,
            [0x1b, b'[', .., c] if c.is_ascii_digit() || c == b';' => return None,
            _ => {
                self.escape.clear();
                return None;
            }
        }
        self.escape.clear();
        self.line = self.history.get(self.at).cloned().unwrap_or_default();
        Some(Edit::Echo(alloc::format!("\r{prompt}{}\x1b[K", self.line)))
    }
}

/// `sleep`'s argument: seconds as a decimal number (`2`, `0.5`, `.25`; as coreutils'
/// `sleep` takes them, up to a day and to the nanosecond), in nanoseconds.
pub fn seconds_ns(arg: &str) -> Option<u64> {
    let (whole, frac) = arg.split_once('.').unwrap_or((arg, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(frac) || frac.len() > 9 || (whole.is_empty() && frac.is_empty()) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    if whole > 86_400 {
        return None;
    }
    let frac_ns = if frac.is_empty() {
        0
    } else {
        frac.parse::<u64>().ok()? * 10u64.pow(9 - frac.len() as u32)
    };
    Some(whole * 1_000_000_000 + frac_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_takes_decimal_seconds() {
        assert_eq!(seconds_ns("2"), Some(2_000_000_000));
        assert_eq!(seconds_ns("0.5"), Some(500_000_000));
        assert_eq!(seconds_ns(".25"), Some(250_000_000));
        assert_eq!(seconds_ns("1.000000001"), Some(1_000_000_001));
        assert_eq!(seconds_ns("86400"), Some(86_400_000_000_000));
        for bad in [
            "",
            ".",
            "-1",
            "1.2.3",
            "1.0000000001",
            "86401",
            "1e3",
            "x",
            "+1",
            "1. 5",
        ] {
            assert_eq!(seconds_ns(bad), None, "{bad:?}");
        }
    }
    use alloc::string::ToString;

    fn typed(e: &mut LineEditor, bytes: &[u8]) -> Vec<Edit> {
        bytes.iter().filter_map(|&b| e.feed(b, "# ")).collect()
    }

    #[test]
    fn words_split_at_blanks_and_keep_quotes_together() {
        assert_eq!(words("  xl   list "), ["xl", "list"]);
        assert_eq!(
            words("xl create a.cfg 'name=two words' x=\"1 2\""),
            ["xl", "create", "a.cfg", "name=two words", "x=1 2"]
        );
        assert_eq!(words("''"), [""]);
        assert!(words("   ").is_empty());
    }

    #[test]
    fn typing_echoes_and_enter_gives_the_line() {
        let mut e = LineEditor::new();
        let out = typed(&mut e, b"xl lisx\x7ft\r");
        assert_eq!(out[0], Edit::Echo("x".to_string()));
        assert_eq!(out[7], Edit::Echo("\x08 \x08".to_string()));
        assert_eq!(out.last(), Some(&Edit::Line("xl list".to_string())));
        assert_eq!(e.line(), "");
        // Backspace on an empty line does nothing; control bytes are not echoed.
        assert!(typed(&mut e, b"\x7f\x01").is_empty());
    }

    #[test]
    fn ctrl_c_and_ctrl_u_drop_the_line() {
        let mut e = LineEditor::new();
        typed(&mut e, b"abc");
        assert_eq!(e.feed(0x15, "# "), Some(Edit::Echo("\x08 \x08".repeat(3))));
        typed(&mut e, b"xyz");
        assert_eq!(e.feed(0x03, "# "), Some(Edit::Line(String::new())));
        assert_eq!(e.line(), "");
    }

    #[test]
    fn arrows_walk_the_history() {
        let mut e = LineEditor::new();
        typed(&mut e, b"xl list\rxl info\r\r");
        let up = typed(&mut e, b"\x1b[A");
        assert_eq!(up, [Edit::Echo("\r# xl info\x1b[K".to_string())]);
        typed(&mut e, b"\x1b[A");
        assert_eq!(e.line(), "xl list");
        // Nothing above the first line.
        assert!(typed(&mut e, b"\x1b[A").is_empty());
        typed(&mut e, b"\x1b[B\x1b[B");
        assert_eq!(e.line(), "", "back at the new line");
        // Other sequences (e.g. Delete, ESC [ 3 ~) are swallowed whole.
        assert!(typed(&mut e, b"\x1b[3~").is_empty());
        assert_eq!(typed(&mut e, b"a"), [Edit::Echo("a".to_string())]);
    }
}
