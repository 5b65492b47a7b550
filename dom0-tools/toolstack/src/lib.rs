//! What the control domain's `xl` knows, as pure code: the words of a command line,
//! which domain an argument names, and Xen's output formats for `xl list`, `xl info`,
//! `xl vcpu-list`, `xl sched-credit` and `xl uptime` (`../shared/docs/TOOLSTACK.md`),
//! the store nodes of a new domain and what dom0 keeps of a console.
//! The dom0 kernel fills the rows from `domctl`/`sysctl` and prints what comes back;
//! the host tests check the formats byte for byte.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod build;
pub mod console;
pub mod format;
pub mod json;
pub mod line;
pub mod sched;
pub mod store;

pub use format::{DomainRow, HostInfo, VcpuRow};
pub use line::{LineEditor, words};

/// Xen's exit codes: 0 done, 1 failed, 2 bad usage.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAIL: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

/// Which domain `arg` names among `rows`: a number (an id) or a name, as `xl` resolves
/// them; Xen's error line otherwise.
pub fn resolve(arg: &str, rows: &[DomainRow]) -> Result<u16, alloc::string::String> {
    let by_id = arg
        .parse::<u16>()
        .ok()
        .filter(|id| rows.iter().any(|r| r.id == *id));
    let by_name = rows.iter().find(|r| r.name == arg).map(|r| r.id);
    by_id
        .or(by_name)
        .ok_or_else(|| alloc::format!("{arg} is an invalid domain identifier (rc=-6)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn row(id: u16, name: &str) -> DomainRow {
        DomainRow {
            id,
            name: name.to_string(),
            ..DomainRow::default()
        }
    }

    #[test]
    fn domains_are_named_by_id_or_name() {
        let rows = [row(0, "Domain-0"), row(1, "hello"), row(7, "3")];
        assert_eq!(resolve("0", &rows), Ok(0));
        assert_eq!(resolve("hello", &rows), Ok(1));
        assert_eq!(resolve("Domain-0", &rows), Ok(0));
        // A number that is no id may still be a name.
        assert_eq!(resolve("3", &rows), Ok(7));
        assert_eq!(
            resolve("nosuch", &rows),
            Err("nosuch is an invalid domain identifier (rc=-6)".to_string())
        );
        assert!(resolve("9", &rows).is_err());
    }
}
