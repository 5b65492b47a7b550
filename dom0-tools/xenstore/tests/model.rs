//! Property tests: random operation sequences from several connections,
//! with transactions and permissions, checked against a simple reference
//! model.
//!
//! The model is a flat map from path to (value, permissions); children are
//! found by scanning it. Operations outside transactions must give exactly
//! the model's reply and leave exactly the model's tree. A transaction's
//! replies are recorded; when the engine commits it, replaying the same
//! operations on the model at that moment must give the same replies (the
//! transaction is serialisable at its commit point) and the same tree. When
//! the engine refuses a commit with `EAGAIN`, the tree must be unchanged and
//! some other change must really have happened since the transaction began.

mod common;

use std::collections::BTreeMap;

use common::*;
use oxen_xenstore::ConnId;
use proptest::prelude::*;

/// (value, permissions such as `["n0", "r1"]`).
type MNode = (Vec<u8>, Vec<String>);

#[derive(Clone, Debug, Default)]
struct Model {
    nodes: BTreeMap<String, MNode>,
}

#[derive(Clone, Copy, Debug)]
struct Who {
    domid: u32,
    privileged: bool,
}

const READ: u8 = 1;
const WRITE: u8 = 2;
const OWNER: u8 = 4;

fn parent(p: &str) -> Option<String> {
    if p == "/" {
        return None;
    }
    let i = p.rfind('/').unwrap();
    Some(if i == 0 { "/".into() } else { p[..i].into() })
}

fn letter_rights(entry: &str) -> u8 {
    match entry.as_bytes()[0] {
        b'r' => READ,
        b'w' => WRITE,
        b'b' => READ | WRITE,
        _ => 0,
    }
}

fn entry_dom(entry: &str) -> u32 {
    entry[1..].parse().unwrap()
}

impl Model {
    fn rights(&self, who: Who, perms: &[String]) -> u8 {
        if who.privileged || entry_dom(&perms[0]) == who.domid {
            return READ | WRITE | OWNER;
        }
        let mine: Vec<&String> = perms[1..]
            .iter()
            .filter(|e| entry_dom(e) == who.domid)
            .collect();
        if mine.is_empty() {
            letter_rights(&perms[0])
        } else {
            mine.iter().fold(0, |acc, e| acc | letter_rights(e))
        }
    }

    fn has(&self, who: Who, path: &str, need: u8) -> bool {
        self.rights(who, &self.nodes[path].1) & need == need
    }

    fn missing_error(&self, who: Who, path: &str, need: u8) -> Reply {
        let mut at = parent(path);
        while let Some(p) = at {
            if self.nodes.contains_key(&p) {
                return if self.has(who, &p, need) {
                    err("ENOENT")
                } else {
                    err("EACCES")
                };
            }
            at = parent(&p);
        }
        err("ENOENT")
    }

    fn children(&self, path: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|k| parent(k).as_deref() == Some(path))
            .map(|k| k.rsplit('/').next().unwrap().to_string())
            .collect()
    }

    fn create(&mut self, who: Who, path: &str, value: &[u8]) -> Reply {
        let mut missing = vec![path.to_string()];
        let mut top = parent(path).unwrap();
        while !self.nodes.contains_key(&top) {
            missing.push(top.clone());
            top = parent(&top).unwrap();
        }
        if !self.has(who, &top, WRITE) {
            return err("EACCES");
        }
        let mut perms = self.nodes[&top].1.clone();
        if who.domid != 0 {
            perms[0] = format!("{}{}", &perms[0][..1], who.domid);
        }
        for p in &missing {
            let v = if p == path {
                value.to_vec()
            } else {
                Vec::new()
            };
            self.nodes.insert(p.clone(), (v, perms.clone()));
        }
        ok()
    }

    /// Runs one operation; also returns the watch event it causes, if any.
    fn apply(&mut self, who: Who, op: &NodeOp) -> (Reply, Option<MFired>) {
        let before = self.nodes.clone();
        let reply = self.apply_inner(who, op);
        if reply.is_err() {
            return (reply, None);
        }
        let fired = match op {
            NodeOp::Write(p, _) => Some(MFired::new(p, false, vec![self.nodes[p].1.clone()])),
            NodeOp::Mkdir(p) if !before.contains_key(p) => {
                Some(MFired::new(p, false, vec![self.nodes[p].1.clone()]))
            }
            NodeOp::SetPerms(p, new) => Some(MFired::new(
                p,
                false,
                vec![new.clone(), before[p].1.clone()],
            )),
            NodeOp::Rm(p) if before.contains_key(p) => {
                Some(MFired::new(p, true, vec![before[p].1.clone()]))
            }
            _ => None,
        };
        (reply, fired)
    }

    fn apply_inner(&mut self, who: Who, op: &NodeOp) -> Reply {
        match op {
            NodeOp::Read(p) | NodeOp::Dir(p) | NodeOp::GetPerms(p) => {
                if !self.nodes.contains_key(p) {
                    return self.missing_error(who, p, READ);
                }
                if !self.has(who, p, READ) {
                    return err("EACCES");
                }
                let (value, perms) = &self.nodes[p];
                match op {
                    NodeOp::Read(_) => Ok(value.clone()),
                    NodeOp::Dir(_) => Ok(self.children(p).iter().flat_map(|c| nul(c)).collect()),
                    _ => Ok(perms.iter().flat_map(|e| nul(e)).collect()),
                }
            }
            NodeOp::Write(p, v) => {
                if !self.nodes.contains_key(p) {
                    return self.create(who, p, v.as_bytes());
                }
                if !self.has(who, p, WRITE) {
                    return err("EACCES");
                }
                self.nodes.get_mut(p).unwrap().0 = v.as_bytes().to_vec();
                ok()
            }
            NodeOp::Mkdir(p) => {
                if !self.nodes.contains_key(p) {
                    return self.create(who, p, b"");
                }
                if self.has(who, p, WRITE) {
                    ok()
                } else {
                    err("EACCES")
                }
            }
            NodeOp::Rm(p) => {
                if p == "/" {
                    return err("EINVAL");
                }
                if !self.nodes.contains_key(p) {
                    let e = self.missing_error(who, p, WRITE);
                    let parent_exists = self.nodes.contains_key(&parent(p).unwrap());
                    return if e == err("ENOENT") && parent_exists {
                        ok()
                    } else {
                        e
                    };
                }
                if !self.has(who, p, WRITE) {
                    return err("EACCES");
                }
                let prefix = format!("{p}/");
                self.nodes.retain(|k, _| k != p && !k.starts_with(&prefix));
                ok()
            }
            NodeOp::SetPerms(p, perms) => {
                if !self.nodes.contains_key(p) {
                    return self.missing_error(who, p, WRITE | OWNER);
                }
                if !self.has(who, p, WRITE | OWNER) {
                    return err("EACCES");
                }
                let old_owner = entry_dom(&self.nodes[p].1[0]);
                if !who.privileged && entry_dom(&perms[0]) != old_owner {
                    return err("EPERM");
                }
                self.nodes.get_mut(p).unwrap().1 = perms.clone();
                ok()
            }
        }
    }
}

/// A change that may fire watches: path, recursive (removal), and the
/// permission lists under one of which a watcher must be able to read.
#[derive(Clone, Debug)]
struct MFired {
    path: String,
    recursive: bool,
    perms: Vec<Vec<String>>,
}

impl MFired {
    fn new(path: &str, recursive: bool, perms: Vec<Vec<String>>) -> Self {
        Self {
            path: path.to_string(),
            recursive,
            perms,
        }
    }
}

fn is_under(ancestor: &str, path: &str) -> bool {
    ancestor == "/" || path == ancestor || path.starts_with(&format!("{ancestor}/"))
}

/// A watch: owning connection, absolute path, token, home if relative.
struct MWatch {
    conn: usize,
    path: String,
    token: String,
    home: Option<String>,
}

/// The events `fired` delivers, per connection, in delivery order.
fn deliver(model: &Model, watches: &[MWatch], fired: &[MFired]) -> Vec<Vec<(String, String)>> {
    let mut out = vec![Vec::new(); WHO.len()];
    for f in fired {
        for w in watches {
            let readable = f
                .perms
                .iter()
                .any(|p| model.rights(WHO[w.conn], p) & READ != 0);
            let event_path = if is_under(&w.path, &f.path) {
                &f.path
            } else if f.recursive && is_under(&f.path, &w.path) {
                &w.path
            } else {
                continue;
            };
            if !readable {
                continue;
            }
            let shown = match &w.home {
                Some(home) => event_path
                    .strip_prefix(&format!("{home}/"))
                    .unwrap_or(event_path),
                None => event_path,
            };
            out[w.conn].push((shown.to_string(), w.token.clone()));
        }
    }
    out
}

#[derive(Clone, Debug)]
enum NodeOp {
    Read(String),
    Dir(String),
    GetPerms(String),
    Write(String, String),
    Mkdir(String),
    Rm(String),
    SetPerms(String, Vec<String>),
}

#[derive(Clone, Debug)]
enum Step {
    Node {
        conn: usize,
        in_tx: bool,
        raw_path: &'static str,
        op: NodeOp,
    },
    Start(usize),
    End(usize, bool),
}

const PATHS: [&str; 11] = [
    "/",
    "/a",
    "/a/b",
    "/a/b/c",
    "/d",
    "/d/e",
    "/local/domain/1",
    "/local/domain/1/x",
    "/local/domain/2/y",
    "x",
    "x/y",
];
const PERMS: [&[&str]; 7] = [
    &["n0"],
    &["r0"],
    &["b0"],
    &["n1", "r2"],
    &["n2", "b1"],
    &["w1"],
    &["b1"],
];
const WHO: [Who; 3] = [
    Who {
        domid: 0,
        privileged: true,
    },
    Who {
        domid: 1,
        privileged: false,
    },
    Who {
        domid: 2,
        privileged: false,
    },
];

fn canonical(who: Who, raw: &str) -> String {
    if raw.starts_with('/') {
        raw.to_string()
    } else {
        format!("/local/domain/{}/{raw}", who.domid)
    }
}

fn step() -> impl Strategy<Value = Step> {
    let node = (
        0usize..3,
        any::<bool>(),
        0..PATHS.len(),
        0usize..7,
        0..PERMS.len(),
        0u8..3,
    )
        .prop_map(|(conn, in_tx, p, kind, perms, v)| {
            let raw_path = PATHS[p];
            let path = canonical(WHO[conn], raw_path);
            let op = match kind {
                0 => NodeOp::Read(path),
                1 => NodeOp::Dir(path),
                2 => NodeOp::GetPerms(path),
                3 => NodeOp::Write(path, format!("v{v}")),
                4 => NodeOp::Mkdir(path),
                5 => NodeOp::Rm(path),
                _ => NodeOp::SetPerms(path, PERMS[perms].iter().map(|s| s.to_string()).collect()),
            };
            Step::Node {
                conn,
                in_tx,
                raw_path,
                op,
            }
        });
    prop_oneof![
        6 => node,
        1 => (0usize..3).prop_map(Step::Start),
        1 => (0usize..3, proptest::bool::weighted(0.8)).prop_map(|(c, commit)| Step::End(c, commit)),
    ]
}

fn send(h: &mut Harness, conn: ConnId, tx: u32, raw: &str, op: &NodeOp) -> Reply {
    match op {
        NodeOp::Read(_) => h.read(conn, tx, raw),
        NodeOp::Dir(_) => h.dir(conn, tx, raw),
        NodeOp::GetPerms(_) => h.get_perms(conn, tx, raw),
        NodeOp::Write(_, v) => h.write(conn, tx, raw, v),
        NodeOp::Mkdir(_) => h.mkdir(conn, tx, raw),
        NodeOp::Rm(_) => h.rm(conn, tx, raw),
        NodeOp::SetPerms(_, perms) => {
            let perms: Vec<&str> = perms.iter().map(String::as_str).collect();
            h.set_perms(conn, tx, raw, &perms)
        }
    }
}

/// The engine's committed tree in the model's shape.
fn engine_state(h: &Harness) -> BTreeMap<String, MNode> {
    h.engine
        .tree()
        .iter()
        .map(|(path, node)| {
            let perms = node
                .perms
                .encode()
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8(s.to_vec()).unwrap())
                .collect();
            (path.to_string(), (node.value.clone(), perms))
        })
        .collect()
}

/// An open transaction: its id, the model version it started at, and
/// each operation with the reply the engine gave.
struct OpenTx {
    id: u32,
    started_at: u64,
    log: Vec<(NodeOp, Reply)>,
}

fn run(steps: &[Step]) -> Result<(usize, usize), TestCaseError> {
    let mut h = Harness::new();
    let conns: Vec<ConnId> = vec![h.dom0(), h.domu(1), h.domu(2)];
    let mut model = Model::default();
    model.nodes.insert("/".into(), (vec![], vec!["n0".into()]));
    for d in [1u32, 2] {
        let home = format!("/local/domain/{d}");
        h.write(conns[0], 0, &home, "").unwrap();
        h.set_perms(conns[0], 0, &home, &[&format!("n{d}")])
            .unwrap();
        assert_eq!(
            model
                .apply(WHO[0], &NodeOp::Write(home.clone(), String::new()))
                .0,
            ok()
        );
        assert_eq!(
            model
                .apply(WHO[0], &NodeOp::SetPerms(home, vec![format!("n{d}")]))
                .0,
            ok()
        );
    }
    // Watches: dom0 on everything, dom1 on everything and (relative) on
    // its `x`, dom2 on `/a`. Their initial events are checked, then dropped.
    let watches = vec![
        MWatch {
            conn: 0,
            path: "/".into(),
            token: "all".into(),
            home: None,
        },
        MWatch {
            conn: 1,
            path: "/".into(),
            token: "root".into(),
            home: None,
        },
        MWatch {
            conn: 1,
            path: "/local/domain/1/x".into(),
            token: "rel".into(),
            home: Some("/local/domain/1".into()),
        },
        MWatch {
            conn: 2,
            path: "/a".into(),
            token: "a".into(),
            home: None,
        },
    ];
    for w in &watches {
        let raw = match &w.home {
            Some(home) => w.path.strip_prefix(&format!("{home}/")).unwrap(),
            None => &w.path,
        };
        prop_assert_eq!(h.watch(conns[w.conn], raw, &w.token), ok());
        prop_assert_eq!(
            h.events(conns[w.conn]),
            vec![(raw.to_string(), w.token.clone())]
        );
    }
    let mut version = 0u64;
    let mut txs: Vec<Option<OpenTx>> = vec![None, None, None];
    let (mut commits, mut conflicts) = (0, 0);
    for step in steps {
        let mut fired = Vec::new();
        match step {
            Step::Node {
                conn,
                in_tx,
                raw_path,
                op,
            } => {
                let who = WHO[*conn];
                match (&mut txs[*conn], in_tx) {
                    (Some(tx), true) => {
                        let reply = send(&mut h, conns[*conn], tx.id, raw_path, op);
                        tx.log.push((op.clone(), reply));
                    }
                    _ => {
                        let reply = send(&mut h, conns[*conn], 0, raw_path, op);
                        let (expected, event) = model.apply(who, op);
                        prop_assert_eq!(&reply, &expected, "{:?} by dom{}", op, who.domid);
                        version += u64::from(event.is_some());
                        fired.extend(event);
                    }
                }
            }
            Step::Start(conn) => {
                if txs[*conn].is_none() {
                    let id = h.start(conns[*conn]);
                    txs[*conn] = Some(OpenTx {
                        id,
                        started_at: version,
                        log: vec![],
                    });
                }
            }
            Step::End(conn, commit) => {
                let Some(tx) = txs[*conn].take() else {
                    continue;
                };
                let reply = h.end(conns[*conn], tx.id, *commit);
                if !*commit {
                    prop_assert_eq!(reply, ok());
                } else if reply == ok() {
                    commits += 1;
                    let mut replay = model.clone();
                    for (op, got) in &tx.log {
                        let (expected, event) = replay.apply(WHO[*conn], op);
                        prop_assert_eq!(got, &expected, "replay of {:?} at commit point", op);
                        fired.extend(event);
                    }
                    model = replay;
                    version += u64::from(!fired.is_empty());
                } else {
                    conflicts += 1;
                    prop_assert_eq!(&reply, &err("EAGAIN"));
                    prop_assert!(
                        version > tx.started_at,
                        "EAGAIN although nothing else changed since the transaction began"
                    );
                }
            }
        }
        prop_assert_eq!(
            engine_state(&h),
            model.nodes.clone(),
            "trees diverge after {:?}",
            step
        );
        // Exactly the expected watch events, to exactly the right connections.
        let expected_events = deliver(&model, &watches, &fired);
        for (i, expected) in expected_events.into_iter().enumerate() {
            prop_assert_eq!(
                h.events(conns[i]),
                expected,
                "events of conn {} after {:?}",
                i,
                step
            );
        }
        // Children lists match too.
        for path in model.nodes.keys() {
            let expected: Vec<u8> = model.children(path).iter().flat_map(|c| nul(c)).collect();
            prop_assert_eq!(h.dir(conns[0], 0, path), Ok(expected));
        }
    }
    Ok((commits, conflicts))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model(steps in proptest::collection::vec(step(), 1..60)) {
        run(&steps)?;
    }
}

/// The generator really exercises commits and conflicts (guards against a
/// property that passes because transactions never commit).
#[test]
fn generator_reaches_commits_and_conflicts() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut commits, mut conflicts) = (0, 0);
    for _ in 0..200 {
        let steps = proptest::collection::vec(step(), 40..60)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let (c, k) = run(&steps).expect("property holds");
        commits += c;
        conflicts += k;
    }
    eprintln!("commits {commits} conflicts {conflicts}");
    assert!(commits > 50, "commits: {commits}");
    assert!(conflicts > 10, "conflicts: {conflicts}");
}
