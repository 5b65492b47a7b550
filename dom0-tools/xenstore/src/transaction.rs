//! Transactions: optimistic, private views of the tree.
//!
//! A transaction never copies the tree. Its changes go to an overlay, and
//! every committed node it looks at or changes is remembered together with
//! that node's generation at first access (or its absence). Commit checks
//! that none of those nodes changed since; if one did, the commit fails with
//! `EAGAIN` and nothing is applied. Otherwise the overlay is applied in one
//! step, so every committed transaction is equivalent to running its
//! operations, alone, at its commit point. Watch events produced inside a
//! transaction are kept back and fired only on a successful commit.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::DomId;
use crate::error::{XsError, XsResult};
use crate::tree::{Node, Store, Tree};
use crate::watch::Fired;

/// An open transaction.
#[derive(Debug, Default)]
pub struct Transaction {
    /// Changed nodes (`None`: deleted in this transaction).
    overlay: BTreeMap<String, Option<Node>>,
    /// Every committed node accessed, as first seen (`None`: was absent).
    /// Later reads are served from here: the read set is a snapshot.
    accessed: BTreeMap<String, Option<Node>>,
    /// Change in owned-node counts per domain.
    owned_delta: BTreeMap<DomId, isize>,
    /// Events to fire on commit, in order.
    events: Vec<Fired>,
    /// Generation source for nodes changed inside the transaction.
    local_generation: u64,
    /// When it started, on the engine's clock (milliseconds).
    pub(crate) started_ms: u64,
}

impl Transaction {
    /// A fresh, empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh transaction started at `now_ms` on the engine's clock.
    pub fn started_at(now_ms: u64) -> Self {
        Self {
            started_ms: now_ms,
            ..Self::default()
        }
    }

    /// The transaction's view of `tree`.
    pub fn view<'a>(&'a mut self, tree: &'a Tree) -> TxView<'a> {
        TxView { tree, tx: self }
    }

    /// How many nodes the transaction has accessed or changed: what its
    /// memory use grows with.
    pub fn footprint(&self) -> usize {
        self.accessed.len() + self.overlay.len()
    }

    /// Records events to fire if the transaction commits.
    pub fn defer(&mut self, events: impl IntoIterator<Item = Fired>) {
        self.events.extend(events);
    }

    /// Applies the transaction to `tree`, or fails with `EAGAIN` leaving
    /// `tree` untouched. Returns the events to fire.
    pub fn commit(self, tree: &mut Tree) -> XsResult<Vec<Fired>> {
        let conflict = self
            .accessed
            .iter()
            .any(|(path, seen)| {
                tree.get(path).map(|n| n.generation) != seen.as_ref().map(|n| n.generation)
            });
        if conflict {
            return Err(XsError::Again);
        }
        for (path, change) in self.overlay {
            match change {
                Some(node) => tree.put(&path, node),
                None => tree.delete(&path),
            }
        }
        Ok(self.events)
    }

    /// The node at `path` as the transaction first saw it, recording it on
    /// first access.
    fn seen(&mut self, tree: &Tree, path: &str) -> Option<&Node> {
        if !self.accessed.contains_key(path) {
            self.accessed
                .insert(String::from(path), tree.get(path).cloned());
        }
        self.accessed.get(path).and_then(Option::as_ref)
    }

    fn adjust(&mut self, domid: DomId, by: isize) {
        *self.owned_delta.entry(domid).or_insert(0) += by;
    }
}

/// A transaction's view of the tree: its own changes over the committed tree.
pub struct TxView<'a> {
    tree: &'a Tree,
    tx: &'a mut Transaction,
}

impl TxView<'_> {
    fn current_owner(&mut self, path: &str) -> Option<DomId> {
        self.node(path).map(|n| n.perms.owner())
    }
}

impl Store for TxView<'_> {
    fn node(&mut self, path: &str) -> Option<&Node> {
        if self.tx.overlay.contains_key(path) {
            return self.tx.overlay.get(path).and_then(Option::as_ref);
        }
        self.tx.seen(self.tree, path)
    }

    fn put(&mut self, path: &str, mut node: Node) {
        if let Some(owner) = self.current_owner(path) {
            self.tx.adjust(owner, -1);
        }
        self.tx.adjust(node.perms.owner(), 1);
        self.tx.local_generation += 1;
        node.generation = (1 << 63) | self.tx.local_generation;
        self.tx.overlay.insert(String::from(path), Some(node));
    }

    fn delete(&mut self, path: &str) {
        if let Some(owner) = self.current_owner(path) {
            self.tx.adjust(owner, -1);
            self.tx.overlay.insert(String::from(path), None);
        }
    }

    fn owned_by(&self, domid: DomId) -> usize {
        let delta = self.tx.owned_delta.get(&domid).copied().unwrap_or(0);
        self.tree.count(domid).saturating_add_signed(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perms::Perms;

    fn node(v: &[u8]) -> Node {
        Node::new(v.to_vec(), Perms::owned_by(0))
    }

    #[test]
    fn sees_own_writes_and_commits() {
        let mut tree = Tree::new();
        let mut tx = Transaction::new();
        tx.view(&tree).put("/a", node(b"1"));
        assert_eq!(tx.view(&tree).node("/a").unwrap().value, b"1");
        assert!(tree.get("/a").is_none());
        assert_eq!(tx.view(&tree).owned_by(0), 2);
        tx.commit(&mut tree).unwrap();
        assert_eq!(tree.get("/a").unwrap().value, b"1");
    }

    #[test]
    fn conflict_changes_nothing() {
        let mut tree = Tree::new();
        tree.put("/a", node(b"0"));
        let mut tx = Transaction::new();
        assert!(tx.view(&tree).node("/a").is_some());
        tx.view(&tree).put("/b", node(b"1"));
        tree.put("/a", node(b"2"));
        let before = tree.clone();
        assert_eq!(tx.commit(&mut tree), Err(XsError::Again));
        assert_eq!(tree.get("/b"), before.get("/b"));
        assert_eq!(tree.len(), before.len());
    }

    #[test]
    fn reads_are_a_snapshot() {
        let mut tree = Tree::new();
        tree.put("/a", node(b"0"));
        let mut tx = Transaction::new();
        assert_eq!(tx.view(&tree).node("/a").unwrap().value, b"0");
        tree.put("/a", node(b"1"));
        tree.put("/b", node(b"1"));
        assert_eq!(tx.view(&tree).node("/a").unwrap().value, b"0");
        assert_eq!(tx.commit(&mut tree), Err(XsError::Again));
        assert_eq!(tree.get("/a").unwrap().value, b"1");
    }

    #[test]
    fn absent_then_created_conflicts() {
        let mut tree = Tree::new();
        let mut tx = Transaction::new();
        assert!(tx.view(&tree).node("/x").is_none());
        tree.put("/x", node(b""));
        assert_eq!(tx.commit(&mut tree), Err(XsError::Again));
    }
}
