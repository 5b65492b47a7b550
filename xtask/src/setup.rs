//! `cargo xtask setup`: Debian packages and Bochs with VT-x.
//!
//! The Rust toolchain itself is installed by `./x.sh` (rustup reads
//! `rust-toolchain.toml`) before cargo can run this.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Args, Result, root};

/// Debian packages the build, the emulators and the tests need.
pub const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "ovmf",
    "bochsbios",
    "vgabios",
    "xorriso",
    "mtools",
    "libxen-dev",
    "xenstore-utils",
    "python3-pyxs",
    "build-essential",
    "xz-utils",
    // The first real guest: Debian's own kernel and a static busybox for its ramdisk.
    "linux-image-amd64",
    "busybox-static",
];

/// Bumped whenever the Bochs configure flags change, so a cached build is redone.
const BOCHS_STAMP: &str =
    "bochs-3.0 vmx=2 smp x86-64 avx evex configurable-msrs nogui v2 smp-trace-commits-rip";

/// Our fix to Bochs 3.0's SMP loop, applied to the source before it is built (see
/// docs/testing.md, "Bochs's SMP RIP bug"). With more than one CPU, Bochs runs each
/// CPU one trace at a time through `cpu_run_trace`, and an exception or VM exit leaves
/// a trace by longjmp. The single-CPU loop then commits RIP as the start of the next
/// instruction (`prev_rip`, which faults and fault-like VM exits roll RIP back to); the
/// SMP loop does not. So when a guest's exception has just been delivered and an
/// external interrupt is pending, the VM exit that the interrupt causes before the
/// handler's first instruction reports the faulting instruction as the guest's RIP,
/// with the exception frame already pushed: the guest takes the exception a second
/// time on a stack one frame deeper and returns into garbage. Real CPUs do not do this.
/// The fix commits RIP (and drops a speculative RSP) at the start of every trace, as
/// `cpu_loop` does after its setjmp.
const BOCHS_PATCHES: &[BochsPatch] = &[BochsPatch {
    file: "cpu/cpu.cc",
    anchor: "void BX_CPU_C::cpu_run_trace(void)\n{\n",
    insert: "  // oxen: a trace starts at an instruction boundary; commit it (as cpu_loop does\n  \
             // after its setjmp) so an event taken before the first instruction sees it.\n  \
             BX_CPU_THIS_PTR prev_rip = RIP;\n  \
             BX_CPU_THIS_PTR speculative_rsp = false;\n",
}];

/// Text inserted into a Bochs source file right after an anchor that must occur once.
struct BochsPatch {
    file: &'static str,
    anchor: &'static str,
    insert: &'static str,
}

fn patch_bochs(src: &Path) -> Result<()> {
    for p in BOCHS_PATCHES {
        let path = src.join(p.file);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut at = text.match_indices(p.anchor).map(|(i, _)| i);
        let (Some(i), None) = (at.next(), at.next()) else {
            return Err(format!(
                "patching Bochs: {} does not contain {:?} exactly once (another Bochs version?)",
                p.file, p.anchor
            ));
        };
        let end = i + p.anchor.len();
        let patched = format!("{}{}{}", &text[..end], p.insert, &text[end..]);
        std::fs::write(&path, patched).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

const BOCHS_CONFIGURE: &[&str] = &[
    "--enable-x86-64",
    "--enable-vmx=2",
    "--enable-svm",
    "--enable-smp",
    "--enable-cpu-level=6",
    "--enable-all-optimizations",
    "--enable-avx",
    "--enable-evex",
    "--enable-pci",
    "--enable-a20-pin",
    "--enable-fast-function-calls",
    "--enable-repeat-speedups",
    "--enable-handlers-chaining",
    "--enable-trace-linking",
    "--enable-configurable-msrs",
    "--disable-docbook",
    "--with-nogui",
    "--without-x11",
    "--without-sdl2",
];

/// The cache for things built once per machine.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".cache")
        });
    base.join("oxen")
}

fn bochs_prefix() -> PathBuf {
    cache_dir().join("bochs-3.0-vmx")
}

/// The Bochs binary to use: `OXEN_BOCHS`, or the cached build if it is current.
pub fn bochs_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OXEN_BOCHS") {
        return Some(PathBuf::from(p));
    }
    let prefix = bochs_prefix();
    let stamp = std::fs::read_to_string(prefix.join("STAMP")).unwrap_or_default();
    let bin = prefix.join("bin/bochs");
    (stamp.trim() == BOCHS_STAMP && bin.exists()).then_some(bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

fn missing_packages() -> Vec<&'static str> {
    PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", p]).output();
            !matches!(out, Ok(o) if String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        })
        .collect()
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// On a busy machine (unattended upgrades, another install) apt waits up to 20 minutes
/// for the dpkg and list locks instead of failing at once.
const DPKG_LOCK_WAIT: &str = "DPkg::Lock::Timeout=1200";

fn install_packages() -> Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        println!("setup: Debian packages present");
        return Ok(());
    }
    println!("setup: installing Debian packages: {}", missing.join(" "));
    if !is_root() {
        return Err(format!(
            "missing Debian packages; run: sudo apt-get update && sudo apt-get install -y {}",
            missing.join(" ")
        ));
    }
    run_checked(
        Command::new("apt-get").args(["-o", DPKG_LOCK_WAIT, "update", "-qq"]),
        "apt-get update",
    )?;
    run_checked(
        Command::new("apt-get")
            .args([
                "-o",
                DPKG_LOCK_WAIT,
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
            ])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "apt-get install",
    )?;
    let still = missing_packages();
    if !still.is_empty() {
        return Err(format!(
            "these packages could not be installed: {}",
            still.join(" ")
        ));
    }
    Ok(())
}

fn bochs_tarball() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("OXEN_BOCHS_TARBALL") {
        return Ok(PathBuf::from(p));
    }
    let vendored = root().join("../shared/vendor/bochs_3.0+dfsg.orig.tar.xz");
    if vendored.exists() {
        return Ok(vendored);
    }
    Err(format!(
        "no Bochs source: expected {} or OXEN_BOCHS_TARBALL=path to a Bochs 3.0 source tarball \
         (or OXEN_BOCHS=path to a Bochs built with --enable-vmx=2)",
        vendored.display()
    ))
}

fn build_bochs() -> Result<()> {
    if let Some(bin) = bochs_binary() {
        println!("setup: Bochs with VT-x at {}", bin.display());
        return Ok(());
    }
    let tarball = bochs_tarball()?;
    let build = cache_dir().join("build");
    let _ = std::fs::remove_dir_all(&build);
    std::fs::create_dir_all(&build).map_err(|e| format!("{}: {e}", build.display()))?;
    println!(
        "setup: building Bochs with VT-x from {} (about 5-10 minutes, once)",
        tarball.display()
    );
    run_checked(
        Command::new("tar")
            .arg("xf")
            .arg(&tarball)
            .arg("-C")
            .arg(&build),
        "unpacking Bochs",
    )?;
    let src = std::fs::read_dir(&build)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("configure").exists())
        .ok_or("the Bochs tarball has no configure script")?;
    patch_bochs(&src)?;
    let prefix = bochs_prefix();
    let log = build.join("build.log");
    let quiet = |cmd: &mut Command| -> Result<()> {
        let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        cmd.current_dir(&src)
            .stdout(file.try_clone().map_err(|e| e.to_string())?)
            .stderr(file);
        run_checked(cmd, "building Bochs").map_err(|e| format!("{e}; see {}", log.display()))
    };
    quiet(
        Command::new("./configure")
            .arg(format!("--prefix={}", prefix.display()))
            .args(BOCHS_CONFIGURE),
    )?;
    let jobs = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .to_string();
    quiet(Command::new("make").arg("-j").arg(&jobs))?;
    quiet(Command::new("make").arg("install"))?;
    std::fs::write(prefix.join("STAMP"), BOCHS_STAMP).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&build);
    println!("setup: Bochs installed in {}", prefix.display());
    Ok(())
}

pub fn run(args: &[String]) -> Result<()> {
    let mut args = Args::new(args);
    let no_apt = args.flag("--no-apt");
    let no_bochs = args.flag("--no-bochs");
    args.finish()?;
    if !no_apt {
        install_packages()?;
    }
    if !no_bochs {
        build_bochs()?;
    }
    check_file("/usr/share/OVMF/OVMF_CODE_4M.fd", "ovmf")?;
    check_file("/usr/share/ovmf/OVMF.fd", "ovmf")?;
    check_file("/usr/share/bochs/BIOS-bochs-latest", "bochsbios")?;
    check_file("/usr/share/vgabios/vgabios-stdvga.bin", "vgabios")?;
    println!("setup: ready");
    Ok(())
}

fn check_file(path: &str, package: &str) -> Result<()> {
    if Path::new(path).exists() {
        Ok(())
    } else {
        Err(format!(
            "{path} is missing: install the Debian package {package}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bochs_fix_goes_right_after_its_anchor_once() {
        let dir = std::env::temp_dir().join(format!("oxen-bochs-patch-{}", std::process::id()));
        let cpu = dir.join("cpu");
        std::fs::create_dir_all(&cpu).unwrap();
        let original = "void BX_CPU_C::cpu_loop(void)\n{\n}\n\n\
                        void BX_CPU_C::cpu_run_trace(void)\n{\n  if (async_event) {}\n}\n";
        std::fs::write(cpu.join("cpu.cc"), original).unwrap();
        patch_bochs(&dir).expect("the anchor is there once");
        let patched = std::fs::read_to_string(cpu.join("cpu.cc")).unwrap();
        let at = patched
            .find("void BX_CPU_C::cpu_run_trace(void)\n{\n")
            .unwrap();
        let body = &patched[at..];
        let commit = body.find("BX_CPU_THIS_PTR prev_rip = RIP;").unwrap();
        assert!(
            commit < body.find("if (async_event)").unwrap(),
            "before the event check"
        );
        assert!(patched.contains("BX_CPU_THIS_PTR speculative_rsp = false;"));
        assert!(patched.starts_with("void BX_CPU_C::cpu_loop(void)\n{\n}\n"));
        // Another Bochs whose loop looks different is refused, not half-patched.
        std::fs::write(cpu.join("cpu.cc"), "void cpu_run_trace() {}\n").unwrap();
        let e = patch_bochs(&dir).unwrap_err();
        assert!(e.contains("exactly once"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
