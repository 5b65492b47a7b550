//! What the toolstack writes to the XenStore for a new domain, as libxl lays it out:
//! `/local/domain/N` and what describes it (`name`, `domid`, `vm`, `memory/`, `cpu/`)
//! readable by the domain but only dom0's to change (`n0 rN`), `control/` likewise
//! except `control/shutdown`, which the domain owns (it acknowledges requests there),
//! and `data/` the domain's own; and `/vm/UUID` with its name and uuid, dom0's.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// One node: its path, value and permissions (Xen's `n0`/`rN` form, owner first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub path: String,
    pub value: String,
    pub perms: Vec<String>,
}

/// The home of domain `id` in the store.
pub fn domain_path(id: u16) -> String {
    format!("/local/domain/{id}")
}

/// What the store says about a domain.
#[derive(Debug, Clone)]
pub struct DomainFacts<'a> {
    pub id: u16,
    pub name: &'a str,
    /// Xen's 8-4-4-4-12 form.
    pub uuid: &'a str,
    pub memory_kib: u64,
    pub maxmem_kib: u64,
    /// vCPUs online at boot.
    pub vcpus: u32,
    /// vCPUs it may have (`maxvcpus`): `cpu/N/availability` is `offline` from `vcpus` on.
    pub max_vcpus: u32,
}

/// Where a domain's vCPU `v` is said to be wanted online or offline (relative to its
/// home): the guest watches it (Xen's PV CPU hot-plug protocol, `xl vcpu-set`).
pub fn availability_path(v: u32) -> String {
    format!("/cpu/{v}/availability")
}

/// The value of an `availability` node.
pub fn availability(online: bool) -> &'static str {
    if online { "online" } else { "offline" }
}

/// `/vm/UUID`, the domain's entry outside its home.
pub fn vm_path(uuid: &str) -> String {
    format!("/vm/{uuid}")
}

/// The nodes of a new domain, parents before children.
pub fn domain_nodes(d: &DomainFacts<'_>) -> Vec<Node> {
    let id = d.id;
    let home = domain_path(id);
    let read_only = || vec![String::from("n0"), format!("r{id}")];
    let own = || vec![format!("n{id}")];
    let node = |sub: &str, value: String, perms: Vec<String>| Node {
        path: format!("{home}{sub}"),
        value,
        perms,
    };
    let vm = vm_path(d.uuid);
    let mut nodes = vec![
        Node {
            path: vm.clone(),
            value: String::new(),
            perms: vec![String::from("n0")],
        },
        Node {
            path: format!("{vm}/name"),
            value: String::from(d.name),
            perms: vec![String::from("n0")],
        },
        Node {
            path: format!("{vm}/uuid"),
            value: String::from(d.uuid),
            perms: vec![String::from("n0")],
        },
        node("", String::new(), read_only()),
        node("/name", String::from(d.name), read_only()),
        node("/domid", format!("{id}"), read_only()),
        node("/vm", vm.clone(), read_only()),
        node("/memory", String::new(), read_only()),
        node(
            "/memory/static-max",
            format!("{}", d.maxmem_kib),
            read_only(),
        ),
        node("/memory/target", format!("{}", d.memory_kib), read_only()),
        node("/cpu", String::new(), read_only()),
    ];
    for v in 0..d.max_vcpus.max(d.vcpus) {
        nodes.push(node(&format!("/cpu/{v}"), String::new(), read_only()));
        nodes.push(node(
            &availability_path(v),
            String::from(availability(v < d.vcpus)),
            read_only(),
        ));
    }
    nodes.extend([
        node("/control", String::new(), read_only()),
        node("/control/shutdown", String::new(), own()),
        // What the guest says it can do (Linux writes them as xenbus comes up), made
        // writable for it as libxl makes them.
        node("/control/feature-poweroff", String::new(), own()),
        node("/control/feature-reboot", String::new(), own()),
        node("/control/feature-suspend", String::new(), own()),
        node("/control/sysrq", String::new(), own()),
        node(
            "/control/platform-feature-xs_reset_watches",
            String::from("1"),
            read_only(),
        ),
        node("/data", String::new(), own()),
        node("/device", String::new(), read_only()),
    ]);
    nodes
}
