//! The node tree and the [`Store`] abstraction operations run against.
//!
//! Nodes live in a map keyed by canonical absolute path. Each entry keeps
//! the names of its children in a sorted set of its own, separate from the
//! [`Node`] the operations see: looking a node up, changing its value or
//! adding and removing one child never copies the child list, and costs
//! O(log n) in the size of the directory. Every change stamps the changed
//! node with a fresh generation number (adding or removing a child changes
//! the parent's), which is what transactions use to detect conflicts. The
//! tree also keeps, per domain, how many nodes it owns, for the node quota.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Bound;

use crate::DomId;
use crate::perms::Perms;

/// One node as operations see it: a value, permissions and a generation.
/// The names of its children are kept apart (see [`Store::children`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The value; arbitrary bytes.
    pub value: Vec<u8>,
    /// Who may do what.
    pub perms: Perms,
    /// Changes whenever the node (value, perms or children) changes.
    pub generation: u64,
}

impl Node {
    /// A node with generation 0 (stores stamp their own).
    pub fn new(value: Vec<u8>, perms: Perms) -> Self {
        Self {
            value,
            perms,
            generation: 0,
        }
    }
}

/// Where operations read and write nodes: the committed tree itself, or a
/// transaction's private view of it.
pub trait Store {
    /// The node at `path`, if any.
    fn node(&mut self, path: &str) -> Option<&Node>;
    /// Inserts the node at `path` (childless) or replaces its value and
    /// permissions (keeping its children).
    fn put(&mut self, path: &str, node: Node);
    /// Removes the node at `path` and its list of children (not the
    /// children themselves: callers remove those first or after).
    fn delete(&mut self, path: &str);
    /// Adds `name` to the children of the existing node `dir`.
    fn add_child(&mut self, dir: &str, name: &str);
    /// Removes `name` from the children of the existing node `dir`.
    fn remove_child(&mut self, dir: &str, name: &str);
    /// Calls `visit` with the children of `dir` in name order, starting
    /// after `after` (from the first if `None`), until it returns `false`.
    fn children(&mut self, dir: &str, after: Option<&str>, visit: &mut dyn FnMut(&str) -> bool);
    /// How many nodes `domid` owns as seen through this store.
    fn owned_by(&self, domid: DomId) -> usize;
}

/// Visits the members of `set` after `after`, in order, while `visit` says so.
pub(crate) fn visit_after(
    set: &BTreeSet<String>,
    after: Option<&str>,
    visit: &mut dyn FnMut(&str) -> bool,
) {
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    for name in set.range::<str, _>((start, Bound::Unbounded)) {
        if !visit(name) {
            break;
        }
    }
}

/// A committed node: what operations see, and its children's names.
#[derive(Debug, Clone)]
struct Entry {
    node: Node,
    children: BTreeSet<String>,
}

/// The committed node tree.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: BTreeMap<String, Entry>,
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
        self.nodes.get(path).map(|e| &e.node)
    }

    /// The names of a node's children, sorted.
    pub fn child_names(&self, path: &str) -> Option<&BTreeSet<String>> {
        self.nodes.get(path).map(|e| &e.children)
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
        self.nodes.iter().map(|(p, e)| (p.as_str(), &e.node))
    }

    /// Number of nodes owned by `domid`.
    pub fn count(&self, domid: DomId) -> usize {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    /// Inserts `node` at `path` with no children, replacing any node there
    /// together with its list of children.
    pub(crate) fn put_childless(&mut self, path: &str, node: Node) {
        self.delete(path);
        self.put(path, node);
    }

    fn stamp(&mut self) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        generation
    }

    fn uncount(&mut self, domid: DomId) {
        if let Some(n) = self.owned.get_mut(&domid) {
            *n -= 1;
            if *n == 0 {
                self.owned.remove(&domid);
            }
        }
    }

    fn touch(&mut self, dir: &str) -> Option<&mut Entry> {
        let generation = self.stamp();
        let entry = self.nodes.get_mut(dir)?;
        entry.node.generation = generation;
        Some(entry)
    }
}

impl Store for Tree {
    fn node(&mut self, path: &str) -> Option<&Node> {
        self.get(path)
    }

    fn put(&mut self, path: &str, mut node: Node) {
        node.generation = self.stamp();
        *self.owned.entry(node.perms.owner()).or_insert(0) += 1;
        let old_owner = match self.nodes.get_mut(path) {
            Some(entry) => Some(core::mem::replace(&mut entry.node, node).perms.owner()),
            None => {
                let entry = Entry {
                    node,
                    children: BTreeSet::new(),
                };
                self.nodes.insert(String::from(path), entry);
                None
            }
        };
        if let Some(owner) = old_owner {
            self.uncount(owner);
        }
    }

    fn delete(&mut self, path: &str) {
        if let Some(old) = self.nodes.remove(path) {
            self.uncount(old.node.perms.owner());
        }
    }

    fn add_child(&mut self, dir: &str, name: &str) {
        if let Some(entry) = self.touch(dir) {
            entry.children.insert(String::from(name));
        }
    }

    fn remove_child(&mut self, dir: &str, name: &str) {
        if let Some(entry) = self.touch(dir) {
            entry.children.remove(name);
        }
    }

    fn children(&mut self, dir: &str, after: Option<&str>, visit: &mut dyn FnMut(&str) -> bool) {
        if let Some(entry) = self.nodes.get(dir) {
            visit_after(&entry.children, after, visit);
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

    #[test]
    fn children_are_kept_apart_and_bump_the_parent() {
        let mut t = Tree::new();
        t.put("/d", Node::new(Vec::new(), Perms::owned_by(0)));
        let g = t.get("/d").unwrap().generation;
        for name in ["b", "a", "c"] {
            t.add_child("/d", name);
        }
        assert!(t.get("/d").unwrap().generation > g);
        // Replacing the value keeps the children.
        t.put("/d", Node::new(b"v".to_vec(), Perms::owned_by(0)));
        let mut seen = Vec::new();
        t.children("/d", Some("a"), &mut |n| {
            seen.push(String::from(n));
            true
        });
        assert_eq!(seen, ["b", "c"]);
        t.remove_child("/d", "b");
        assert_eq!(t.child_names("/d").unwrap().len(), 2);
        t.put_childless("/d", Node::new(Vec::new(), Perms::owned_by(0)));
        assert!(t.child_names("/d").unwrap().is_empty());
        assert_eq!(t.count(0), 2);
    }
}
