//! `xl list -l`: each domain's configuration as JSON, in the shape of libxl's
//! `libxl_domain_config` (`c_info`, `b_info`, `disks`, `on_*`), indented by four
//! spaces as xl prints it.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use oxen_core::config::DomainConfig;

/// A JSON value, just what `xl list -l` needs.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(u64),
    Array(Vec<Value>),
    /// Keys in the order given.
    Object(Vec<(&'static str, Value)>),
}

impl Value {
    fn str(s: &str) -> Value {
        Value::Str(String::from(s))
    }

    /// The value as JSON text, nested objects indented by `indent` levels.
    pub fn write(&self, out: &mut String, indent: usize) {
        let pad = |out: &mut String, n: usize| out.extend(core::iter::repeat_n(' ', 4 * n));
        match self {
            Value::Str(s) => escape(out, s),
            Value::Int(n) => out.push_str(&format!("{n}")),
            Value::Array(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    pad(out, indent + 1);
                    item.write(out, indent + 1);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push(']');
            }
            Value::Object(fields) => {
                out.push_str("{\n");
                for (i, (key, value)) in fields.iter().enumerate() {
                    pad(out, indent + 1);
                    escape(out, key);
                    out.push_str(": ");
                    value.write(out, indent + 1);
                    out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
                }
                pad(out, indent);
                out.push('}');
            }
        }
    }
}

/// `s` as a JSON string.
fn escape(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// What `xl list -l` knows of one domain: its configuration if this toolstack built it
/// (or adopted it from one), else what the hypervisor says.
pub struct Described<'a> {
    pub id: u16,
    pub name: &'a str,
    /// Xen's 8-4-4-4-12 form, if known.
    pub uuid: Option<&'a str>,
    /// Its configuration, if known (memory then comes from it, as libxl's does).
    pub cfg: Option<&'a DomainConfig>,
    pub max_vcpus: u32,
    pub max_kib: u64,
    pub target_kib: u64,
}

/// libxl writes enumerations in lower case with underscores.
fn action(a: oxen_core::config::Action) -> Value {
    Value::Str(a.name().replace('-', "_"))
}

fn describe(d: &Described<'_>) -> Value {
    let mut c_info = vec![("type", Value::str("pvh")), ("name", Value::str(d.name))];
    if let Some(u) = d.uuid {
        c_info.push(("uuid", Value::str(u)));
    }
    // What the configuration asked for, as libxl keeps it; else what the domain has.
    let vcpus = d.cfg.map_or(d.max_vcpus, |c| c.vcpus);
    let (max_kib, target_kib) = d.cfg.map_or((d.max_kib, d.target_kib), |c| {
        (c.maxmem_mib * 1024, c.memory_mib * 1024)
    });
    let mut b_info = vec![
        ("max_vcpus", Value::Int(u64::from(d.max_vcpus))),
        (
            "avail_vcpus",
            Value::Array((0..u64::from(vcpus)).map(Value::Int).collect()),
        ),
        ("max_memkb", Value::Int(max_kib)),
        ("target_memkb", Value::Int(target_kib)),
    ];
    let mut config = Vec::new();
    if let Some(c) = d.cfg {
        b_info.push((
            "sched_params",
            Value::Object(vec![
                ("sched", Value::str("credit")),
                ("weight", Value::Int(u64::from(c.weight))),
                ("cap", Value::Int(u64::from(c.cap))),
            ]),
        ));
        b_info.push(("kernel", Value::str(&c.kernel)));
        if !c.cmdline.is_empty() {
            b_info.push(("cmdline", Value::str(&c.cmdline)));
        }
        if let Some(r) = &c.ramdisk {
            b_info.push(("ramdisk", Value::str(r)));
        }
        b_info.push(("type.pvh", Value::Object(Vec::new())));
        config.push(("c_info", Value::Object(c_info)));
        config.push(("b_info", Value::Object(b_info)));
        if !c.disks.is_empty() {
            let disks = c
                .disks
                .iter()
                .map(|k| {
                    Value::Object(vec![
                        ("backend_domid", Value::Int(0)),
                        ("pdev_path", Value::str(&k.target)),
                        ("vdev", Value::str(&k.vdev)),
                        ("format", Value::str(k.format.name())),
                        ("readwrite", Value::Int(u64::from(!k.read_only))),
                        ("is_cdrom", Value::Int(u64::from(k.cdrom))),
                    ])
                })
                .collect();
            config.push(("disks", Value::Array(disks)));
        }
        config.push(("on_poweroff", action(c.on_poweroff)));
        config.push(("on_reboot", action(c.on_reboot)));
        config.push(("on_watchdog", action(c.on_watchdog)));
        config.push(("on_crash", action(c.on_crash)));
    } else {
        config.push(("c_info", Value::Object(c_info)));
        config.push(("b_info", Value::Object(b_info)));
    }
    Value::Object(vec![
        ("domid", Value::Int(u64::from(d.id))),
        ("config", Value::Object(config)),
    ])
}

/// `xl list -l`: the JSON array of the domains, ending in a newline.
pub fn list_long(domains: &[Described<'_>]) -> String {
    let mut out = String::new();
    Value::Array(domains.iter().map(describe).collect()).write(&mut out, 0);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        escape(&mut out, "a\"b\\c\nd\u{1}");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn an_empty_list_is_an_empty_array() {
        assert_eq!(list_long(&[]), "[\n]\n");
    }
}
