//! The one error type of the store, mapped onto Xen's error strings.
//!
//! XenStore reports failures as an `XS_ERROR` reply whose payload is the
//! symbolic errno name (for example `ENOENT`) followed by a NUL. Every variant
//! here corresponds to exactly one such string.

use core::fmt;

/// An error returned to the connection that issued a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XsError {
    /// Malformed request, bad path or argument (`EINVAL`).
    Inval,
    /// The caller lacks the permission the operation needs (`EACCES`).
    Acces,
    /// The object already exists, e.g. a duplicate watch (`EEXIST`).
    Exist,
    /// Operation not valid on a directory (`EISDIR`).
    IsDir,
    /// No such node, transaction, watch or domain (`ENOENT`).
    NoEnt,
    /// Out of memory (`ENOMEM`).
    NoMem,
    /// A node, value-size, permission-count or transaction quota was hit (`ENOSPC`).
    NoSpc,
    /// Input/output error (`EIO`).
    Io,
    /// Directory not empty (`ENOTEMPTY`).
    NotEmpty,
    /// Operation not implemented (`ENOSYS`).
    NoSys,
    /// A write operation on a read-only connection (`EROFS`).
    RoFs,
    /// Resource busy, e.g. a transaction started inside a transaction (`EBUSY`).
    Busy,
    /// A transaction conflicted with another change; retry it (`EAGAIN`).
    Again,
    /// Already connected (`EISCONN`).
    IsConn,
    /// A reply or the watch quota would be too large (`E2BIG`).
    TooBig,
    /// Operation not permitted, e.g. an unprivileged owner change (`EPERM`).
    Perm,
    /// Too many requests are outstanding on the connection (`EQUOTA`).
    Quota,
}

impl XsError {
    /// The string Xen puts into an `XS_ERROR` reply for this error.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Inval => "EINVAL",
            Self::Acces => "EACCES",
            Self::Exist => "EEXIST",
            Self::IsDir => "EISDIR",
            Self::NoEnt => "ENOENT",
            Self::NoMem => "ENOMEM",
            Self::NoSpc => "ENOSPC",
            Self::Io => "EIO",
            Self::NotEmpty => "ENOTEMPTY",
            Self::NoSys => "ENOSYS",
            Self::RoFs => "EROFS",
            Self::Busy => "EBUSY",
            Self::Again => "EAGAIN",
            Self::IsConn => "EISCONN",
            Self::TooBig => "E2BIG",
            Self::Perm => "EPERM",
            Self::Quota => "EQUOTA",
        }
    }
}

impl fmt::Display for XsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for XsError {}

/// Result alias used throughout the engine.
pub type XsResult<T> = Result<T, XsError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_match_xen_names() {
        assert_eq!(XsError::Inval.as_str(), "EINVAL");
        assert_eq!(XsError::TooBig.as_str(), "E2BIG");
        assert_eq!(alloc::format!("{}", XsError::Again), "EAGAIN");
    }
}
