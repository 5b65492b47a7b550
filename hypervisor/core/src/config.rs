//! Configuration files in the `xl.cfg` style: `key = value` lines, `#` comments, values
//! that are quoted strings, integers or `[ ... ]` lists of them.
//!
//! The boot configuration (`boot.cfg` in the boot archive) is read with it now; domain
//! configuration files will be later.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A configuration value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    List(Vec<Value>),
}

/// A syntax or meaning error, with the 1-based line it is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn err(line: usize, message: impl Into<String>) -> ConfigError {
    ConfigError {
        line,
        message: message.into(),
    }
}

/// One `key = value` setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub line: usize,
    pub key: String,
    pub value: Value,
}

/// Parses the whole text into settings, in order.
pub fn parse(text: &str) -> Result<Vec<Setting>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut p = Parser {
            s: raw.as_bytes(),
            at: 0,
            line,
        };
        p.skip_space();
        if p.done() {
            continue;
        }
        let key = p.key()?;
        p.skip_space();
        if !p.eat(b'=') {
            return Err(err(line, alloc::format!("expected '=' after '{key}'")));
        }
        p.skip_space();
        let value = p.value()?;
        p.skip_space();
        if !p.done() {
            return Err(err(line, "unexpected text after the value"));
        }
        out.push(Setting { line, key, value });
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
    line: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    /// True at the end of the line or at a comment.
    fn done(&self) -> bool {
        matches!(self.peek(), None | Some(b'#'))
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn key(&mut self) -> Result<String, ConfigError> {
        let start = self.at;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.at += 1;
        }
        if start == self.at {
            return Err(err(self.line, "expected a key"));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
    }

    fn value(&mut self) -> Result<Value, ConfigError> {
        match self.peek() {
            Some(b'"' | b'\'') => self.string(),
            Some(b'[') => self.list(),
            Some(c) if c.is_ascii_digit() || c == b'-' => self.int(),
            _ => Err(err(
                self.line,
                "expected a value: \"string\", integer or [list]",
            )),
        }
    }

    fn string(&mut self) -> Result<Value, ConfigError> {
        let quote = self.s[self.at];
        self.at += 1;
        let start = self.at;
        while let Some(c) = self.peek() {
            if c == quote {
                let text = core::str::from_utf8(&self.s[start..self.at])
                    .map_err(|_| err(self.line, "string is not UTF-8"))?;
                self.at += 1;
                return Ok(Value::Str(text.into()));
            }
            self.at += 1;
        }
        Err(err(self.line, "unterminated string"))
    }

    fn int(&mut self) -> Result<Value, ConfigError> {
        let start = self.at;
        self.eat(b'-');
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric()) {
            self.at += 1;
        }
        let text = core::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
        let (neg, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let parsed = match digits.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16),
            None => digits.parse::<i64>(),
        };
        let n = parsed.map_err(|_| err(self.line, alloc::format!("bad integer '{text}'")))?;
        Ok(Value::Int(if neg { -n } else { n }))
    }

    fn list(&mut self) -> Result<Value, ConfigError> {
        self.at += 1;
        let mut items = Vec::new();
        loop {
            self.skip_space();
            if self.eat(b']') {
                return Ok(Value::List(items));
            }
            if self.peek().is_none() {
                return Err(err(self.line, "unterminated list"));
            }
            items.push(self.value()?);
            self.skip_space();
            if !self.eat(b',') {
                self.skip_space();
                if self.eat(b']') {
                    return Ok(Value::List(items));
                }
                let what = if self.peek().is_none() {
                    "unterminated list"
                } else {
                    "expected ',' or ']' in list"
                };
                return Err(err(self.line, what));
            }
        }
    }
}

/// What the hypervisor does once it is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnReady {
    /// Stay up: every CPU idles and takes its timer tick.
    #[default]
    Idle,
    /// Power the machine off (in emulators: their exit device). Used by boot scenarios.
    Poweroff,
}

/// Log verbosity, as the `log` crate's levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

/// The hypervisor's boot configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootConfig {
    pub on_ready: OnReady,
    pub log_level: LogLevel,
    /// Settings this hypervisor does not know, kept so they can be reported.
    pub unknown: Vec<String>,
}

impl BootConfig {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut cfg = BootConfig::default();
        for s in parse(text)? {
            let word = |value: &Value| match value {
                Value::Str(w) => Ok(w.clone()),
                _ => Err(err(s.line, alloc::format!("'{}' takes a string", s.key))),
            };
            match s.key.as_str() {
                "on_ready" => {
                    cfg.on_ready = match word(&s.value)?.as_str() {
                        "idle" => OnReady::Idle,
                        "poweroff" => OnReady::Poweroff,
                        other => {
                            return Err(err(
                                s.line,
                                alloc::format!(
                                    "on_ready: unknown action '{other}' (idle, poweroff)"
                                ),
                            ));
                        }
                    }
                }
                "log_level" => {
                    cfg.log_level = match word(&s.value)?.as_str() {
                        "error" => LogLevel::Error,
                        "warn" => LogLevel::Warn,
                        "info" => LogLevel::Info,
                        "debug" => LogLevel::Debug,
                        "trace" => LogLevel::Trace,
                        other => {
                            return Err(err(
                                s.line,
                                alloc::format!("log_level: unknown level '{other}'"),
                            ));
                        }
                    }
                }
                _ => cfg.unknown.push(s.key),
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_and_comments() {
        let text = "# a comment\n\nname = \"hello\"  # trailing\nmemory=64\nvcpus = 0x2\n\
                    disk = [ 'a', \"b\", 3 ]\nempty = []\nneg = -5\n";
        let s = parse(text).unwrap();
        let kv: Vec<_> = s.iter().map(|s| (s.key.as_str(), &s.value)).collect();
        assert_eq!(kv[0], ("name", &Value::Str("hello".into())));
        assert_eq!(kv[1], ("memory", &Value::Int(64)));
        assert_eq!(kv[2], ("vcpus", &Value::Int(2)));
        assert_eq!(
            kv[3],
            (
                "disk",
                &Value::List(vec![
                    Value::Str("a".into()),
                    Value::Str("b".into()),
                    Value::Int(3)
                ])
            )
        );
        assert_eq!(kv[4], ("empty", &Value::List(vec![])));
        assert_eq!(kv[5], ("neg", &Value::Int(-5)));
        assert_eq!(s[2].line, 5);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, line, needle) in [
            ("a = 1\nb 2\n", 2, "expected '='"),
            ("x = \"open\n", 1, "unterminated string"),
            ("x = [1, 2\n", 1, "unterminated list"),
            ("x = 12abc\n", 1, "bad integer"),
            ("x = 1 2\n", 1, "unexpected text"),
            ("= 1\n", 1, "expected a key"),
            ("x = @\n", 1, "expected a value"),
            ("x = [1 2]\n", 1, "expected ','"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn boot_config_meaning() {
        let c = BootConfig::parse("on_ready = \"poweroff\"\nlog_level = 'debug'\nfuture = 1\n")
            .unwrap();
        assert_eq!(c.on_ready, OnReady::Poweroff);
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.unknown, vec!["future".to_string()]);
        assert_eq!(BootConfig::parse("").unwrap(), BootConfig::default());
        assert!(
            BootConfig::parse("on_ready = \"explode\"")
                .unwrap_err()
                .message
                .contains("unknown action")
        );
        assert!(
            BootConfig::parse("on_ready = 1")
                .unwrap_err()
                .message
                .contains("takes a string")
        );
    }
}
