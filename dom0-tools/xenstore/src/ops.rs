//! Node operations, written once over any [`Store`].
//!
//! The same code serves requests outside transactions (on the committed
//! [`Tree`](crate::tree::Tree)) and inside them (on a
//! [`TxView`](crate::transaction::TxView)). Each mutating operation returns
//! the watch events it causes; the caller decides when to fire them.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::DomId;
use crate::error::{XsError, XsResult};
use crate::path::{basename, join, parent};
use crate::perms::{Caller, Perms, Rights};
use crate::quota::Quotas;
use crate::tree::{Node, Store, node_cost};
use crate::watch::Fired;
use crate::wire::PAYLOAD_MAX;

/// Who runs an operation and under which quotas.
#[derive(Debug, Clone, Copy)]
pub struct OpCtx<'a> {
    /// The caller.
    pub caller: Caller,
    /// The quotas in force.
    pub quotas: &'a Quotas,
}

impl OpCtx<'_> {
    fn limited(&self) -> bool {
        !self.caller.privileged
    }

    /// Checks that `owner` may own `more` nodes costing `bytes` more bytes
    /// (`ENOSPC` for the node count, `ENOMEM` for node memory). Privileged
    /// callers are exempt.
    fn charge<S: Store>(&self, s: &S, owner: DomId, more: usize, bytes: isize) -> XsResult<()> {
        if !self.limited() {
            return Ok(());
        }
        let owned = s.owned(owner);
        if owned.nodes.saturating_add(more) > self.quotas.nodes_per_domain {
            return Err(XsError::NoSpc);
        }
        if bytes > 0
            && owned.bytes.saturating_add_signed(bytes) > self.quotas.node_memory_per_domain
        {
            return Err(XsError::NoMem);
        }
        Ok(())
    }
}

fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

/// The error for a missing node: `ENOENT` if the caller could have seen it
/// (holds `need` on the nearest existing ancestor), `EACCES` otherwise, so
/// that absence does not leak through unreadable directories.
fn missing<S: Store>(s: &mut S, caller: &Caller, path: &str, need: Rights) -> XsError {
    let mut at = parent(path);
    while let Some(p) = at {
        if let Some(node) = s.node(p) {
            return if caller.rights(&node.perms).contains(need) {
                XsError::NoEnt
            } else {
                XsError::Acces
            };
        }
        at = parent(p);
    }
    XsError::NoEnt
}

/// The node at `path`, if the caller holds `need` on it.
pub fn lookup<S: Store>(s: &mut S, ctx: &OpCtx<'_>, path: &str, need: Rights) -> XsResult<Node> {
    match s.node(path).cloned() {
        Some(node) if ctx.caller.rights(&node.perms).contains(need) => Ok(node),
        Some(_) => Err(XsError::Acces),
        None => Err(missing(s, &ctx.caller, path, need)),
    }
}

/// `READ`: the node's value.
pub fn read<S: Store>(s: &mut S, ctx: &OpCtx<'_>, path: &str) -> XsResult<Vec<u8>> {
    lookup(s, ctx, path, Rights::READ).map(|n| n.value)
}

/// `DIRECTORY`: the children's names; `E2BIG` if they do not fit a reply.
/// Stops walking the children as soon as the reply is too big.
pub fn directory<S: Store>(s: &mut S, ctx: &OpCtx<'_>, path: &str) -> XsResult<Vec<u8>> {
    lookup(s, ctx, path, Rights::READ)?;
    let mut list = Vec::new();
    let mut too_big = false;
    s.children(path, None, &mut |name| {
        list.extend_from_slice(name.as_bytes());
        list.push(0);
        too_big = list.len() > PAYLOAD_MAX;
        !too_big
    });
    if too_big {
        return Err(XsError::TooBig);
    }
    Ok(list)
}

/// Where a connection's last `DIRECTORY_PART` reply ended, so that asking
/// for the next part continues from there in O(page) instead of walking
/// the list from its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirCursor {
    /// The directory.
    pub path: String,
    /// Its generation when the part was made (the list is the same while
    /// it is unchanged).
    pub generation: u64,
    /// Byte offset, in the full list, at which the next part starts.
    pub offset: usize,
    /// The last name sent.
    pub after: String,
}

/// `DIRECTORY_PART`: the node's generation, then as many whole child names
/// as fit starting at byte `offset` of the full list; an extra NUL marks
/// the end of the list. If `cursor` is where the previous part ended (same
/// directory, generation and offset), the walk starts there; otherwise it
/// starts at the first child. `cursor` is updated to where this part ends.
pub fn directory_part<S: Store>(
    s: &mut S,
    ctx: &OpCtx<'_>,
    path: &str,
    offset: usize,
    cursor: &mut Option<DirCursor>,
) -> XsResult<Vec<u8>> {
    let generation = lookup(s, ctx, path, Rights::READ)?.generation;
    let resume = cursor
        .take()
        .filter(|c| c.path == path && c.generation == generation && c.offset == offset);
    let mut out = format!("{generation}\0").into_bytes();
    let room = PAYLOAD_MAX - out.len() - 1;
    // `pos`: offset in the full list of the next name visited.
    let mut pos = if resume.is_some() { offset } else { 0 };
    let mut body = Vec::new();
    let mut last: Option<String> = None;
    let mut full = false;
    s.children(
        path,
        resume.as_ref().map(|c| c.after.as_str()),
        &mut |name| {
            let piece_len = name.len() + 1;
            if pos + piece_len <= offset {
                pos += piece_len;
                return true;
            }
            // A first name is cut if `offset` falls inside it.
            let piece = &name.as_bytes()[offset.saturating_sub(pos)..];
            if body.len() + piece.len() + 1 > room {
                full = true;
                return false;
            }
            body.extend_from_slice(piece);
            body.push(0);
            pos += piece_len;
            last = Some(String::from(name));
            true
        },
    );
    if !full && pos < offset {
        return Err(XsError::Inval);
    }
    out.extend_from_slice(&body);
    if full {
        if let Some(after) = last {
            *cursor = Some(DirCursor {
                path: String::from(path),
                generation,
                offset: offset + body.len(),
                after,
            });
        }
    } else {
        out.push(0);
    }
    Ok(out)
}

/// `GET_PERMS`: the permission list in wire form.
pub fn get_perms<S: Store>(s: &mut S, ctx: &OpCtx<'_>, path: &str) -> XsResult<Vec<u8>> {
    lookup(s, ctx, path, Rights::READ).map(|n| n.perms.encode())
}

/// Creates `path` and any missing ancestors; the new nodes inherit the
/// permissions of their parent, and are owned by the caller's domain
/// unless the caller is dom0.
fn create<S: Store>(s: &mut S, ctx: &OpCtx<'_>, path: &str, value: Vec<u8>) -> XsResult<Perms> {
    let mut missing_nodes = Vec::new();
    let mut at = path;
    while s.node(at).is_none() {
        missing_nodes.push(at.to_string());
        at = parent(at).ok_or(XsError::Inval)?;
    }
    let top = lookup(s, ctx, at, Rights::WRITE)?;
    let perms = if ctx.caller.domid != 0 {
        top.perms.with_owner(ctx.caller.domid)
    } else {
        top.perms
    };
    let cost: usize = missing_nodes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let len = if i == 0 { value.len() } else { 0 };
            node_cost(p, &Node::new(Vec::new(), perms.clone())) + len
        })
        .sum();
    ctx.charge(s, perms.owner(), missing_nodes.len(), signed(cost))?;
    let mut value = Some(value);
    for (i, p) in missing_nodes.iter().enumerate().rev() {
        let dir = parent(p).ok_or(XsError::Inval)?;
        s.add_child(dir, basename(p));
        let v = if i == 0 {
            value.take().unwrap_or_default()
        } else {
            Vec::new()
        };
        s.put(p, Node::new(v, perms.clone()));
    }
    Ok(perms)
}

/// `WRITE`: sets a value, creating the node (and its ancestors) if needed.
pub fn write<S: Store>(s: &mut S, ctx: &OpCtx<'_>, path: &str, value: &[u8]) -> XsResult<Fired> {
    if ctx.limited() && value.len() > ctx.quotas.value_size {
        return Err(XsError::NoSpc);
    }
    match s.node(path).cloned() {
        Some(mut node) => {
            if !ctx.caller.rights(&node.perms).contains(Rights::WRITE) {
                return Err(XsError::Acces);
            }
            let growth = signed(value.len()) - signed(node.value.len());
            ctx.charge(s, node.perms.owner(), 0, growth)?;
            node.value = value.to_vec();
            let perms = node.perms.clone();
            s.put(path, node);
            Ok(Fired::changed(path, vec![perms]))
        }
        None => {
            let perms = create(s, ctx, path, value.to_vec())?;
            Ok(Fired::changed(path, vec![perms]))
        }
    }
}

/// `MKDIR`: creates an empty node; succeeds quietly if it exists.
pub fn mkdir<S: Store>(s: &mut S, ctx: &OpCtx<'_>, path: &str) -> XsResult<Option<Fired>> {
    if s.node(path).is_some() {
        lookup(s, ctx, path, Rights::WRITE)?;
        return Ok(None);
    }
    let perms = create(s, ctx, path, Vec::new())?;
    Ok(Some(Fired::changed(path, vec![perms])))
}

/// `RM`: removes a node and everything below it. Removing a missing node
/// whose parent exists succeeds; the root cannot be removed.
pub fn rm<S: Store>(s: &mut S, ctx: &OpCtx<'_>, path: &str) -> XsResult<Option<Fired>> {
    let Some(dir) = parent(path) else {
        return Err(XsError::Inval);
    };
    let node = match lookup(s, ctx, path, Rights::WRITE) {
        Ok(node) => node,
        Err(XsError::NoEnt) if s.node(dir).is_some() => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut stack = vec![String::from(path)];
    while let Some(p) = stack.pop() {
        s.children(&p, None, &mut |c| {
            stack.push(join(&p, c));
            true
        });
        s.delete(&p);
    }
    s.remove_child(dir, basename(path));
    Ok(Some(Fired::removed(path, node.perms)))
}

/// `SET_PERMS`: replaces the permission list. Needs ownership; only
/// privileged callers may hand a node to another owner.
pub fn set_perms<S: Store>(
    s: &mut S,
    ctx: &OpCtx<'_>,
    path: &str,
    perms: Perms,
) -> XsResult<Fired> {
    let mut node = lookup(s, ctx, path, Rights::WRITE.union(Rights::OWNER))?;
    if ctx.limited() {
        if perms.owner() != node.perms.owner() {
            return Err(XsError::Perm);
        }
        if perms.entries().len() > ctx.quotas.perms_per_node {
            return Err(XsError::NoSpc);
        }
        let growth = 8 * (signed(perms.entries().len()) - signed(node.perms.entries().len()));
        ctx.charge(s, perms.owner(), 0, growth)?;
    }
    let old = core::mem::replace(&mut node.perms, perms.clone());
    s.put(path, node);
    Ok(Fired::changed(path, vec![perms, old]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Owned, Tree};

    const DOM0: OpCtx<'static> = OpCtx {
        caller: Caller::PRIVILEGED,
        quotas: &QUOTAS,
    };
    static QUOTAS: Quotas = Quotas {
        nodes_per_domain: 4,
        value_size: 8,
        watches_per_domain: 2,
        transactions_per_connection: 2,
        outstanding_requests: 4,
        queued_watch_events: 4,
        perms_per_node: 2,
        transaction_nodes: 8,
        transactions_per_domain: 3,
        transaction_timeout_secs: 0,
        node_memory_per_domain: 1000,
        watch_events_per_domain: 4,
        queue_memory_per_domain: 4096,
        transaction_memory_per_domain: 4096,
    };

    fn dom(d: u32) -> OpCtx<'static> {
        OpCtx {
            caller: Caller::domain(d),
            quotas: &QUOTAS,
        }
    }

    fn perms(s: &[&str]) -> Perms {
        Perms::parse(s.iter().map(|e| e.as_bytes())).unwrap()
    }

    #[test]
    fn write_creates_parents_and_reads_back() {
        let mut t = Tree::new();
        write(&mut t, &DOM0, "/a/b/c", b"v").unwrap();
        assert_eq!(read(&mut t, &DOM0, "/a/b/c").unwrap(), b"v");
        assert_eq!(read(&mut t, &DOM0, "/a/b").unwrap(), b"");
        assert_eq!(directory(&mut t, &DOM0, "/a").unwrap(), b"b\0");
        assert_eq!(read(&mut t, &DOM0, "/zz"), Err(XsError::NoEnt));
    }

    #[test]
    fn permissions_and_inheritance() {
        let mut t = Tree::new();
        write(&mut t, &DOM0, "/d", b"").unwrap();
        set_perms(&mut t, &DOM0, "/d", perms(&["n0", "b1", "r2"])).unwrap();
        // Domain 1 creates a child: it owns it, and keeps the inherited ACL.
        write(&mut t, &dom(1), "/d/x", b"1").unwrap();
        assert_eq!(get_perms(&mut t, &DOM0, "/d/x").unwrap(), b"n1\0b1\0r2\0");
        assert_eq!(read(&mut t, &dom(2), "/d/x").unwrap(), b"1");
        assert_eq!(write(&mut t, &dom(2), "/d/x", b"2"), Err(XsError::Acces));
        assert_eq!(read(&mut t, &dom(3), "/d/x"), Err(XsError::Acces));
        // Missing nodes under unreadable directories are EACCES, not ENOENT.
        assert_eq!(read(&mut t, &dom(3), "/d/nope"), Err(XsError::Acces));
        assert_eq!(read(&mut t, &dom(2), "/d/nope"), Err(XsError::NoEnt));
        // Unprivileged owners may not give nodes away.
        assert_eq!(
            set_perms(&mut t, &dom(1), "/d/x", perms(&["n2"])),
            Err(XsError::Perm)
        );
        assert_eq!(
            set_perms(&mut t, &dom(2), "/d", perms(&["n2"])),
            Err(XsError::Acces)
        );
        assert!(set_perms(&mut t, &dom(1), "/d/x", perms(&["r1"])).is_ok());
        assert_eq!(
            set_perms(&mut t, &dom(1), "/d/x", perms(&["r1", "r2", "r3"])),
            Err(XsError::NoSpc)
        );
    }

    #[test]
    fn rm_rules() {
        let mut t = Tree::new();
        write(&mut t, &DOM0, "/a/b/c", b"v").unwrap();
        assert_eq!(rm(&mut t, &DOM0, "/"), Err(XsError::Inval));
        assert_eq!(rm(&mut t, &DOM0, "/a/zz"), Ok(None));
        assert_eq!(rm(&mut t, &DOM0, "/q/zz"), Err(XsError::NoEnt));
        let fired = rm(&mut t, &DOM0, "/a/b").unwrap().unwrap();
        assert!(fired.recursive);
        assert_eq!(t.len(), 2);
        assert_eq!(directory(&mut t, &DOM0, "/a").unwrap(), b"");
    }

    #[test]
    fn quotas_bite_domains_only() {
        let mut t = Tree::new();
        write(&mut t, &DOM0, "/d", b"").unwrap();
        set_perms(&mut t, &DOM0, "/d", perms(&["b0"])).unwrap();
        assert_eq!(
            write(&mut t, &dom(1), "/d/a", b"123456789"),
            Err(XsError::NoSpc)
        );
        assert!(write(&mut t, &DOM0, "/d/a", b"123456789").is_ok());
        assert_eq!(
            write(&mut t, &dom(1), "/d/1/2/3/4/5", b""),
            Err(XsError::NoSpc)
        );
        assert_eq!(t.count(1), 0, "a refused create leaves nothing behind");
        for i in 0..4 {
            write(&mut t, &dom(1), &format!("/d/n{i}"), b"").unwrap();
        }
        assert_eq!(write(&mut t, &dom(1), "/d/n9", b""), Err(XsError::NoSpc));
        rm(&mut t, &dom(1), "/d/n0").unwrap();
        assert!(write(&mut t, &dom(1), "/d/n9", b"").is_ok());
    }

    /// A store that counts the child names it hands out.
    struct Counting {
        tree: Tree,
        visited: usize,
    }

    impl Store for Counting {
        fn node(&mut self, path: &str) -> Option<&Node> {
            self.tree.node(path)
        }
        fn put(&mut self, path: &str, node: Node) {
            self.tree.put(path, node);
        }
        fn delete(&mut self, path: &str) {
            self.tree.delete(path);
        }
        fn add_child(&mut self, dir: &str, name: &str) {
            self.tree.add_child(dir, name);
        }
        fn remove_child(&mut self, dir: &str, name: &str) {
            self.tree.remove_child(dir, name);
        }
        fn children(
            &mut self,
            dir: &str,
            after: Option<&str>,
            visit: &mut dyn FnMut(&str) -> bool,
        ) {
            let visited = &mut self.visited;
            self.tree.children(dir, after, &mut |n| {
                *visited += 1;
                visit(n)
            });
        }
        fn owned(&self, domid: u32) -> Owned {
            self.tree.owned_by(domid)
        }
    }

    fn full_list(t: &Tree, dir: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for name in t.child_names(dir).unwrap() {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
        out
    }

    /// Pages through `/big`; returns the names and the number of parts.
    fn page_all(s: &mut impl Store, keep_cursor: bool) -> (Vec<u8>, usize) {
        let mut got = Vec::new();
        let mut offset = 0;
        let mut cursor = None;
        for parts in 1.. {
            if !keep_cursor {
                cursor = None;
            }
            let part = directory_part(s, &DOM0, "/big", offset, &mut cursor).unwrap();
            assert!(part.len() <= PAYLOAD_MAX);
            let gen_end = part.iter().position(|&b| b == 0).unwrap();
            let body = &part[gen_end + 1..];
            if body.ends_with(b"\0\0") || body == b"\0" {
                got.extend_from_slice(&body[..body.len() - 1]);
                return (got, parts);
            }
            got.extend_from_slice(body);
            offset += body.len();
        }
        unreachable!()
    }

    #[test]
    fn directory_part_pages() {
        let mut t = Tree::new();
        for i in 0..600 {
            write(&mut t, &DOM0, &format!("/big/child-number-{i:04}"), b"").unwrap();
        }
        assert_eq!(directory(&mut t, &DOM0, "/big"), Err(XsError::TooBig));
        let full = full_list(&t, "/big");
        assert_eq!(page_all(&mut t, true).0, full);
        assert_eq!(page_all(&mut t, false).0, full, "without a cursor too");
        // An offset inside a name gives the rest of that name first.
        let mut none = None;
        let part = directory_part(&mut t, &DOM0, "/big", 3, &mut none).unwrap();
        let gen_end = part.iter().position(|&b| b == 0).unwrap();
        assert!(part[gen_end + 1..].starts_with(b"ld-number-0000\0child-number-0001\0"));
        let past = full.len() + 1;
        assert_eq!(
            directory_part(&mut t, &DOM0, "/big", past, &mut None),
            Err(XsError::Inval)
        );
        let end = directory_part(&mut t, &DOM0, "/big", full.len(), &mut None).unwrap();
        assert!(end.ends_with(b"\0\0"));
    }

    #[test]
    fn large_directories_cost_o_log_n_per_change_and_o_page_per_part() {
        let mut s = Counting {
            tree: Tree::new(),
            visited: 0,
        };
        let n = 20_000;
        for i in 0..n {
            write(&mut s, &DOM0, &format!("/big/c{i:05}"), b"").unwrap();
        }
        rm(&mut s, &DOM0, "/big/c00007").unwrap();
        write(&mut s, &DOM0, "/big", b"value").unwrap();
        assert_eq!(s.visited, 0, "changes never walk the child list");
        // Paging with the cursor visits each name about once (plus one
        // look-ahead name per part), not once per part.
        let (got, parts) = page_all(&mut s, true);
        assert_eq!(got, full_list(&s.tree, "/big"));
        assert!(parts > 20);
        assert!(
            s.visited <= n + parts,
            "{} visits for {parts} parts",
            s.visited
        );
        // DIRECTORY stops as soon as the reply is too big.
        s.visited = 0;
        assert_eq!(directory(&mut s, &DOM0, "/big"), Err(XsError::TooBig));
        assert!(s.visited < 1000);
    }
}
