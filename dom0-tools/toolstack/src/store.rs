//! What the toolstack writes to the XenStore for a new domain, as libxl lays it out:
//! `/local/domain/N` and its `name` and `domid` readable by the domain but only
//! dom0's to change (`n0 rN`), `control/` likewise except `control/shutdown`, which
//! the domain owns (it acknowledges requests there), and `data/` the domain's own.

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

/// The nodes of a new domain `id` named `name`, parents before children.
pub fn domain_nodes(id: u16, name: &str) -> Vec<Node> {
    let home = domain_path(id);
    let read_only = || vec![String::from("n0"), format!("r{id}")];
    let own = || vec![format!("n{id}")];
    let node = |sub: &str, value: String, perms: Vec<String>| Node {
        path: format!("{home}{sub}"),
        value,
        perms,
    };
    vec![
        node("", String::new(), read_only()),
        node("/name", String::from(name), read_only()),
        node("/domid", format!("{id}"), read_only()),
        node("/control", String::new(), read_only()),
        node("/control/shutdown", String::new(), own()),
        node("/data", String::new(), own()),
        node("/device", String::new(), read_only()),
    ]
}
