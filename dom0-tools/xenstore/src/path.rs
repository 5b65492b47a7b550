//! XenStore path rules.
//!
//! A node path is either absolute (`/local/domain/3/name`) or relative to the
//! caller's home, `/local/domain/<domid>`. Components are made of ASCII
//! alphanumerics and `-`, `_`, `@`; they are separated by single `/`, and
//! only the root itself ends in `/`. Absolute paths may be up to
//! [`ABS_PATH_MAX`] bytes, relative ones up to [`REL_PATH_MAX`] bytes.
//! Watch paths may instead name a special event, such as `@releaseDomain`.

use alloc::format;
use alloc::string::String;

use crate::DomId;
use crate::error::{XsError, XsResult};

/// Longest absolute path accepted (`XENSTORE_ABS_PATH_MAX`).
pub const ABS_PATH_MAX: usize = 3072;
/// Longest relative path accepted (`XENSTORE_REL_PATH_MAX`).
pub const REL_PATH_MAX: usize = 2048;

/// Watch path of the event fired when a domain is introduced.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// Watch path of the event fired when a domain is released.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// The home directory of `domid`: `/local/domain/<domid>`.
pub fn domain_path(domid: DomId) -> String {
    format!("/local/domain/{domid}")
}

/// Whether `c` may appear in a path.
pub fn is_valid_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'/' | b'_' | b'@')
}

/// Checks the shape shared by every non-root path: allowed characters, no
/// empty component, no trailing slash.
fn check_components(s: &[u8]) -> XsResult<()> {
    if s.is_empty() || !s.iter().all(|&c| is_valid_char(c)) {
        return Err(XsError::Inval);
    }
    if s.ends_with(b"/") || s.windows(2).any(|w| w == b"//") {
        return Err(XsError::Inval);
    }
    Ok(())
}

/// Turns a path sent by a connection of domain `domid` into a canonical
/// absolute path, or fails with `EINVAL`.
pub fn canonicalize(domid: DomId, raw: &[u8]) -> XsResult<String> {
    if raw == b"/" {
        return Ok(String::from("/"));
    }
    // Names starting with `@` are special (watches, their permissions),
    // never nodes.
    if is_special(raw) {
        return Err(XsError::Inval);
    }
    check_components(raw)?;
    // All bytes are ASCII at this point, so this cannot fail.
    let text = core::str::from_utf8(raw).map_err(|_| XsError::Inval)?;
    let path = if raw[0] == b'/' {
        String::from(text)
    } else {
        if raw.len() > REL_PATH_MAX {
            return Err(XsError::Inval);
        }
        format!("{}/{text}", domain_path(domid))
    };
    if path.len() > ABS_PATH_MAX {
        return Err(XsError::Inval);
    }
    Ok(path)
}

/// Whether `raw` names a special watch such as `@releaseDomain`.
pub fn is_special(raw: &[u8]) -> bool {
    raw.first() == Some(&b'@')
}

/// Validates a special watch name (`@` followed by path characters).
pub fn check_special(raw: &[u8]) -> XsResult<String> {
    if raw.len() < 2 || raw.len() > REL_PATH_MAX || !is_special(raw) {
        return Err(XsError::Inval);
    }
    check_components(raw)?;
    core::str::from_utf8(raw)
        .map(String::from)
        .map_err(|_| XsError::Inval)
}

/// The parent of a canonical path; `None` for the root.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The last component of a canonical path (empty for the root).
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a canonical directory path and a child name.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Whether `ancestor` is `path` itself or one of its ancestors.
pub fn is_self_or_ancestor(ancestor: &str, path: &str) -> bool {
    if ancestor == "/" {
        return path.starts_with('/');
    }
    match path.strip_prefix(ancestor) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Renders an absolute path the way a watch registered relative to
/// `home` should report it: with the home prefix stripped when possible.
pub fn relative_to<'a>(home: &str, path: &'a str) -> &'a str {
    match path.strip_prefix(home) {
        Some(rest) if rest.starts_with('/') => &rest[1..],
        _ => path,
    }
}

/// Parses a decimal number the way the protocol sends them: digits only.
pub fn parse_number(raw: &[u8]) -> XsResult<u64> {
    if raw.is_empty() || raw.len() > 20 || !raw.iter().all(u8::is_ascii_digit) {
        return Err(XsError::Inval);
    }
    let mut value: u64 = 0;
    for &d in raw {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(XsError::Inval)?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn absolute_and_relative() {
        assert_eq!(canonicalize(0, b"/").unwrap(), "/");
        assert_eq!(canonicalize(0, b"/a/b-c_d@e").unwrap(), "/a/b-c_d@e");
        assert_eq!(
            canonicalize(7, b"device/vif").unwrap(),
            "/local/domain/7/device/vif"
        );
    }

    #[test]
    fn rejects_bad_paths() {
        for bad in [
            &b""[..],
            b"/a/",
            b"//a",
            b"/a//b",
            b"/a b",
            b"/a\0",
            b"a/",
            b"/\xff",
            b"/a.b",
            b"@x",
        ] {
            assert_eq!(canonicalize(0, bad), Err(XsError::Inval), "{bad:?}");
        }
    }

    #[test]
    fn length_limits() {
        let mut abs = vec![b'/'];
        abs.extend(core::iter::repeat_n(b'a', ABS_PATH_MAX - 1));
        assert!(canonicalize(0, &abs).is_ok());
        abs.push(b'a');
        assert_eq!(canonicalize(0, &abs), Err(XsError::Inval));
        let rel = vec![b'a'; REL_PATH_MAX];
        assert!(canonicalize(0, &rel).is_ok());
        let rel = vec![b'a'; REL_PATH_MAX + 1];
        assert_eq!(canonicalize(0, &rel), Err(XsError::Inval));
    }

    #[test]
    fn family() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_self_or_ancestor("/", "/x"));
        assert!(is_self_or_ancestor("/a", "/a/b"));
        assert!(is_self_or_ancestor("/a", "/a"));
        assert!(!is_self_or_ancestor("/a", "/ab"));
        assert_eq!(relative_to("/local/domain/1", "/local/domain/1/x/y"), "x/y");
        assert_eq!(relative_to("/local/domain/1", "/other"), "/other");
    }

    #[test]
    fn specials_and_numbers() {
        assert!(check_special(b"@releaseDomain").is_ok());
        assert!(check_special(b"@").is_err());
        assert_eq!(parse_number(b"42"), Ok(42));
        assert!(parse_number(b"-1").is_err());
        assert!(parse_number(b"").is_err());
        assert!(parse_number(b"99999999999999999999").is_err());
    }
}
