//! The domain builder against a fake hypervisor and a fake dom0: the steps `xl create`
//! takes for a configuration, what ends up in the domain's memory, and that a build
//! failing at any step leaves nothing behind.

use std::collections::BTreeMap;

use oxen_abi::domctl::{CreateDomain, cdf};
use oxen_abi::hvm_save::{self, HwCpu};
use oxen_toolstack::build::{self, Control, Files, Request, Services};
use oxen_toolstack::store::DomainFacts;

/// A kernel of our own making: one PT_LOAD of `code` at 1 MiB, a PT_NOTE with Xen's
/// PHYS32_ENTRY note naming `entry`.
fn kernel(code: &[u8], entry: u32) -> Vec<u8> {
    let (ehdr, phdr) = (64usize, 56usize);
    let note_at = ehdr + 2 * phdr;
    let mut note = Vec::new();
    for word in [4u32, 4, 18] {
        note.extend(word.to_le_bytes());
    }
    note.extend(b"Xen\0");
    note.extend(entry.to_le_bytes());
    let code_at = note_at + note.len();
    let mut b = vec![0u8; ehdr];
    b[..8].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    b[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    b[18..20].copy_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[24..32].copy_from_slice(&u64::from(entry).to_le_bytes());
    b[32..40].copy_from_slice(&(ehdr as u64).to_le_bytes());
    b[52..54].copy_from_slice(&(ehdr as u16).to_le_bytes());
    b[54..56].copy_from_slice(&(phdr as u16).to_le_bytes());
    b[56..58].copy_from_slice(&2u16.to_le_bytes());
    let ph = |ty: u32, flags: u32, off: usize, addr: u64, size: usize| {
        let mut p = Vec::new();
        p.extend(ty.to_le_bytes());
        p.extend(flags.to_le_bytes());
        for v in [off as u64, addr, addr, size as u64, size as u64, 0x1000] {
            p.extend(v.to_le_bytes());
        }
        p
    };
    b.extend(ph(1, 5, code_at, 0x10_0000, code.len()));
    b.extend(ph(4, 4, note_at, 0, note.len()));
    b.extend(note);
    b.extend(code);
    b
}

struct Disk(BTreeMap<String, Vec<u8>>);

impl Files for Disk {
    fn get(&self, path: &str) -> Option<&[u8]> {
        self.0.get(path).map(Vec::as_slice)
    }
}

fn disk(config: &str) -> Disk {
    let mut files = BTreeMap::new();
    files.insert("/etc/xen/t.cfg".to_string(), config.as_bytes().to_vec());
    files.insert(
        "/images/k.elf".to_string(),
        kernel(b"\xf4\xeb\xfd", 0x10_0000),
    );
    files.insert("/images/initrd".to_string(), b"RAMDISK!".to_vec());
    Disk(files)
}

const CONFIG: &str = "name = \"t\"\nkernel = \"k.elf\"\nmemory = 4\nvcpus = 2\n";

/// A step the builder took, as the fakes saw it.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Create {
        vcpus: u32,
        flags: u32,
        handle0: u32,
    },
    MaxMem(u64),
    Populate {
        first: u64,
        count: usize,
        order: u32,
    },
    Write {
        gpa: u64,
        len: usize,
    },
    Context,
    Credit(u16, u16),
    Affinity(u32, u64),
    Unpause,
    Destroy,
    Introduce {
        name: String,
        memory_kib: u64,
        vcpus: u32,
        store_gfn: u64,
    },
    Console(String),
    Release,
}

/// A hypervisor and a dom0 that record every step; `fail_at` makes the n-th step
/// (counted from 0, destroy and release excepted) fail.
#[derive(Default)]
struct Fake {
    steps: Vec<Step>,
    fail_at: Option<usize>,
    /// The domain's memory, frame by frame (only what was written).
    memory: BTreeMap<u64, u8>,
    populated: Vec<(u64, u32)>,
    context: Vec<u8>,
}

impl Fake {
    fn step(&mut self, step: Step) -> bool {
        let failed = self.fail_at == Some(self.steps.len());
        self.steps.push(step);
        !failed
    }

    /// Every gfn the domain has memory at.
    fn frames(&self) -> usize {
        self.populated
            .iter()
            .map(|(_, order)| 1usize << order)
            .sum()
    }
}

impl Control for Fake {
    fn create_domain(&mut self, c: &CreateDomain) -> Result<u16, i64> {
        let step = Step::Create {
            vcpus: c.max_vcpus,
            flags: c.flags,
            handle0: c.handle0,
        };
        if self.step(step) { Ok(7) } else { Err(-12) }
    }
    fn max_mem(&mut self, id: u16, kib: u64) -> Result<(), i64> {
        assert_eq!(id, 7);
        if self.step(Step::MaxMem(kib)) {
            Ok(())
        } else {
            Err(-22)
        }
    }
    fn populate(&mut self, id: u16, gfns: &[u64], order: u32) -> usize {
        assert_eq!(id, 7);
        let ok = self.step(Step::Populate {
            first: gfns[0],
            count: gfns.len(),
            order,
        });
        if !ok {
            return gfns.len() - 1;
        }
        self.populated.extend(gfns.iter().map(|&g| (g, order)));
        gfns.len()
    }
    fn write(&mut self, id: u16, gpa: u64, bytes: &[u8]) -> Result<(), String> {
        assert_eq!(id, 7);
        let inside = self.populated.iter().any(|&(g, order)| {
            let (start, end) = (g << 12, (g + (1 << order)) << 12);
            gpa >= start && gpa + bytes.len() as u64 <= end
        });
        assert!(inside, "a write at {gpa:#x} outside the domain's memory");
        if !self.step(Step::Write {
            gpa,
            len: bytes.len(),
        }) {
            return Err(format!("mapping its frames at {gpa:#x} failed (rc=-14)"));
        }
        for (i, b) in bytes.iter().enumerate() {
            self.memory.insert(gpa + i as u64, *b);
        }
        Ok(())
    }
    fn set_context(&mut self, _: u16, stream: &[u8]) -> Result<(), i64> {
        self.context = stream.to_vec();
        if self.step(Step::Context) {
            Ok(())
        } else {
            Err(-22)
        }
    }
    fn set_credit(&mut self, _: u16, weight: u16, cap: u16) -> Result<(), i64> {
        if self.step(Step::Credit(weight, cap)) {
            Ok(())
        } else {
            Err(-22)
        }
    }
    fn set_affinity(&mut self, _: u16, vcpu: u32, mask: u64) -> Result<(), i64> {
        if self.step(Step::Affinity(vcpu, mask)) {
            Ok(())
        } else {
            Err(-22)
        }
    }
    fn unpause(&mut self, _: u16) -> Result<(), i64> {
        if self.step(Step::Unpause) {
            Ok(())
        } else {
            Err(-22)
        }
    }
    fn destroy(&mut self, id: u16) {
        assert_eq!(id, 7);
        self.steps.push(Step::Destroy);
        self.populated.clear();
    }
}

/// The dom0 half lives in the same fake (one list of steps, in order).
struct Dom0<'a>(&'a std::cell::RefCell<Fake>);

impl Services for Dom0<'_> {
    fn introduce(&mut self, f: &DomainFacts<'_>, store_gfn: u64) -> Result<(), String> {
        let step = Step::Introduce {
            name: f.name.to_string(),
            memory_kib: f.memory_kib,
            vcpus: f.vcpus,
            store_gfn,
        };
        if self.0.borrow_mut().step(step) {
            Ok(())
        } else {
            Err("the store refused it".into())
        }
    }
    fn serve_console(&mut self, id: u16, name: &str) -> Result<(), String> {
        assert_eq!(id, 7);
        if self.0.borrow_mut().step(Step::Console(name.into())) {
            Ok(())
        } else {
            Err("its console could not be mapped".into())
        }
    }
    fn release(&mut self, _: u16) {
        self.0.borrow_mut().steps.push(Step::Release);
    }
}

/// The hypervisor half, borrowing the shared fake for each call.
struct Hv<'a>(&'a std::cell::RefCell<Fake>);

impl Control for Hv<'_> {
    fn create_domain(&mut self, c: &CreateDomain) -> Result<u16, i64> {
        self.0.borrow_mut().create_domain(c)
    }
    fn max_mem(&mut self, id: u16, kib: u64) -> Result<(), i64> {
        self.0.borrow_mut().max_mem(id, kib)
    }
    fn populate(&mut self, id: u16, gfns: &[u64], order: u32) -> usize {
        self.0.borrow_mut().populate(id, gfns, order)
    }
    fn write(&mut self, id: u16, gpa: u64, bytes: &[u8]) -> Result<(), String> {
        self.0.borrow_mut().write(id, gpa, bytes)
    }
    fn set_context(&mut self, id: u16, stream: &[u8]) -> Result<(), i64> {
        self.0.borrow_mut().set_context(id, stream)
    }
    fn set_credit(&mut self, id: u16, weight: u16, cap: u16) -> Result<(), i64> {
        self.0.borrow_mut().set_credit(id, weight, cap)
    }
    fn set_affinity(&mut self, id: u16, vcpu: u32, mask: u64) -> Result<(), i64> {
        self.0.borrow_mut().set_affinity(id, vcpu, mask)
    }
    fn unpause(&mut self, id: u16) -> Result<(), i64> {
        self.0.borrow_mut().unpause(id)
    }
    fn destroy(&mut self, id: u16) {
        self.0.borrow_mut().destroy(id)
    }
}

fn run(
    config: &str,
    overrides: &[&str],
    paused: bool,
    fail_at: Option<usize>,
) -> (Result<u16, String>, Fake) {
    let fake = std::cell::RefCell::new(Fake {
        fail_at,
        ..Fake::default()
    });
    let files = disk(config);
    let request = Request {
        path: "/etc/xen/t.cfg",
        overrides,
        paused,
        fallback_uuid: [0xab; 16],
    };
    let taken = |name: &str| name == "busy";
    let result = build::create(&request, &files, &taken, &mut Hv(&fake), &mut Dom0(&fake));
    (result.map(|b| b.id), fake.into_inner())
}

fn u32_at(memory: &BTreeMap<u64, u8>, gpa: u64) -> u32 {
    u32::from_le_bytes(core::array::from_fn(|i| memory[&(gpa + i as u64)]))
}

#[test]
fn a_configuration_becomes_these_steps_in_this_order() {
    let (result, fake) = run(CONFIG, &[], false, None);
    assert_eq!(result, Ok(7));
    let s = &fake.steps;
    assert_eq!(
        s[0],
        Step::Create {
            vcpus: 2,
            flags: cdf::HVM | cdf::HAP,
            handle0: 0xabab_abab
        }
    );
    // maxmem defaults to memory; the special pages come on top.
    assert_eq!(s[1], Step::MaxMem(4 * 1024 + 16 * 4));
    // 4 MiB: two 2 MiB extents and no single frames; then the store page above RAM.
    assert_eq!(
        s[2],
        Step::Populate {
            first: 0,
            count: 2,
            order: 9
        }
    );
    let store_gfn = oxen_core::pvh::store_gfn(0);
    assert_eq!(
        s[3],
        Step::Populate {
            first: store_gfn,
            count: 1,
            order: 0
        }
    );
    assert_eq!(
        s[4],
        Step::Introduce {
            name: "t".into(),
            memory_kib: 4096,
            vcpus: 2,
            store_gfn
        }
    );
    assert_eq!(s[5], Step::Console("t".into()));
    let writes: Vec<&Step> = s
        .iter()
        .filter(|x| matches!(x, Step::Write { .. }))
        .collect();
    assert!(
        writes.len() >= 3,
        "kernel, ACPI tables, start info: {writes:?}"
    );
    let after_writes = 6 + writes.len();
    assert_eq!(s[after_writes..], [Step::Context, Step::Unpause]);
    assert_eq!(fake.frames(), 1025);
}

#[test]
fn the_kernel_start_info_and_boot_registers_are_what_the_plan_says() {
    let (result, fake) = run(CONFIG, &["cmdline = \"console=hvc0\""], false, None);
    assert_eq!(result, Ok(7));
    // The kernel's bytes at its physical address.
    assert_eq!(
        [0x10_0000, 0x10_0001, 0x10_0002].map(|a| fake.memory[&a]),
        [0xf4, 0xeb, 0xfd]
    );
    // vCPU 0 starts at the PVH entry with EBX = hvm_start_info, which holds its magic.
    let cpu_at = 2 * hvm_save::Descriptor::SIZE + hvm_save::Header::SIZE;
    let cpu = HwCpu::from_bytes(&fake.context[cpu_at..][..hvm_save::CPU_SIZE]).unwrap();
    assert_eq!(cpu.rip, 0x10_0000);
    let start_info = cpu.gprs[1];
    assert_eq!(u32_at(&fake.memory, start_info), 0x336e_c578);
    // Its command line (cmdline_paddr at offset 24) is the configuration's.
    let cmdline = u64::from(u32_at(&fake.memory, start_info + 24));
    let text: Vec<u8> = (0..)
        .map(|i| fake.memory[&(cmdline + i)])
        .take_while(|&b| b != 0)
        .collect();
    assert_eq!(text, b"console=hvc0");
}

#[test]
fn overrides_weights_affinity_and_pause_are_applied() {
    let (result, fake) = run(
        CONFIG,
        &["cpu_weight = 512", "cap = 50", "cpus = \"1\"", "memory = 5"],
        true,
        None,
    );
    assert_eq!(result, Ok(7));
    let s = &fake.steps;
    assert!(s.contains(&Step::Credit(512, 50)));
    assert!(s.contains(&Step::Affinity(0, 0b10)));
    assert!(s.contains(&Step::Affinity(1, 0b10)));
    assert!(!s.contains(&Step::Unpause), "-p leaves it paused");
    // 5 MiB: two 2 MiB extents and 256 single frames.
    assert!(s.contains(&Step::Populate {
        first: 1024,
        count: 256,
        order: 0
    }));
    assert_eq!(s[1], Step::MaxMem(5 * 1024 + 64));
}

#[test]
fn a_build_failing_at_any_step_destroys_the_domain_and_releases_it() {
    let (_, whole) = run(CONFIG, &[], false, None);
    let steps = whole.steps.len();
    for fail_at in 0..steps {
        let (result, fake) = run(CONFIG, &[], false, Some(fail_at));
        let error = result.expect_err("the build fails");
        assert!(error.starts_with("xl create: "), "{error}");
        let s = &fake.steps;
        assert_eq!(
            s.len(),
            fail_at + 1 + if fail_at == 0 { 0 } else { 2 },
            "{s:?}"
        );
        if fail_at == 0 {
            // createdomain itself failed: nothing to undo.
            assert_eq!(error, "xl create: createdomain failed (rc=-12)");
            continue;
        }
        assert!(error.ends_with("(the domain was destroyed)"), "{error}");
        assert_eq!(s[s.len() - 2..], [Step::Release, Step::Destroy], "{s:?}");
        assert_eq!(fake.frames(), 0, "memory given back");
        assert!(!s.contains(&Step::Unpause) || fail_at == steps - 1);
    }
}

#[test]
fn bad_requests_fail_before_a_domain_exists() {
    let cases: [(&str, &[&str], &str); 6] = [
        (CONFIG, &["memory = lots"], "xl create: /etc/xen/t.cfg: "),
        (
            CONFIG,
            &["name = \"busy\""],
            "xl create: domain 'busy' already exists",
        ),
        (
            CONFIG,
            &["kernel = \"gone.elf\""],
            "xl create: kernel gone.elf is not in /images",
        ),
        (
            CONFIG,
            &["ramdisk = \"gone\""],
            "xl create: ramdisk gone is not in /images",
        ),
        (
            CONFIG,
            &["kernel = \"initrd\""],
            "xl create: kernel initrd: BadMagic",
        ),
        (CONFIG, &["maxvcpus = 1"], "xl create: /etc/xen/t.cfg: "),
    ];
    for (config, overrides, expected) in cases {
        let (result, fake) = run(config, overrides, false, None);
        let error = result.expect_err(expected);
        assert!(error.starts_with(expected), "{error} (expected {expected})");
        assert!(fake.steps.is_empty(), "{expected}: {:?}", fake.steps);
    }
    let fake = std::cell::RefCell::new(Fake::default());
    let request = Request {
        path: "/etc/xen/none.cfg",
        overrides: &[],
        paused: false,
        fallback_uuid: [0; 16],
    };
    let error = build::create(
        &request,
        &disk(CONFIG),
        &|_| false,
        &mut Hv(&fake),
        &mut Dom0(&fake),
    )
    .map(|b| b.id)
    .unwrap_err();
    assert_eq!(
        error,
        "xl create: /etc/xen/none.cfg: no such configuration file"
    );
}

#[test]
fn a_configured_uuid_is_the_handle() {
    let (result, fake) = run(
        CONFIG,
        &["uuid = \"01020304-0506-0708-090a-0b0c0d0e0f10\""],
        false,
        None,
    );
    assert_eq!(result, Ok(7));
    match &fake.steps[0] {
        Step::Create { handle0, .. } => assert_eq!(*handle0, 0x0403_0201),
        other => panic!("{other:?}"),
    }
}

#[test]
fn maxvcpus_above_vcpus_makes_room_for_hot_plug() {
    let (result, fake) = run(CONFIG, &["maxvcpus = 4", "cpus = \"0\""], false, None);
    assert_eq!(result, Ok(7));
    let s = &fake.steps;
    match &s[0] {
        Step::Create { vcpus, .. } => assert_eq!(*vcpus, 4, "createdomain makes room for 4"),
        other => panic!("{other:?}"),
    }
    // Two online in the store (and in the MADT), affinity for all four.
    assert!(
        s.iter()
            .any(|x| matches!(x, Step::Introduce { vcpus: 2, .. }))
    );
    for v in 0..4 {
        assert!(s.contains(&Step::Affinity(v, 1)), "vCPU {v}");
    }
    // The MADT: four local APICs, two of them enabled.
    let acpi = oxen_core::pvh::ACPI_GPA;
    let madt = (acpi..acpi + 0x1000)
        .find(|&a| (0..4u64).all(|i| fake.memory.get(&(a + i)) == Some(&b"APIC"[i as usize])))
        .expect("a MADT");
    let entries: Vec<(u8, u32)> = (0..4)
        .map(|i| {
            let e = madt + 44 + 8 * i;
            (fake.memory[&(e + 3)], u32_at(&fake.memory, e + 4))
        })
        .collect();
    assert_eq!(entries, [(0, 1), (1, 1), (2, 0), (3, 0)]);
}
