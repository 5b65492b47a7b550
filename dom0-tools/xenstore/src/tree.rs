//! The node tree and the [`Store`] abstraction operations run against.
//!
//! Nodes live in a map keyed by canonical absolute path; each node keeps the
//! names of its children, so listing a directory never scans the map. Every
//! change stamps the changed node with a fresh generation number, which is
//! what transactions use to detect conflicts. The tree also keeps, per
//! domain, how many nodes it owns, for the node quota.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use crate::DomId;
use crate::perms::Perms;

/// One node: a value, permissions and the names of its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The value; arbitrary bytes.
    pub value: Vec<u8>,
    /// Who may do what.
    pub perms: Perms,
    /// Names (last components) of the children, sorted.
    pub children: BTreeSet<String>,
    /// Changes whenever the node (value, perms or children) changes.
    pub generation: u64,
}

impl Node {
    /// A childless node.
    pub fn new(value: Vec<u8>, perms: Perms) -> Self {
        Self {
            value,
            perms,
            children: BTreeSet::new(),
            generation: 0,
        }
    }
}

/// Where operations read and write nodes: the committed tree itself, or a
/// transaction's private view of it.
pub trait Store {
    /// The node at `path`, if any.
    fn node(&mut self, path: &str) -> Option<&Node>;
    /// Inserts or replaces the node at `path`.
    fn put(&mut self, path: &str, node: Node);
    /// Removes the node at `path` (not its children: callers remove those).
    fn delete(&mut self, path: &str);
    /// How many nodes `domid` owns as seen through this store.
    fn owned_by(&self, domid: DomId) -> usize;
}

/// The committed node tree.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
    owned: BTreeMap<DomId, usize>,
    next_generation: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A tree holding only the root, owned by dom0 and closed to others.
    pub fn new() -> Self {
        let mut tree = Self {
            nodes: BTreeMap::new(),
            owned: BTreeMap::new(),
            next_generation: 1,
        };
        tree.put("/", Node::new(Vec::new(), Perms::owned_by(0)));
        tree
    }

    /// Read-only access to a node.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Number of nodes, root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree is empty (never: the root always exists).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(p, n)| (p.as_str(), n))
    }

    /// Number of nodes owned by `domid`.
    pub fn count(&self, domid: DomId) -> usize {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    fn uncount(&mut self, domid: DomId) {
        if let Some(n) = self.owned.get_mut(&domid) {
            *n -= 1;
            if *n == 0 {
                self.owned.remove(&domid);
            }
        }
    }
}

impl Store for Tree {
    fn node(&mut self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    fn put(&mut self, path: &str, mut node: Node) {
        node.generation = self.next_generation;
        self.next_generation += 1;
        *self.owned.entry(node.perms.owner()).or_insert(0) += 1;
        if let Some(old) = self.nodes.insert(String::from(path), node) {
            self.uncount(old.perms.owner());
        }
    }

    fn delete(&mut self, path: &str) {
        if let Some(old) = self.nodes.remove(path) {
            self.uncount(old.perms.owner());
        }
    }

    fn owned_by(&self, domid: DomId) -> usize {
        self.count(domid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_and_counts() {
        let mut t = Tree::new();
        assert_eq!(t.count(0), 1);
        let g0 = t.get("/").unwrap().generation;
        t.put("/a", Node::new(b"x".to_vec(), Perms::owned_by(3)));
        assert_eq!(t.count(3), 1);
        t.put("/a", Node::new(b"y".to_vec(), Perms::owned_by(4)));
        assert_eq!((t.count(3), t.count(4)), (0, 1));
        assert!(t.get("/a").unwrap().generation > g0);
        t.delete("/a");
        assert_eq!(t.count(4), 0);
        assert_eq!(t.len(), 1);
    }
}
