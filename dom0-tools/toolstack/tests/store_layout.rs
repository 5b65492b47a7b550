//! The nodes the toolstack writes for a new domain, written into the real XenStore
//! engine the way dom0 does (a privileged connection, then `XS_INTRODUCE`), and then
//! used from the domain's own connection and from another domain's.

use oxen_toolstack::store::{DomainFacts, domain_nodes, domain_path};
use oxen_xenstore::wire::{Decoder, Message, MsgType};
use oxen_xenstore::{ConnId, ConnKind, Engine, Quotas};

/// Sends one request on `id`; the reply's type and first string.
fn ask(e: &mut Engine, id: ConnId, ty: MsgType, parts: &[&str]) -> (u32, String) {
    let mut payload = Vec::new();
    for p in parts {
        payload.extend_from_slice(p.as_bytes());
        payload.push(0);
    }
    if ty == MsgType::Write {
        payload.pop();
    }
    e.feed(id, &Message::new(ty, 7, 0, payload).to_bytes())
        .unwrap();
    let out = e.drain_output(id);
    let mut d = Decoder::new();
    let mut input = out.as_slice();
    loop {
        let m = d.decode(&mut input).expect("a reply").unwrap();
        if m.header.msg_type == MsgType::WatchEvent as u32 {
            continue;
        }
        let text = m.payload.split(|&b| b == 0).next().unwrap_or(&[]);
        return (
            m.header.msg_type,
            String::from_utf8_lossy(text).into_owned(),
        );
    }
}

const ERROR: u32 = MsgType::Error as u32;

fn facts(id: u16, name: &str) -> DomainFacts<'_> {
    DomainFacts {
        id,
        name,
        uuid: "00000000-0000-4000-8000-00000000000a",
        memory_kib: 8192,
        maxmem_kib: 16384,
        vcpus: 2,
        max_vcpus: 3,
    }
}

fn built(e: &mut Engine, tool: ConnId, id: u16, name: &str) {
    let uuid = format!("00000000-0000-4000-8000-{id:012x}");
    let f = DomainFacts {
        uuid: &uuid,
        ..facts(id, name)
    };
    for n in domain_nodes(&f) {
        assert_ne!(
            ask(e, tool, MsgType::Write, &[&n.path, &n.value]).0,
            ERROR,
            "{n:?}"
        );
        let mut parts = vec![n.path.as_str()];
        parts.extend(n.perms.iter().map(String::as_str));
        assert_ne!(ask(e, tool, MsgType::SetPerms, &parts).0, ERROR, "{n:?}");
    }
    let id = id.to_string();
    assert_ne!(
        ask(e, tool, MsgType::Introduce, &[&id, "1044465", "3"]).0,
        ERROR
    );
}

#[test]
fn a_domain_reads_its_nodes_writes_its_own_and_nobody_else_sees_them() {
    let mut e = Engine::new(Quotas::default());
    let tool = e.connect(ConnKind::privileged_socket());
    built(&mut e, tool, 3, "web");
    built(&mut e, tool, 4, "db");
    let web = e.connect(ConnKind::domain(3));
    let db = e.connect(ConnKind::domain(4));

    // Relative paths are the domain's home.
    assert_eq!(ask(&mut e, web, MsgType::Read, &["name"]).1, "web");
    assert_eq!(ask(&mut e, web, MsgType::Read, &["domid"]).1, "3");
    // What libxl tells a guest about itself.
    assert_eq!(
        ask(&mut e, web, MsgType::Read, &["memory/target"]).1,
        "8192"
    );
    assert_eq!(
        ask(&mut e, web, MsgType::Read, &["memory/static-max"]).1,
        "16384"
    );
    assert_eq!(
        ask(&mut e, web, MsgType::Read, &["cpu/1/availability"]).1,
        "online"
    );
    // maxvcpus 3: the third may be hot-plugged later.
    assert_eq!(
        ask(&mut e, web, MsgType::Read, &["cpu/2/availability"]).1,
        "offline"
    );
    assert_eq!(
        ask(&mut e, web, MsgType::Read, &["vm"]).1,
        "/vm/00000000-0000-4000-8000-000000000003"
    );
    assert_eq!(
        ask(&mut e, web, MsgType::Write, &["memory/target", "1"]),
        (ERROR, "EACCES".into())
    );
    // The /vm entry is dom0's alone.
    assert_eq!(
        ask(
            &mut e,
            web,
            MsgType::Read,
            &["/vm/00000000-0000-4000-8000-000000000003/name"]
        ),
        (ERROR, "EACCES".into())
    );
    assert_eq!(
        ask(
            &mut e,
            tool,
            MsgType::Read,
            &["/vm/00000000-0000-4000-8000-000000000003/name"]
        )
        .1,
        "web"
    );
    assert_eq!(
        ask(&mut e, web, MsgType::GetDomainPath, &["3"]).1,
        domain_path(3)
    );
    // Its name and its home are dom0's to change; data/ and control/shutdown its own.
    assert_eq!(
        ask(&mut e, web, MsgType::Write, &["name", "evil"]),
        (ERROR, "EACCES".into())
    );
    assert_eq!(
        ask(&mut e, web, MsgType::Write, &["domid", "0"]),
        (ERROR, "EACCES".into())
    );
    assert_ne!(ask(&mut e, web, MsgType::Write, &["data/k", "v"]).0, ERROR);
    assert_ne!(
        ask(&mut e, web, MsgType::Write, &["control/shutdown", ""]).0,
        ERROR
    );
    // What Linux's xenbus writes as it comes up (feature-* as setup_shutdown_watcher
    // does).
    for node in [
        "feature-poweroff",
        "feature-reboot",
        "feature-suspend",
        "sysrq",
    ] {
        let path = format!("control/{node}");
        assert_ne!(
            ask(&mut e, web, MsgType::Write, &[&path, "1"]).0,
            ERROR,
            "{path}"
        );
    }
    assert_eq!(
        ask(&mut e, web, MsgType::Write, &["control/other", "x"]),
        (ERROR, "EACCES".into())
    );
    // Another domain sees none of it.
    assert_eq!(
        ask(&mut e, db, MsgType::Read, &["/local/domain/3/name"]),
        (ERROR, "EACCES".into())
    );
    assert_eq!(
        ask(&mut e, db, MsgType::Read, &["/local/domain/3/data/k"]),
        (ERROR, "EACCES".into())
    );
    // The toolstack does.
    assert_eq!(
        ask(&mut e, tool, MsgType::Read, &["/local/domain/3/data/k"]).1,
        "v"
    );
    assert_eq!(
        ask(&mut e, tool, MsgType::Read, &["/local/domain/4/name"]).1,
        "db"
    );
}

#[test]
fn parents_come_before_children_and_every_node_has_an_owner() {
    let nodes = domain_nodes(&facts(9, "x"));
    assert_eq!(
        nodes
            .iter()
            .filter(|n| n.path.ends_with("/availability"))
            .count(),
        3
    );
    for (i, n) in nodes.iter().enumerate() {
        assert!(
            n.path.starts_with("/local/domain/9") || n.path.starts_with("/vm/"),
            "{n:?}"
        );
        assert!(n.perms[0].starts_with('n'), "{n:?}");
        if let Some((parent, _)) = n.path.rsplit_once('/')
            && parent.len() > "/local/domain".len()
            && parent != "/vm"
        {
            assert!(
                nodes[..i].iter().any(|p| p.path == parent),
                "{parent} before {}",
                n.path
            );
        }
    }
}
