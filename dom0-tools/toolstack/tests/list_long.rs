//! `xl list -l` prints JSON that a JSON parser reads back, in libxl's shape.

use oxen_core::config::DomainConfig;
use oxen_toolstack::json::{Described, list_long};

#[test]
fn a_built_domain_and_dom0_read_back() {
    let cfg = DomainConfig::parse(
        "name = \"web\"\nkernel = \"hello.elf\"\nmemory = 16\nmaxmem = 32\nvcpus = 2\n\
         cpu_weight = 512\ncap = 50\ncmdline = 'say \"hi\"'\n\
         on_crash = \"restart\"\non_reboot = \"destroy\"\n\
         disk = [ \"format=qcow2, vdev=xvda, access=ro, target=/var/lib/oxen/web.qcow2\" ]\n",
    )
    .unwrap();
    let text = list_long(&[
        Described {
            id: 0,
            name: "Domain-0",
            uuid: None,
            cfg: None,
            max_vcpus: 1,
            max_kib: 32768,
            target_kib: 32768,
        },
        Described {
            id: 3,
            name: "web",
            uuid: Some("01020304-0506-0708-090a-0b0c0d0e0f10"),
            cfg: Some(&cfg),
            max_vcpus: 2,
            max_kib: 32768,
            target_kib: 16384,
        },
    ]);
    assert!(
        text.starts_with("[\n    {\n        \"domid\": 0,\n"),
        "{text}"
    );
    assert!(text.ends_with("]\n"));
    let v: serde_json::Value = serde_json::from_str(&text).expect(&text);
    let dom0 = &v[0];
    assert_eq!(dom0["domid"], 0);
    assert_eq!(dom0["config"]["c_info"]["name"], "Domain-0");
    assert_eq!(dom0["config"]["b_info"]["max_memkb"], 32768);
    let web = &v[1]["config"];
    assert_eq!(v[1]["domid"], 3);
    assert_eq!(web["c_info"]["type"], "pvh");
    assert_eq!(
        web["c_info"]["uuid"],
        "01020304-0506-0708-090a-0b0c0d0e0f10"
    );
    let b = &web["b_info"];
    assert_eq!(b["max_vcpus"], 2);
    assert_eq!(b["avail_vcpus"], serde_json::json!([0, 1]));
    assert_eq!(
        (b["max_memkb"].clone(), b["target_memkb"].clone()),
        (32768.into(), 16384.into())
    );
    assert_eq!(b["sched_params"]["weight"], 512);
    assert_eq!(b["sched_params"]["cap"], 50);
    assert_eq!(b["kernel"], "hello.elf");
    assert_eq!(b["cmdline"], "say \"hi\"");
    assert_eq!(web["disks"][0]["pdev_path"], "/var/lib/oxen/web.qcow2");
    assert_eq!(web["disks"][0]["format"], "qcow2");
    assert_eq!(web["disks"][0]["readwrite"], 0);
    assert_eq!(web["on_poweroff"], "destroy");
    assert_eq!(web["on_reboot"], "destroy");
    assert_eq!(web["on_crash"], "restart");
}
