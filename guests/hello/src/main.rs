//! `hello`: checks that oxen looks like Xen from the inside (CPUID hypervisor leaves,
//! `xen_version`), prints the command line and powers off (with `crash=1` it crashes
//! instead: `SCHEDOP_shutdown` with `SHUTDOWN_crash`, for the toolstack's `on_crash`).
#![no_std]
#![no_main]

use oxen_guest_rt::abi::{cpuid, xen_version as xv};
use oxen_guest_rt::hypercall::xen_version;
use oxen_guest_rt::{StartInfo, arch, println};

oxen_guest_rt::entry!(main);

fn main(info: &StartInfo) {
    println!(
        "hello: started, start_info at {:#x}, first hypercall at tsc {}",
        info.paddr(),
        oxen_guest_rt::first_hypercall_tsc()
    );
    for (i, (addr, len)) in info.modules().enumerate() {
        // SAFETY: the hypervisor put the module in our RAM below 1 GiB (identity-mapped)
        // and nothing else writes it.
        let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) };
        let first = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let first = core::str::from_utf8(first).unwrap_or("(not text)");
        println!("hello: module {i} at {addr:#x}, {len} bytes: \"{first}\"");
    }

    let base = arch::cpuid(cpuid::BASE, 0);
    let sig = [base.ebx, base.ecx, base.edx];
    assert_eq!(
        sig,
        cpuid::SIGNATURE,
        "hello: CPUID {:#x} signature",
        cpuid::BASE
    );
    assert!(
        base.eax >= cpuid::BASE + 2,
        "hello: max hypervisor leaf {:#x}",
        base.eax
    );
    println!(
        "hello: CPUID {:#x}: \"XenVMMXenVMM\", max leaf {:#x}",
        cpuid::BASE,
        base.eax
    );

    let leaf2 = arch::cpuid(cpuid::BASE + 2, 0);
    assert_eq!(leaf2.ebx, cpuid::HYPERCALL_MSR, "hello: hypercall MSR");
    println!(
        "hello: CPUID {:#x}: {} hypercall page(s), MSR {:#x}",
        cpuid::BASE + 2,
        leaf2.eax,
        leaf2.ebx
    );
    assert!(
        oxen_guest_rt::hypercall::page_ready(),
        "hello: hypercall page not filled"
    );

    // SAFETY: XENVER_version takes no argument.
    let v = unsafe { xen_version(xv::VERSION, 0) };
    assert!(v >= 0, "hello: XENVER_version returned {v}");
    let (major, minor) = (v >> 16, v & 0xffff);
    assert!(major >= 4, "hello: Xen version {major}.{minor} < 4");

    let mut extra = [0u8; xv::EXTRAVERSION_LEN];
    // SAFETY: XENVER_extraversion writes a 16-byte xen_extraversion_t.
    let rc = unsafe { xen_version(xv::EXTRAVERSION, extra.as_mut_ptr() as u64) };
    assert!(rc >= 0, "hello: XENVER_extraversion returned {rc}");
    let len = extra.iter().position(|&b| b == 0).unwrap_or(extra.len());
    let extra = core::str::from_utf8(&extra[..len]).unwrap_or("<not utf-8>");
    println!("hello: Xen version {major}.{minor}{extra}");

    // struct xen_feature_info { unsigned int submap_idx; uint32_t submap; }
    let mut fi = [0u32, 0xdead_beef];
    // SAFETY: XENVER_get_features reads submap_idx and writes submap in `fi`.
    let rc = unsafe { xen_version(xv::GET_FEATURES, fi.as_mut_ptr() as u64) };
    assert!(rc >= 0, "hello: XENVER_get_features returned {rc}");
    assert_ne!(
        fi[1], 0xdead_beef,
        "hello: XENVER_get_features did not write submap"
    );
    println!("hello: features submap 0 = {:#010x}", fi[1]);
    // What a PVH Linux needs to install Xen's timer and event delivery:
    // auto_translated_physmap (2), hvm_callback_vector (8), hvm_safe_pvclock (9).
    for bit in [2, 8, 9] {
        assert_ne!(
            fi[1] & (1 << bit),
            0,
            "hello: FAIL XENFEAT bit {bit} not reported"
        );
    }
    // dom0 (11) is not for a domain like this one.
    assert_eq!(fi[1] & (1 << 11), 0, "hello: FAIL XENFEAT_dom0 reported");

    println!("hello: command line: \"{}\"", info.cmdline());
    println!(
        "hello: {} MiB RAM, {} memmap entries",
        info.ram_bytes() >> 20,
        info.memmap().count()
    );
    println!("hello: PASS Xen {major}.{minor}{extra}");
    if info.cmdline_arg("crash") == Some("1") {
        println!("hello: crashing on purpose");
        oxen_guest_rt::shutdown(oxen_guest_rt::abi::sched_op::SHUTDOWN_CRASH);
    }
    if let Some(n) = info.cmdline_arg("echo").and_then(|v| v.parse::<u32>().ok()) {
        echo(n);
    }
    if let Some(n) = info
        .cmdline_arg("conread")
        .and_then(|v| v.parse::<u32>().ok())
    {
        conread(n);
    }
}

/// As Xen's dom0 reads the serial console: binds `VIRQ_CONSOLE`, then reads `n` lines
/// with `console_io(CONSOLEIO_read)` as the VIRQ says input came, and says each back.
fn conread(n: u32) {
    use oxen_guest_rt::abi::evtchn::virq;
    use oxen_guest_rt::{events, hypercall, time, vcpu, xen};
    if let Err(e) = events::map_shared_info() {
        panic!("hello: FAIL conread: {e:?}");
    }
    let port = match xen::bind_virq(virq::CONSOLE, 0) {
        Ok(p) => p,
        Err(e) => panic!("hello: FAIL conread: bind VIRQ_CONSOLE: {e}"),
    };
    println!("hello: conread: VIRQ_CONSOLE on port {port}; waiting for {n} line(s)");
    let mut lines = Lines::default();
    let mut virqs = 0;
    while lines.done < n {
        if events::pending(port) {
            events::clear(port);
            virqs += 1;
        }
        let mut buf = [0u8; 64];
        let k = hypercall::console_read(&mut buf);
        if k < 0 {
            panic!("hello: FAIL conread: console_io(read) = {k}");
        }
        lines.feed(&buf[..k as usize], |text| {
            println!("hello: console_io read '{text}' ({virqs} VIRQ_CONSOLE so far)")
        });
        if k == 0 {
            vcpu::sleep_until(0, time::now_ns() + 2_000_000);
        }
    }
    if virqs == 0 {
        panic!("hello: FAIL conread: input came without VIRQ_CONSOLE");
    }
}

/// Typed bytes gathered into lines (up to 128 bytes each; the rest of a longer line is
/// dropped), and how many have ended.
struct Lines {
    line: [u8; 128],
    len: usize,
    done: u32,
}

impl Default for Lines {
    fn default() -> Self {
        Lines {
            line: [0; 128],
            len: 0,
            done: 0,
        }
    }
}

impl Lines {
    /// Adds `bytes`; each line they end goes to `said`.
    fn feed(&mut self, bytes: &[u8], mut said: impl FnMut(&str)) {
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                said(core::str::from_utf8(&self.line[..self.len]).unwrap_or("(not text)"));
                self.len = 0;
                self.done += 1;
            } else if self.len < self.line.len() {
                self.line[self.len] = b;
                self.len += 1;
            }
        }
    }
}

/// Reads `n` lines typed on the console and says each back.
fn echo(n: u32) {
    use oxen_guest_rt::{time, vcpu, xencons};
    println!("hello: echo: waiting for {n} line(s) of input");
    let mut lines = Lines::default();
    while lines.done < n {
        let mut buf = [0u8; 64];
        let Some(k) = xencons::read(&mut buf) else {
            panic!("hello: FAIL echo: no console input");
        };
        lines.feed(&buf[..k], |text| println!("hello: got '{text}'"));
        if k == 0 {
            vcpu::sleep_until(0, time::now_ns() + 2_000_000);
        }
    }
}
