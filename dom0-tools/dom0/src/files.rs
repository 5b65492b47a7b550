//! The control domain's files: the boot archive the hypervisor handed it as its module,
//! seen as a read-only tree: `/etc/xen/NAME.cfg` for configuration files, `/boot.cfg`
//! for the boot configuration, `/images/NAME` for everything else, and
//! `/etc/xen/auto/NAME.cfg` for the configurations `boot.cfg` lists in `autostart`.

use alloc::string::String;
use alloc::vec::Vec;

use oxen_core::archive::{Archive, CONFIG_NAME};
use oxen_guest_rt::StartInfo;

/// Below this the runtime maps guest memory one to one.
const IDENTITY_LIMIT: u64 = 1 << 30;

pub struct Files {
    entries: Vec<(String, &'static [u8])>,
}

impl Files {
    /// The archive in the first module, if there is one and it is sound.
    pub fn from_start_info(info: &StartInfo) -> Self {
        let mut entries = Vec::new();
        if let Some((paddr, size)) = info.modules().next()
            && paddr
                .checked_add(size)
                .is_some_and(|end| end <= IDENTITY_LIMIT)
        {
            // SAFETY: the module lies in identity-mapped guest RAM (checked above) that
            // the hypervisor filled before the kernel started and nothing writes later.
            let bytes = unsafe { core::slice::from_raw_parts(paddr as *const u8, size as usize) };
            if let Ok(a) = Archive::parse(bytes) {
                entries = a.entries().map(|e| (path_of(e.name), e.data)).collect();
            }
        }
        Files { entries }
    }

    /// Puts the configuration files `names` (of `/etc/xen`) into `/etc/xen/auto`, in
    /// order; returns the paths of those that exist and the names of those that do not.
    pub fn add_auto(&mut self, names: &[String]) -> (Vec<String>, Vec<String>) {
        let (mut paths, mut missing) = (Vec::new(), Vec::new());
        for n in names {
            match self.get(&alloc::format!("/etc/xen/{n}")) {
                Some(d) if !n.contains('/') => {
                    let p = alloc::format!("/etc/xen/auto/{n}");
                    self.entries.push((p.clone(), d));
                    paths.push(p);
                }
                _ => missing.push(n.clone()),
            }
        }
        (paths, missing)
    }

    /// The archive's files (not counting their `/etc/xen/auto` names).
    pub fn len(&self) -> usize {
        self.entries
            .iter()
            .filter(|(p, _)| !p.starts_with("/etc/xen/auto/"))
            .count()
    }

    /// The contents of the file at `path`.
    pub fn get(&self, path: &str) -> Option<&'static [u8]> {
        self.entries
            .iter()
            .find(|(p, _)| p == path)
            .map(|&(_, d)| d)
    }

    /// The files directly in directory `dir` (`/etc/xen`, `/images`, `/`): (name,
    /// size), and the subdirectories of `/`.
    pub fn list(&self, dir: &str) -> Option<Vec<(String, Option<usize>)>> {
        let dir = dir.trim_end_matches('/');
        let mut out: Vec<(String, Option<usize>)> = Vec::new();
        if dir.is_empty() {
            out.push((String::from("etc"), None));
            out.push((String::from("images"), None));
        } else if dir == "/etc" {
            out.push((String::from("xen"), None));
        } else if dir == "/etc/xen"
            && self
                .entries
                .iter()
                .any(|(p, _)| p.starts_with("/etc/xen/auto/"))
        {
            out.push((String::from("auto"), None));
        }
        for (p, d) in &self.entries {
            if let Some(name) = p.strip_prefix(dir).and_then(|r| r.strip_prefix('/'))
                && !name.contains('/')
            {
                out.push((String::from(name), Some(d.len())));
            }
        }
        (!out.is_empty() || dir == "/etc/xen" || dir == "/images").then_some(out)
    }
}

/// Where an archive entry appears in the tree.
fn path_of(name: &str) -> String {
    if name == CONFIG_NAME {
        alloc::format!("/{name}")
    } else if name.ends_with(".cfg") {
        alloc::format!("/etc/xen/{name}")
    } else {
        alloc::format!("/images/{name}")
    }
}
