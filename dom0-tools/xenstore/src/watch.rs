//! Watches and the events they produce.
//!
//! A watch is a path and a token. A change to a node fires every watch on
//! that node or on one of its ancestors, reporting the changed path. Removal
//! also fires watches on the removed node's descendants, reporting the
//! watch's own path. Special watches (`@introduceDomain`,
//! `@releaseDomain`) fire when the engine signals those events. A
//! connection only receives events for nodes it may read.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Bound;

use crate::connection::ConnId;
use crate::path::{is_self_or_ancestor, parent, relative_to};
use crate::perms::Perms;

/// Something that happened and may fire watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// The changed node (absolute) or the special event name.
    pub path: String,
    /// Whether watches below `path` fire too (node removal).
    pub recursive: bool,
    /// The receiver must be able to read under one of these permission
    /// lists (privileged receivers always can).
    pub perms: Vec<Perms>,
}

impl Fired {
    /// A write, mkdir or permission change of `path`.
    pub fn changed(path: &str, perms: Vec<Perms>) -> Self {
        Self {
            path: String::from(path),
            recursive: false,
            perms,
        }
    }

    /// The removal of `path` and everything below it.
    pub fn removed(path: &str, perms: Perms) -> Self {
        Self {
            path: String::from(path),
            recursive: true,
            perms: alloc::vec![perms],
        }
    }

    /// A special event such as `@releaseDomain`, readable under `perms`.
    pub fn special(name: &str, perms: Perms) -> Self {
        Self {
            path: String::from(name),
            recursive: false,
            perms: alloc::vec![perms],
        }
    }

    /// Whether this is a special event.
    pub fn is_special(&self) -> bool {
        self.path.starts_with('@')
    }
}

/// A registered watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// Canonical absolute path, or special name.
    pub path: String,
    /// Opaque token echoed in every event.
    pub token: Vec<u8>,
    /// The caller's home if the watch was registered with a relative path;
    /// events are then reported relative to it.
    pub home: Option<String>,
}

impl Watch {
    /// The absolute path an event for `fired` reports, if the watch fires.
    pub fn event_path<'a>(&'a self, fired: &'a Fired) -> Option<&'a str> {
        if fired.is_special() {
            return (fired.path == self.path).then_some(fired.path.as_str());
        }
        if is_self_or_ancestor(&self.path, &fired.path) {
            Some(&fired.path)
        } else if fired.recursive && is_self_or_ancestor(&fired.path, &self.path) {
            Some(&self.path)
        } else {
            None
        }
    }

    /// `path` the way this watch reports it to its owner.
    pub fn render<'a>(&self, path: &'a str) -> &'a str {
        match &self.home {
            Some(home) => relative_to(home, path),
            None => path,
        }
    }

    /// The `XS_WATCH_EVENT` payload for `path`: `path\0token\0`.
    pub fn event_payload(&self, path: &str) -> Vec<u8> {
        let rendered = self.render(path);
        let mut payload = Vec::with_capacity(rendered.len() + self.token.len() + 2);
        payload.extend_from_slice(rendered.as_bytes());
        payload.push(0);
        payload.extend_from_slice(&self.token);
        payload.push(0);
        payload
    }
}

/// Which connections watch which paths, so that an event visits only the
/// connections holding a watch that can fire: those on the changed path
/// and its ancestors (O(depth · log w) lookups) and, for a removal, those
/// below it (one range).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WatchIndex {
    /// Watch path (canonical, or special name) → connection → watches.
    by_path: BTreeMap<String, BTreeMap<ConnId, usize>>,
}

impl WatchIndex {
    /// Records a watch of `conn` on `path`.
    pub fn add(&mut self, path: &str, conn: ConnId) {
        *self
            .by_path
            .entry(String::from(path))
            .or_default()
            .entry(conn)
            .or_insert(0) += 1;
    }

    /// Forgets one watch of `conn` on `path`.
    pub fn remove(&mut self, path: &str, conn: ConnId) {
        let Some(conns) = self.by_path.get_mut(path) else {
            return;
        };
        if let Some(n) = conns.get_mut(&conn) {
            *n -= 1;
            if *n == 0 {
                conns.remove(&conn);
            }
        }
        if conns.is_empty() {
            self.by_path.remove(path);
        }
    }

    /// The connections that may hold a watch `fired` fires, in id order.
    pub fn candidates(&self, fired: &Fired) -> BTreeSet<ConnId> {
        let mut out = BTreeSet::new();
        let mut take = |path: &str| {
            if let Some(conns) = self.by_path.get(path) {
                out.extend(conns.keys().copied());
            }
        };
        if fired.is_special() {
            take(&fired.path);
            return out;
        }
        let mut at = Some(fired.path.as_str());
        while let Some(p) = at {
            take(p);
            at = parent(p);
        }
        if fired.recursive {
            let prefix = if fired.path == "/" {
                String::from("/")
            } else {
                let mut prefix = fired.path.clone();
                prefix.push('/');
                prefix
            };
            let below = self
                .by_path
                .range::<str, _>((Bound::Excluded(prefix.as_str()), Bound::Unbounded))
                .take_while(|(path, _)| path.starts_with(&prefix));
            for (_, conns) in below {
                out.extend(conns.keys().copied());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(path: &str, home: Option<&str>) -> Watch {
        Watch {
            path: path.into(),
            token: b"tok".to_vec(),
            home: home.map(String::from),
        }
    }

    #[test]
    fn matching_rules() {
        let p = Perms::owned_by(0);
        let w = watch("/a/b", None);
        assert_eq!(
            w.event_path(&Fired::changed("/a/b/c", alloc::vec![p.clone()])),
            Some("/a/b/c")
        );
        assert_eq!(
            w.event_path(&Fired::changed("/a/bc", alloc::vec![p.clone()])),
            None
        );
        assert_eq!(
            w.event_path(&Fired::changed("/a", alloc::vec![p.clone()])),
            None
        );
        assert_eq!(w.event_path(&Fired::removed("/a", p)), Some("/a/b"));
        let s = watch("@releaseDomain", None);
        assert_eq!(
            s.event_path(&Fired::special("@releaseDomain", Perms::owned_by(0))),
            Some("@releaseDomain")
        );
        let other = Fired::special("@introduceDomain", Perms::owned_by(0));
        assert_eq!(s.event_path(&other), None);
    }

    #[test]
    fn index_finds_exactly_the_candidates() {
        let p = Perms::owned_by(0);
        let mut index = WatchIndex::default();
        let (a, b, c, d) = (ConnId(1), ConnId(2), ConnId(3), ConnId(4));
        index.add("/", a);
        index.add("/x/y", b);
        index.add("/x/y", b);
        index.add("/x/yz/w", c);
        index.add("@releaseDomain", d);
        let changed = Fired::changed("/x/y/z", alloc::vec![p.clone()]);
        assert_eq!(index.candidates(&changed), [a, b].into());
        let removed = Fired::removed("/x", p.clone());
        assert_eq!(index.candidates(&removed), [a, b, c].into());
        let removed = Fired::removed("/x/y", p.clone());
        assert_eq!(index.candidates(&removed), [a, b].into());
        let root = Fired::removed("/", p.clone());
        assert_eq!(index.candidates(&root), [a, b, c].into());
        let special = Fired::special("@releaseDomain", p.clone());
        assert_eq!(index.candidates(&special), [d].into());
        index.remove("/x/y", b);
        assert_eq!(index.candidates(&changed), [a, b].into());
        index.remove("/x/y", b);
        assert_eq!(index.candidates(&changed), [a].into());
    }

    #[test]
    fn relative_rendering() {
        let w = watch("/local/domain/3/x", Some("/local/domain/3"));
        assert_eq!(w.event_payload("/local/domain/3/x/y"), b"x/y\0tok\0");
        let w = watch("/x", None);
        assert_eq!(w.event_payload("/x"), b"/x\0tok\0");
    }
}
