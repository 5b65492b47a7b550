//! Domains the toolstack introduced, device-model targets, and the
//! permissions of the special watch names.

use alloc::collections::BTreeMap;
use alloc::string::String;

use crate::DomId;
use crate::error::{XsError, XsResult};
use crate::path::{INTRODUCE_DOMAIN, RELEASE_DOMAIN};
use crate::perms::Perms;

/// First domain id reserved by Xen (`DOMID_FIRST_RESERVED`).
pub const DOMID_FIRST_RESERVED: DomId = 0x7ff0;

/// A domain introduced by the toolstack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domain {
    /// Frame of its store ring page.
    pub mfn: u64,
    /// Event channel port of its store ring.
    pub port: u32,
}

/// The introduced domains, the `SET_TARGET` relation, and who may receive
/// the special `@introduceDomain`/`@releaseDomain` events.
#[derive(Debug)]
pub struct Domains {
    known: BTreeMap<DomId, Domain>,
    targets: BTreeMap<DomId, DomId>,
    special: BTreeMap<String, Perms>,
}

impl Default for Domains {
    fn default() -> Self {
        let special = [INTRODUCE_DOMAIN, RELEASE_DOMAIN]
            .into_iter()
            .map(|name| (String::from(name), Perms::owned_by(0)))
            .collect();
        Self {
            known: BTreeMap::new(),
            targets: BTreeMap::new(),
            special,
        }
    }
}

impl Domains {
    /// Permissions of a special name (initially `n0`: dom0 only); `None`
    /// for names that are not special events.
    pub fn special_perms(&self, name: &str) -> Option<&Perms> {
        self.special.get(name)
    }

    /// Replaces the permissions of a known special name.
    pub fn set_special_perms(&mut self, name: &str, perms: Perms) -> XsResult<()> {
        let slot = self.special.get_mut(name).ok_or(XsError::NoEnt)?;
        *slot = perms;
        Ok(())
    }

    /// Whether `domid` is introduced; dom0 always is.
    pub fn is_introduced(&self, domid: DomId) -> bool {
        domid == 0 || self.known.contains_key(&domid)
    }

    /// The introduced domains (dom0 only if explicitly introduced).
    pub fn iter(&self) -> impl Iterator<Item = (DomId, Domain)> + '_ {
        self.known.iter().map(|(d, info)| (*d, *info))
    }

    /// Number of introduced domains.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether no domain is introduced.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// `INTRODUCE`: records a domain's ring; returns whether it is new.
    pub fn introduce(&mut self, domid: DomId, ring: Domain) -> XsResult<bool> {
        if domid >= DOMID_FIRST_RESERVED {
            return Err(XsError::Inval);
        }
        Ok(self.known.insert(domid, ring).is_none())
    }

    /// `RELEASE`: forgets a domain (never dom0) and its target.
    pub fn release(&mut self, domid: DomId) -> XsResult<()> {
        if domid == 0 {
            return Err(XsError::Inval);
        }
        self.known.remove(&domid).ok_or(XsError::NoEnt)?;
        self.targets.remove(&domid);
        Ok(())
    }

    /// `RESUME`: the domain must be known.
    pub fn resume(&self, domid: DomId) -> XsResult<()> {
        if self.known.contains_key(&domid) {
            Ok(())
        } else {
            Err(XsError::NoEnt)
        }
    }

    /// `SET_TARGET`: `domid` (a device model) acts for `target`.
    pub fn set_target(&mut self, domid: DomId, target: DomId) -> XsResult<()> {
        if !self.known.contains_key(&domid) || !self.known.contains_key(&target) {
            return Err(XsError::NoEnt);
        }
        self.targets.insert(domid, target);
        Ok(())
    }

    /// The domain `domid` acts for, if any.
    pub fn target_of(&self, domid: DomId) -> Option<DomId> {
        self.targets.get(&domid).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        let mut d = Domains::default();
        let ring = Domain { mfn: 1, port: 2 };
        assert!(d.is_introduced(0));
        assert_eq!(d.introduce(3, ring), Ok(true));
        assert_eq!(d.introduce(3, ring), Ok(false));
        assert_eq!(d.introduce(DOMID_FIRST_RESERVED, ring), Err(XsError::Inval));
        assert_eq!(d.introduce(4, ring), Ok(true));
        assert_eq!(d.set_target(4, 3), Ok(()));
        assert_eq!(d.set_target(4, 9), Err(XsError::NoEnt));
        assert_eq!(d.target_of(4), Some(3));
        assert_eq!(d.release(4), Ok(()));
        assert_eq!(d.target_of(4), None);
        assert_eq!(d.release(4), Err(XsError::NoEnt));
        assert_eq!(d.release(0), Err(XsError::Inval));
        assert_eq!(d.resume(3), Ok(()));
        assert_eq!(d.resume(4), Err(XsError::NoEnt));
        assert_eq!(d.len(), 1);
    }
}
