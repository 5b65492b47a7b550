//! Building the hypervisor, the boot archive and the disk images.

use std::path::{Path, PathBuf};
use std::process::Command;

use bootloader::{BootConfig, DiskImageBuilder};
use oxen_core::archive;

use crate::{Args, Result, out_dir, root};

/// Which firmware an image boots with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    Uefi,
    Bios,
}

impl Firmware {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "uefi" => Ok(Firmware::Uefi),
            "bios" => Ok(Firmware::Bios),
            _ => Err(format!("unknown firmware '{s}' (uefi, bios)")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Firmware::Uefi => "uefi",
            Firmware::Bios => "bios",
        }
    }
}

/// Builds the hypervisor with `features` and returns a copy of the ELF named after them.
pub fn hypervisor(features: &[&str]) -> Result<PathBuf> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root())
        .args(["build", "--release", "--package", "oxen"]);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building the hypervisor failed".into());
    }
    let built = root().join("target/x86_64-unknown-none/release/oxen");
    let name = if features.is_empty() {
        "oxen.elf".to_string()
    } else {
        format!("oxen-{}.elf", features.join("-"))
    };
    let dir = out_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let copy = dir.join(name);
    std::fs::copy(&built, &copy).map_err(|e| format!("copying {}: {e}", built.display()))?;
    Ok(copy)
}

/// Archive entries: (name, contents).
pub type Files = Vec<(String, Vec<u8>)>;

/// The test guests (crate, binary), built for bare metal and packed as `<binary>.elf`.
pub const GUESTS: &[(&str, &str)] = &[
    ("oxen-guest-hello", "hello"),
    ("oxen-guest-exits", "exits"),
    ("oxen-guest-isolation", "isolation"),
    ("oxen-guest-triple", "triple"),
    ("oxen-guest-hcall-fuzz", "hcall-fuzz"),
    ("oxen-guest-spin", "spin"),
    ("oxen-guest-bench", "bench"),
    ("oxen-guest-burn", "burn"),
    ("oxen-guest-sleeper", "sleeper"),
    ("oxen-guest-smp", "smp"),
    ("oxen-guest-schedctl", "schedctl"),
    ("oxen-guest-builder", "builder"),
    ("oxen-guest-ping", "ping"),
    ("oxen-guest-pong", "pong"),
    ("oxen-guest-storm", "storm"),
    ("oxen-guest-pvcheck", "pvcheck"),
    ("oxen-guest-faults", "faults"),
    ("oxen-guest-hostile", "hostile"),
    ("oxen-guest-victim", "victim"),
    ("oxen-guest-apic", "apic"),
    ("oxen-guest-xenstore", "xenstore"),
    // Not a test guest: the control domain.
    ("oxen-dom0", "dom0"),
];

/// Builds every guest (one cargo run, apart from the hypervisor and the host crates so
/// their dependency features stay apart) and returns `(archive name, ELF bytes)`.
pub fn guests() -> Result<Files> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root()).args(["build", "--release"]);
    for (krate, _) in GUESTS {
        cmd.args(["--package", krate]);
    }
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building the guests failed".into());
    }
    GUESTS
        .iter()
        .map(|(_, bin)| {
            let path = root().join("target/x86_64-unknown-none/release").join(bin);
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((format!("{bin}.elf"), bytes))
        })
        .collect()
}

/// Writes a boot archive holding `config` (as `boot.cfg`) and `files`.
pub fn write_archive(path: &Path, config: &str, files: &[(String, Vec<u8>)]) -> Result<()> {
    let mut entries: Vec<(&str, &[u8])> = vec![(archive::CONFIG_NAME, config.as_bytes())];
    entries.extend(files.iter().map(|(n, d)| (n.as_str(), d.as_slice())));
    let bytes = archive::build(&entries).map_err(|e| format!("building the boot archive: {e}"))?;
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Builds a disk image for `firmware` from a kernel and a ramdisk.
pub fn disk_image(kernel: &Path, ramdisk: &Path, firmware: Firmware, out: &Path) -> Result<()> {
    let mut builder = DiskImageBuilder::new(kernel.to_path_buf());
    builder.set_ramdisk(ramdisk.to_path_buf());
    // The bootloader's own log: warnings only, serial only (a framebuffer console is
    // slow in emulators and nobody looks at it).
    let mut config = BootConfig::default();
    config.log_level = bootloader_boot_config::LevelFilter::Warn;
    config.frame_buffer_logging = false;
    config.serial_logging = true;
    builder.set_boot_config(&config);
    let made = match firmware {
        Firmware::Uefi => builder.create_uefi_image(out),
        Firmware::Bios => builder.create_bios_image(out),
    };
    made.map_err(|e| {
        format!(
            "creating the {} image {}: {e:#}",
            firmware.name(),
            out.display()
        )
    })
}

/// The default boot configuration used by `run` and `image`.
pub fn demo_config() -> PathBuf {
    root().join("guests/boot/demo.cfg")
}

/// The files that go into every archive next to `boot.cfg`: a note, and the domain
/// configurations of `guests/boot/domains/`.
pub fn archive_files() -> Files {
    let mut files = vec![(
        "README".to_string(),
        b"oxen boot archive: boot.cfg plus guest images.\n".to_vec(),
    )];
    let dir = root().join("guests/boot/domains");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut cfgs: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        cfgs.sort();
        for path in cfgs
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        {
            if let (Some(name), Ok(bytes)) = (path.file_name(), std::fs::read(&path)) {
                files.push((name.to_string_lossy().into_owned(), bytes));
            }
        }
    }
    files
}

/// The files of the folder `OXEN_FILES` names (not its subfolders), for the archive:
/// a user's own kernels, ramdisks and domain configurations next to the demo's.
fn user_files() -> Result<Files> {
    let Some(dir) = std::env::var_os("OXEN_FILES") else {
        return Ok(Vec::new());
    };
    let dir = PathBuf::from(dir);
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("OXEN_FILES {}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((name, bytes))
        })
        .collect()
}

/// Builds everything `run` needs for `firmware` with the configuration at `config`
/// (with Debian's Linux kernel and the busybox ramdisk in the archive if `linux`).
pub fn images(config: &Path, firmware: Firmware, linux: bool) -> Result<PathBuf> {
    let kernel = hypervisor(&[])?;
    let text = std::fs::read_to_string(config).map_err(|e| format!("{}: {e}", config.display()))?;
    let dir = out_dir();
    let ramdisk = dir.join("boot.oxar");
    let mut files = archive_files();
    files.extend(guests()?);
    if linux {
        files.extend(crate::linux::files(crate::linux::INIT)?);
    }
    files.extend(user_files()?);
    write_archive(&ramdisk, &text, &files)?;
    let image = dir.join(format!("oxen-{}.img", firmware.name()));
    disk_image(&kernel, &ramdisk, firmware, &image)?;
    Ok(image)
}

pub fn cmd_build(args: &[String]) -> Result<()> {
    let mut args = Args::new(args);
    let features = args.value("--features")?.unwrap_or_default();
    args.finish()?;
    let features: Vec<&str> = features.split(',').filter(|f| !f.is_empty()).collect();
    let elf = hypervisor(&features)?;
    println!("built {}", elf.display());
    Ok(())
}

pub fn cmd_image(args: &[String]) -> Result<()> {
    let mut args = Args::new(args);
    let config = args
        .value("--config")?
        .map(PathBuf::from)
        .unwrap_or_else(demo_config);
    let linux = args.flag("--linux");
    args.finish()?;
    for fw in [Firmware::Uefi, Firmware::Bios] {
        let image = images(&config, fw, linux)?;
        println!("built {}", image.display());
    }
    Ok(())
}
