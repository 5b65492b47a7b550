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

/// Bytes a node makes the store hold, charged to its owner: its path,
/// value and permission list, plus a fixed overhead for bookkeeping.
pub fn node_cost(path: &str, node: &Node) -> usize {
    NODE_OVERHEAD + path.len() + node.value.len() + 8 * node.perms.entries().len()
}

/// Fixed bookkeeping cost counted per node (map entry, child name, sets).
pub const NODE_OVERHEAD: usize = 64;

/// What one domain owns in a store: nodes and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owned {
    /// Number of nodes.
    pub nodes: usize,
    /// Their [`node_cost`], summed.
    pub bytes: usize,
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
    /// What `domid` owns as seen through this store.
    fn owned(&self, domid: DomId) -> Owned;
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
    owned: BTreeMap<DomId, Owned>,
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
        self.owned_by(domid).nodes
    }

    /// What `domid` owns in the committed tree.
    pub fn owned_by(&self, domid: DomId) -> Owned {
        self.owned.get(&domid).copied().unwrap_or_default()
    }

    /// Checks the tree's invariants: the root exists; every other node's
    /// parent exists and lists it; every listed child exists; the
    /// per-domain counts and bytes match the nodes. Describes the first
    /// violation found. O(n): for tests and `CONTROL check`.
    pub fn check(&self) -> Result<(), String> {
        use alloc::format;
        if !self.nodes.contains_key("/") {
            return Err(String::from("no root"));
        }
        let mut owned: BTreeMap<DomId, Owned> = BTreeMap::new();
        for (path, entry) in &self.nodes {
            let o = owned.entry(entry.node.perms.owner()).or_default();
            o.nodes += 1;
            o.bytes += node_cost(path, &entry.node);
            if let Some(dir) = crate::path::parent(path) {
                let listed = self
                    .nodes
                    .get(dir)
                    .is_some_and(|d| d.children.contains(crate::path::basename(path)));
                if !listed {
                    return Err(format!("{path} is not listed by its parent"));
                }
            }
            for name in &entry.children {
                let child = crate::path::join(path, name);
                if !self.nodes.contains_key(&child) {
                    return Err(format!("{path} lists missing child {name}"));
                }
            }
        }
        if owned != self.owned {
            return Err(format!(
                "owned counts {:?}, nodes say {owned:?}",
                self.owned
            ));
        }
        Ok(())
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

    fn count_in(&mut self, domid: DomId, bytes: usize) {
        let owned = self.owned.entry(domid).or_default();
        owned.nodes += 1;
        owned.bytes += bytes;
    }

    fn uncount(&mut self, domid: DomId, bytes: usize) {
        if let Some(owned) = self.owned.get_mut(&domid) {
            owned.nodes -= 1;
            owned.bytes -= bytes;
            if owned.nodes == 0 {
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
        self.count_in(node.perms.owner(), node_cost(path, &node));
        let old = match self.nodes.get_mut(path) {
            Some(entry) => {
                let old = core::mem::replace(&mut entry.node, node);
                Some((old.perms.owner(), node_cost(path, &old)))
            }
            None => {
                let entry = Entry {
                    node,
                    children: BTreeSet::new(),
                };
                self.nodes.insert(String::from(path), entry);
                None
            }
        };
        if let Some((owner, bytes)) = old {
            self.uncount(owner, bytes);
        }
    }

    fn delete(&mut self, path: &str) {
        if let Some(old) = self.nodes.remove(path) {
            self.uncount(old.node.perms.owner(), node_cost(path, &old.node));
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

    fn owned(&self, domid: DomId) -> Owned {
        self.owned_by(domid)
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
        let bytes = t.owned_by(4).bytes;
        assert_eq!(bytes, NODE_OVERHEAD + 2 + 1 + 8);
        t.delete("/a");
        assert_eq!(t.owned_by(4), Owned::default());
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
