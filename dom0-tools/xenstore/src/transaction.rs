//! Transactions: optimistic, private views of the tree.
//!
//! A transaction never copies the tree. It remembers every committed node
//! it looks at, as it first saw it (or that it was absent): that record is
//! its read set, and later reads are served from it, so a transaction
//! works on a snapshot of what it read. The first time it lists a
//! directory, the names are recorded too and later listings are served from
//! that record. Its own changes go to an overlay (changed nodes) and to
//! per-directory lists of added and removed child names, so changing a
//! large directory inside a transaction costs O(log n) like outside.
//!
//! Commit checks that no node of the read set changed since (by
//! generation); if one did, the commit fails with `EAGAIN` and nothing is
//! applied. Otherwise the overlay and the child changes are applied in one
//! step, so every committed transaction is equivalent to running its
//! operations, alone, at its commit point. Watch events produced inside a
//! transaction are kept back and fired only on a successful commit.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use crate::DomId;
use crate::error::{XsError, XsResult};
use crate::tree::{Node, Owned, Store, Tree, node_cost, visit_after};
use crate::watch::Fired;

/// An open transaction.
#[derive(Debug, Default)]
pub struct Transaction {
    /// Changed nodes (`None`: deleted in this transaction).
    overlay: BTreeMap<String, Option<Node>>,
    /// Nodes the transaction created where its view had none: their
    /// committed children (if any) are not theirs.
    fresh: BTreeSet<String>,
    /// Child names added (`true`) or removed (`false`), per directory.
    child_changes: BTreeMap<String, BTreeMap<String, bool>>,
    /// Every committed node accessed, as first seen (`None`: was absent).
    accessed: BTreeMap<String, Option<Node>>,
    /// The children of every directory listed, as first listed, with the
    /// transaction's own changes applied.
    listed: BTreeMap<String, BTreeSet<String>>,
    /// Change in owned nodes and bytes per domain.
    owned_delta: BTreeMap<DomId, (isize, isize)>,
    /// Bytes the transaction's records hold (approximate, never lowered).
    bytes: usize,
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
        let conflict = self.accessed.iter().any(|(path, seen)| {
            tree.get(path).map(|n| n.generation) != seen.as_ref().map(|n| n.generation)
        });
        if conflict {
            return Err(XsError::Again);
        }
        for (path, change) in self.overlay {
            match change {
                Some(node) if self.fresh.contains(&path) => tree.put_childless(&path, node),
                Some(node) => tree.put(&path, node),
                None => tree.delete(&path),
            }
        }
        for (dir, changes) in self.child_changes {
            for (name, added) in changes {
                if added {
                    tree.add_child(&dir, &name);
                } else {
                    tree.remove_child(&dir, &name);
                }
            }
        }
        Ok(self.events)
    }

    /// The node at `path` as the transaction first saw it, recording it on
    /// first access.
    fn seen(&mut self, tree: &Tree, path: &str) -> Option<&Node> {
        if !self.accessed.contains_key(path) {
            let node = tree.get(path).cloned();
            self.charge(path, node.as_ref());
            self.accessed.insert(String::from(path), node);
        }
        self.accessed.get(path).and_then(Option::as_ref)
    }

    /// Bytes the transaction makes the store hold: its read set, listings,
    /// overlay and child changes (an upper bound: it never shrinks).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn adjust(&mut self, domid: DomId, nodes: isize, bytes: usize) {
        let bytes = isize::try_from(bytes).unwrap_or(isize::MAX);
        let delta = self.owned_delta.entry(domid).or_insert((0, 0));
        delta.0 += nodes;
        delta.1 += nodes.signum() * bytes;
    }

    fn charge(&mut self, path: &str, node: Option<&Node>) {
        self.bytes += crate::tree::NODE_OVERHEAD + path.len() + node.map_or(0, |n| n.value.len());
    }

    fn next_generation(&mut self) -> u64 {
        self.local_generation += 1;
        (1 << 63) | self.local_generation
    }
}

/// A transaction's view of the tree: its own changes over the committed tree.
pub struct TxView<'a> {
    tree: &'a Tree,
    tx: &'a mut Transaction,
}

impl TxView<'_> {
    /// The owner and cost of the node at `path` in this view.
    fn current(&mut self, path: &str) -> Option<(DomId, usize)> {
        self.node(path)
            .map(|n| (n.perms.owner(), node_cost(path, n)))
    }

    /// Records a change to `dir`'s children: the directory itself changes.
    fn change_child(&mut self, dir: &str, name: &str, added: bool) {
        let Some(mut node) = self.node(dir).cloned() else {
            return;
        };
        node.generation = self.tx.next_generation();
        self.tx.charge(dir, Some(&node));
        self.tx.bytes += name.len();
        self.tx.overlay.insert(String::from(dir), Some(node));
        self.tx
            .child_changes
            .entry(String::from(dir))
            .or_default()
            .insert(String::from(name), added);
        if let Some(names) = self.tx.listed.get_mut(dir) {
            if added {
                names.insert(String::from(name));
            } else {
                names.remove(name);
            }
        }
    }

    /// The children of `dir` in this view, recorded on first listing.
    fn listing(&mut self, dir: &str) -> Option<&BTreeSet<String>> {
        self.node(dir)?;
        if !self.tx.listed.contains_key(dir) {
            let mut names = if self.tx.fresh.contains(dir) {
                BTreeSet::new()
            } else {
                self.tree.child_names(dir).cloned().unwrap_or_default()
            };
            for (name, added) in self.tx.child_changes.get(dir).into_iter().flatten() {
                if *added {
                    names.insert(name.clone());
                } else {
                    names.remove(name);
                }
            }
            self.tx.bytes += names
                .iter()
                .map(|n| n.len() + crate::tree::NODE_OVERHEAD / 2)
                .sum::<usize>();
            self.tx.listed.insert(String::from(dir), names);
        }
        self.tx.listed.get(dir)
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
        match self.current(path) {
            Some((owner, bytes)) => self.tx.adjust(owner, -1, bytes),
            None => {
                self.tx.fresh.insert(String::from(path));
                self.tx.listed.remove(path);
                self.tx.child_changes.remove(path);
            }
        }
        self.tx
            .adjust(node.perms.owner(), 1, node_cost(path, &node));
        node.generation = self.tx.next_generation();
        self.tx.charge(path, Some(&node));
        self.tx.overlay.insert(String::from(path), Some(node));
    }

    fn delete(&mut self, path: &str) {
        if let Some((owner, bytes)) = self.current(path) {
            self.tx.adjust(owner, -1, bytes);
            self.tx.charge(path, None);
            self.tx.overlay.insert(String::from(path), None);
            self.tx.fresh.remove(path);
            self.tx.listed.remove(path);
            self.tx.child_changes.remove(path);
        }
    }

    fn add_child(&mut self, dir: &str, name: &str) {
        self.change_child(dir, name, true);
    }

    fn remove_child(&mut self, dir: &str, name: &str) {
        self.change_child(dir, name, false);
    }

    fn children(&mut self, dir: &str, after: Option<&str>, visit: &mut dyn FnMut(&str) -> bool) {
        if let Some(names) = self.listing(dir) {
            visit_after(names, after, visit);
        }
    }

    fn owned(&self, domid: DomId) -> Owned {
        let (nodes, bytes) = self.tx.owned_delta.get(&domid).copied().unwrap_or((0, 0));
        let committed = self.tree.owned_by(domid);
        Owned {
            nodes: committed.nodes.saturating_add_signed(nodes),
            bytes: committed.bytes.saturating_add_signed(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perms::Perms;

    fn node(v: &[u8]) -> Node {
        Node::new(v.to_vec(), Perms::owned_by(0))
    }

    fn names<S: Store>(s: &mut S, dir: &str) -> Vec<String> {
        let mut out = Vec::new();
        s.children(dir, None, &mut |n| {
            out.push(String::from(n));
            true
        });
        out
    }

    #[test]
    fn sees_own_writes_and_commits() {
        let mut tree = Tree::new();
        let mut tx = Transaction::new();
        tx.view(&tree).put("/a", node(b"1"));
        tx.view(&tree).add_child("/", "a");
        assert_eq!(tx.view(&tree).node("/a").unwrap().value, b"1");
        assert_eq!(names(&mut tx.view(&tree), "/"), ["a"]);
        assert!(tree.get("/a").is_none());
        assert_eq!(
            tx.view(&tree).owned(0),
            tree.owned_by(0)
                .nodes
                .checked_add(1)
                .map(|n| Owned {
                    nodes: n,
                    bytes: tree.owned_by(0).bytes + node_cost("/a", &node(b"1"))
                })
                .unwrap()
        );
        tx.commit(&mut tree).unwrap();
        assert_eq!(tree.get("/a").unwrap().value, b"1");
        assert_eq!(names(&mut tree, "/"), ["a"]);
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
        tree.add_child("/", "a");
        let mut tx = Transaction::new();
        assert_eq!(tx.view(&tree).node("/a").unwrap().value, b"0");
        assert_eq!(names(&mut tx.view(&tree), "/"), ["a"]);
        tree.put("/a", node(b"1"));
        tree.put("/b", node(b"1"));
        tree.add_child("/", "b");
        assert_eq!(tx.view(&tree).node("/a").unwrap().value, b"0");
        assert_eq!(names(&mut tx.view(&tree), "/"), ["a"]);
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

    #[test]
    fn recreated_node_starts_childless() {
        let mut tree = Tree::new();
        tree.put("/d", node(b""));
        tree.add_child("/", "d");
        tree.put("/d/x", node(b""));
        tree.add_child("/d", "x");
        let mut tx = Transaction::new();
        {
            let mut v = tx.view(&tree);
            v.delete("/d/x");
            v.delete("/d");
            v.remove_child("/", "d");
            v.put("/d", node(b"new"));
            v.add_child("/", "d");
            assert!(names(&mut v, "/d").is_empty());
        }
        tx.commit(&mut tree).unwrap();
        assert!(tree.child_names("/d").unwrap().is_empty());
        assert!(tree.get("/d/x").is_none());
        assert_eq!(tree.get("/d").unwrap().value, b"new");
    }
}
