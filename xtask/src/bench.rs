//! `cargo xtask bench`: boot cost, image size and the hypervisor's own memory.
//!
//! Inside Bochs (`clock: sync=none`) the TSC advances once per emulated instruction, so
//! the TSC that oxen prints on its ready line counts instructions: deterministic, and a
//! fair measure of path length. QEMU gives wall-clock time.

use std::fmt::Write as _;
use std::time::Duration;

use regex::Regex;

use crate::build::Firmware;
use crate::platform::Platform;
use crate::scenario::{self, ArchiveKind, Builds, POWEROFF, Scenario};
use crate::{Args, Result, out_dir};

fn boot_scenario(platform: Platform, cpus: u32) -> Scenario {
    Scenario {
        name: if platform == Platform::Bochs {
            "bench-bochs"
        } else {
            "bench-qemu"
        },
        what: "benchmark boot",
        platform,
        firmware: Firmware::Uefi,
        cpus,
        memory_mib: 512,
        qemu_cpu: "qemu64",
        features: &[],
        archive: ArchiveKind::Config(POWEROFF),
        guests: false,
        expect: &[r"oxen ready: ", r"power: powering off"],
        forbid: &["PANIC", "EXCEPTION"],
        timeout: Duration::from_secs(300),
    }
}

fn capture(serial: &str, pattern: &str) -> Result<u64> {
    let re = Regex::new(pattern).expect("valid pattern");
    re.captures(serial)
        .and_then(|c| c[1].parse().ok())
        .ok_or_else(|| format!("no match for /{pattern}/ in the serial log"))
}

/// Bytes of the ELF's loadable segments (what occupies memory), and of the file.
fn image_sizes(path: &std::path::Path) -> Result<(u64, u64)> {
    let elf = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().expect("8 bytes"));
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        return Err(format!("{} is not an ELF file", path.display()));
    }
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    let loaded = (0..phnum)
        .map(|i| phoff + i * phentsize)
        .filter(|&ph| u32::from_le_bytes(elf[ph..ph + 4].try_into().expect("4 bytes")) == 1)
        .map(|ph| u64_at(ph + 0x28))
        .sum();
    Ok((loaded, elf.len() as u64))
}

pub fn cmd_bench(args: &[String]) -> Result<()> {
    let args = Args::new(args);
    args.finish()?;
    let builds = Builds::default();

    let bochs = scenario::run_one(&boot_scenario(Platform::Bochs, 2), &builds);
    if !bochs.passed {
        return Err(format!(
            "the Bochs boot failed: {}\n{}",
            bochs.reason, bochs.serial
        ));
    }
    let bochs_total = capture(&bochs.serial, r"boot tsc (\d+) ")?;
    let bochs_oxen = capture(&bochs.serial, r"boot tsc \d+ \((\d+) in oxen\)")?;
    let memory = capture(&bochs.serial, r"memory: oxen uses .* = (\d+) bytes")?;

    let qemu = scenario::run_one(&boot_scenario(Platform::Qemu, 2), &builds);
    if !qemu.passed {
        return Err(format!(
            "the QEMU boot failed: {}\n{}",
            qemu.reason, qemu.serial
        ));
    }
    let qemu_ready = Regex::new(r"\[\s*(\d+)\.(\d+)\] cpu0 INFO  oxen ready").expect("valid");
    let caps = qemu_ready
        .captures(&qemu.serial)
        .ok_or("no ready line in the QEMU log")?;
    let qemu_oxen_s: f64 = format!("{}.{}", &caps[1], &caps[2])
        .parse()
        .map_err(|_| "bad timestamp")?;

    let (loaded, file) = image_sizes(&out_dir().join("oxen.elf"))?;

    let exit_path = scenario::run_one(
        &Scenario {
            name: "bench-exit-path",
            cpus: 1,
            guests: true,
            archive: ArchiveKind::Config("domains = [\"bench.cfg\"]\n"),
            expect: &[r"\[d1 bench\] bench: PASS", r"power: powering off"],
            ..boot_scenario(Platform::Bochs, 1)
        },
        &builds,
    );
    if !exit_path.passed {
        return Err(format!(
            "the exit-path benchmark failed: {}\n{}",
            exit_path.reason, exit_path.serial
        ));
    }
    let hypercall = capture(
        &exit_path.serial,
        r"null hypercall \(xen_version\) (\d+) ticks per round trip",
    )?;
    let cpuid = capture(&exit_path.serial, r"CPUID exit (\d+) ticks per round trip")?;

    let results = [
        (
            "bochs_boot_instructions_total",
            bochs_total.to_string(),
            "instructions from reset to the ready line (Bochs, UEFI, 2 CPUs)",
        ),
        (
            "bochs_boot_instructions_oxen",
            bochs_oxen.to_string(),
            "instructions from oxen's entry to the ready line (Bochs)",
        ),
        (
            "qemu_boot_wall_seconds",
            format!("{:.2}", qemu.elapsed.as_secs_f64()),
            "wall time from QEMU start to power-off after ready (TCG, UEFI, 2 CPUs)",
        ),
        (
            "qemu_oxen_boot_seconds",
            format!("{qemu_oxen_s:.3}"),
            "oxen's own boot time in QEMU, by its TSC clock",
        ),
        (
            "null_hypercall_instructions",
            hypercall.to_string(),
            "xen_version(XENVER_version) round trip from a guest, average of 10,000 (Bochs)",
        ),
        (
            "cpuid_exit_instructions",
            cpuid.to_string(),
            "CPUID exit round trip from a guest, average of 10,000 (Bochs)",
        ),
        (
            "image_loaded_bytes",
            loaded.to_string(),
            "hypervisor ELF loadable segments",
        ),
        (
            "image_file_bytes",
            file.to_string(),
            "hypervisor ELF file, with debug info",
        ),
        (
            "hypervisor_memory_bytes",
            memory.to_string(),
            "memory oxen itself uses after boot (image + frames it took)",
        ),
    ];
    let dir = out_dir().join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut json = String::from("{\n");
    for (i, (key, value, _)) in results.iter().enumerate() {
        let sep = if i + 1 < results.len() { "," } else { "" };
        let _ = writeln!(json, "  \"{key}\": {value}{sep}");
    }
    json.push_str("}\n");
    let path = dir.join("results.json");
    std::fs::write(&path, json).map_err(|e| e.to_string())?;

    println!("{:<32} {:>14}  what", "benchmark", "value");
    for (key, value, what) in &results {
        println!("{key:<32} {value:>14}  {what}");
    }
    println!("results written to {}", path.display());
    Ok(())
}
