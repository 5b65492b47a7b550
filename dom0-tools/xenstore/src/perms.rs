//! Node permissions as Xen defines them.
//!
//! A permission list is never empty. Its first entry names the node's owner,
//! and its access letter is the default for every domain not listed later.
//! Later entries grant a specific domain `n` (none), `r` (read), `w` (write)
//! or `b` (both). The owner and privileged callers can always do everything.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::DomId;
use crate::error::{XsError, XsResult};
use crate::path::parse_number;

/// Highest domain id a permission entry may name.
pub const DOMID_MAX: DomId = 0xffff;

/// Access granted by one permission entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: nothing.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    fn letter(self) -> char {
        match self {
            Self::None => 'n',
            Self::Read => 'r',
            Self::Write => 'w',
            Self::Both => 'b',
        }
    }

    fn rights(self) -> Rights {
        match self {
            Self::None => Rights::NONE,
            Self::Read => Rights::READ,
            Self::Write => Rights::WRITE,
            Self::Both => Rights::READ.union(Rights::WRITE),
        }
    }
}

/// One entry of a permission list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PermEntry {
    /// The domain the entry is about.
    pub domid: DomId,
    /// What that domain may do.
    pub access: Access,
}

/// A node's permission list (owner and default first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Perms(Vec<PermEntry>);

impl Perms {
    /// A list granting only `owner` anything: `n<owner>`.
    pub fn owned_by(owner: DomId) -> Self {
        Self(alloc::vec![PermEntry {
            domid: owner,
            access: Access::None
        }])
    }

    /// Builds a list from entries; fails with `EINVAL` when empty.
    pub fn from_entries(entries: Vec<PermEntry>) -> XsResult<Self> {
        if entries.is_empty() {
            return Err(XsError::Inval);
        }
        Ok(Self(entries))
    }

    /// The owning domain.
    pub fn owner(&self) -> DomId {
        self.0[0].domid
    }

    /// All entries, owner first.
    pub fn entries(&self) -> &[PermEntry] {
        &self.0
    }

    /// A copy with the owner replaced (what a domain creating a node gets).
    pub fn with_owner(&self, owner: DomId) -> Self {
        let mut copy = self.clone();
        copy.0[0].domid = owner;
        copy
    }

    /// Parses one entry such as `r5`.
    pub fn parse_entry(raw: &[u8]) -> XsResult<PermEntry> {
        let (&letter, digits) = raw.split_first().ok_or(XsError::Inval)?;
        let access = match letter {
            b'n' => Access::None,
            b'r' => Access::Read,
            b'w' => Access::Write,
            b'b' => Access::Both,
            _ => return Err(XsError::Inval),
        };
        let domid = parse_number(digits)?;
        let domid = DomId::try_from(domid).map_err(|_| XsError::Inval)?;
        if domid > DOMID_MAX {
            return Err(XsError::Inval);
        }
        Ok(PermEntry { domid, access })
    }

    /// Parses a whole list from its NUL-separated wire strings.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> XsResult<Self> {
        let entries = items
            .into_iter()
            .map(Self::parse_entry)
            .collect::<XsResult<Vec<_>>>()?;
        Self::from_entries(entries)
    }

    /// The wire form: every entry followed by a NUL.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = String::new();
        for entry in &self.0 {
            // Writing to a String cannot fail.
            let _ = write!(text, "{}{}\0", entry.access.letter(), entry.domid);
        }
        text.into_bytes()
    }
}

/// A set of rights a caller holds on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rights(u8);

impl Rights {
    /// No rights.
    pub const NONE: Self = Self(0);
    /// May read the value, the children and the permissions.
    pub const READ: Self = Self(1);
    /// May change the value, create children, remove.
    pub const WRITE: Self = Self(2);
    /// May change the permissions.
    pub const OWNER: Self = Self(4);
    /// Everything.
    pub const ALL: Self = Self(7);

    /// Both sets together.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every right in `needed` is held.
    pub const fn contains(self, needed: Self) -> bool {
        self.0 & needed.0 == needed.0
    }
}

/// Who is asking: the identity permission checks are made against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The caller's domain.
    pub domid: DomId,
    /// Privileged callers (dom0's toolstack) bypass permission checks.
    pub privileged: bool,
    /// A domain this caller acts for (`SET_TARGET`, e.g. a device model).
    pub target: Option<DomId>,
}

impl Caller {
    /// A privileged caller in dom0.
    pub const PRIVILEGED: Self = Self {
        domid: 0,
        privileged: true,
        target: None,
    };

    /// An unprivileged caller in `domid`.
    pub const fn domain(domid: DomId) -> Self {
        Self {
            domid,
            privileged: false,
            target: None,
        }
    }

    /// The rights this caller holds on a node with `perms`.
    pub fn rights(&self, perms: &Perms) -> Rights {
        if self.privileged {
            return Rights::ALL;
        }
        let is_me = |d: DomId| d == self.domid || Some(d) == self.target;
        if is_me(perms.owner()) {
            return Rights::ALL;
        }
        let specific = perms.entries()[1..]
            .iter()
            .filter(|e| is_me(e.domid))
            .fold(None, |acc: Option<Rights>, e| {
                Some(acc.unwrap_or(Rights::NONE).union(e.access.rights()))
            });
        specific.unwrap_or_else(|| perms.entries()[0].access.rights())
    }

    /// Shorthand for `rights(perms).contains(Rights::READ)`.
    pub fn can_read(&self, perms: &Perms) -> bool {
        self.rights(perms).contains(Rights::READ)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(s: &[&str]) -> Perms {
        Perms::parse(s.iter().map(|e| e.as_bytes())).unwrap()
    }

    #[test]
    fn parse_and_encode() {
        let p = perms(&["n0", "r1", "b2", "w3"]);
        assert_eq!(p.owner(), 0);
        assert_eq!(p.encode(), b"n0\0r1\0b2\0w3\0");
        for bad in ["", "x1", "r", "r-1", "r65536", "r1a"] {
            assert!(Perms::parse_entry(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(Perms::parse(core::iter::empty()), Err(XsError::Inval));
    }

    #[test]
    fn rights_follow_xen_rules() {
        let p = perms(&["r5", "n1", "w2", "b3"]);
        assert_eq!(Caller::domain(5).rights(&p), Rights::ALL);
        assert_eq!(Caller::domain(1).rights(&p), Rights::NONE);
        assert_eq!(Caller::domain(2).rights(&p), Rights::WRITE);
        assert!(
            Caller::domain(3)
                .rights(&p)
                .contains(Rights::READ.union(Rights::WRITE))
        );
        assert!(!Caller::domain(3).rights(&p).contains(Rights::OWNER));
        // Unlisted domains get the default of the first entry.
        assert_eq!(Caller::domain(9).rights(&p), Rights::READ);
        assert_eq!(Caller::PRIVILEGED.rights(&p), Rights::ALL);
        let dm = Caller {
            domid: 7,
            privileged: false,
            target: Some(5),
        };
        assert_eq!(dm.rights(&p), Rights::ALL);
    }

    #[test]
    fn with_owner_keeps_acl() {
        let p = perms(&["n0", "r1"]).with_owner(4);
        assert_eq!(p.encode(), b"n4\0r1\0");
    }
}
