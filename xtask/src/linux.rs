//! The first real guest: Debian's Linux kernel and a busybox ramdisk, made from the
//! packages the setup installs (`linux-image-amd64`, `busybox-static`).
//!
//! A PVH guest is booted from the ELF `vmlinux` (its `XEN_ELFNOTE_PHYS32_ENTRY` note),
//! but distributions ship only the compressed `bzImage`. The boot protocol's setup
//! header says where its payload lies (`payload_offset`, `payload_length`, from the
//! start of the protected-mode code after the setup sectors); Debian compresses it with
//! xz (with the x86 BCJ filter), which liblzma decompresses. The ramdisk is a cpio archive in the kernel's
//! "newc" format holding busybox, the device nodes a console needs and our `/init`.

use std::path::{Path, PathBuf};

use crate::build::Files;
use crate::{Result, out_dir};

/// The archive names of the kernel and its ramdisk.
pub const KERNEL: &str = "linux.elf";
pub const RAMDISK: &str = "linux-initrd.cpio";

/// The ramdisk's `/init`: mounts `/proc` and `/sys`, installs busybox's applets, says
/// it is ready and gives the console to an interactive shell (what the scenarios type
/// into, and a user at `xl console` or the serial console).
pub const INIT: &str = r#"#!/bin/sh
export PATH=/bin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox --install -s /bin
echo "init: ready, $(grep -c ^processor /proc/cpuinfo) CPU(s); a shell on the console"
exec setsid cttyhack sh
"#;

/// The ramdisk's `/sbin/poweroff`: what the kernel runs when Xen's toolstack asks it to
/// power off (`control/shutdown` = `poweroff`: `orderly_poweroff` runs
/// `/sbin/poweroff`). With no init system to tell, it powers off at once.
pub const POWEROFF: &str = "#!/bin/sh\nexec /bin/busybox poweroff -f\n";

/// Where Debian's busybox-static puts its binary.
const BUSYBOX: &str = "/bin/busybox";

/// The kernel and ramdisk for the archive. The kernel is `OXEN_LINUX` if set (a
/// bzImage or an ELF vmlinux), else the newest `/boot/vmlinuz-*`.
pub fn files(init: &str) -> Result<Files> {
    let image = match std::env::var_os("OXEN_LINUX") {
        Some(p) => PathBuf::from(p),
        None => newest_vmlinuz(Path::new("/boot"))?,
    };
    let kernel = vmlinux_cached(&image)?;
    let busybox = std::fs::read(BUSYBOX).map_err(|e| {
        format!("{BUSYBOX}: {e} (the setup installs busybox-static: cargo xtask setup)")
    })?;
    Ok(vec![
        (KERNEL.to_string(), kernel),
        (RAMDISK.to_string(), initramfs(&busybox, init)),
    ])
}

/// The newest `vmlinuz-*` in `dir` (by the version in its name).
fn newest_vmlinuz(dir: &Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .collect();
    found.sort_by_key(|p| version_key(&p.to_string_lossy()));
    found.pop().ok_or_else(|| {
        format!(
            "no vmlinuz-* in {} (the setup installs linux-image-amd64: cargo xtask setup; \
             or set OXEN_LINUX to a kernel)",
            dir.display()
        )
    })
}

/// Numbers in a name, for ordering versions ("6.1.0-57" before "6.1.0-101").
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// `vmlinux(image)`, kept in the build directory so it is decompressed once per kernel.
fn vmlinux_cached(image: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let meta = std::fs::metadata(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let stem = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cache = out_dir()
        .join("linux")
        .join(format!("{stem}-{}.elf", meta.len()));
    if let Ok(elf) = std::fs::read(&cache) {
        return Ok(elf);
    }
    let elf = vmlinux(&bytes).map_err(|e| format!("{}: {e}", image.display()))?;
    if let Some(dir) = cache.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // Written aside and renamed into place: two scenarios run at a time, and one of them
    // must never read the other's half-written copy (seen on a fresh clone as
    // SegmentOutsideFile in linux-smp2 while linux-up wrote the cache).
    let partial = cache.with_extension(format!(
        "partial-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&partial, &elf).map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::rename(&partial, &cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    Ok(elf)
}

/// The ELF kernel inside a bzImage (an ELF is returned as it is).
pub fn vmlinux(image: &[u8]) -> Result<Vec<u8>> {
    if image.starts_with(b"\x7fELF") {
        return Ok(image.to_vec());
    }
    let payload = payload(image)?;
    let elf = if payload.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        let mut out = Vec::new();
        // One stream: the bzImage keeps the uncompressed size right after it.
        let stream = liblzma::stream::Stream::new_stream_decoder(u64::MAX, 0)
            .map_err(|e| format!("xz decoder: {e}"))?;
        std::io::Read::read_to_end(
            &mut liblzma::bufread::XzDecoder::new_stream(payload, stream),
            &mut out,
        )
        .map_err(|e| format!("the xz payload does not decompress: {e}"))?;
        out
    } else {
        let format = match payload {
            [0x1f, 0x8b, ..] => "gzip",
            [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd",
            [0x5d, 0, 0, ..] => "lzma",
            [b'B', b'Z', b'h', ..] => "bzip2",
            [0x89, b'L', b'Z', b'O', ..] => "lzo",
            [0x02, 0x21, 0x4c, 0x18, ..] => "lz4",
            _ => "an unknown format",
        };
        return Err(format!(
            "the kernel's payload is {format}; only xz (Debian's) is supported: \
             pass an ELF vmlinux instead"
        ));
    };
    if !elf.starts_with(b"\x7fELF") {
        return Err("the decompressed payload is not an ELF file".into());
    }
    Ok(elf)
}

/// The compressed payload of a bzImage, as its setup header locates it.
fn payload(image: &[u8]) -> Result<&[u8]> {
    let u8_at = |at: usize| image.get(at).copied();
    let u16_at = |at: usize| Some(u16::from_le_bytes(image.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(image.get(at..at + 4)?.try_into().ok()?));
    if u32_at(0x202) != Some(u32::from_le_bytes(*b"HdrS")) {
        return Err("neither an ELF file nor a bzImage (no HdrS setup header)".into());
    }
    let version = u16_at(0x206).unwrap_or(0);
    if version < 0x208 {
        return Err(format!(
            "boot protocol {}.{:02} has no payload fields (2.08 or later needed)",
            version >> 8,
            version & 0xff
        ));
    }
    let setup_sects = match u8_at(0x1f1) {
        Some(0) => 4,
        Some(n) => usize::from(n),
        None => return Err("truncated setup header".into()),
    };
    let (Some(offset), Some(length)) = (u32_at(0x248), u32_at(0x24c)) else {
        return Err("truncated setup header".into());
    };
    let start = (setup_sects + 1) * 512 + offset as usize;
    image
        .get(start..start + length as usize)
        .ok_or_else(|| format!("the payload ({length} bytes at {start:#x}) lies past the end"))
}

/// One cpio "newc" member.
struct Member<'a> {
    name: &'a str,
    mode: u32,
    /// For device nodes: (major, minor).
    rdev: (u32, u32),
    data: &'a [u8],
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl<'a> Member<'a> {
    fn new(name: &'a str, mode: u32, data: &'a [u8]) -> Self {
        Member {
            name,
            mode,
            rdev: (0, 0),
            data,
        }
    }

    fn dir(name: &'a str) -> Self {
        Self::new(name, S_IFDIR | 0o755, &[])
    }

    /// A character device node `major:minor`.
    fn chr(name: &'a str, perm: u32, major: u32, minor: u32) -> Self {
        Member {
            rdev: (major, minor),
            ..Self::new(name, S_IFCHR | perm, &[])
        }
    }
}

/// The ramdisk: directories, `/dev/console`, `/dev/null` and `/dev/hvc0`, busybox with
/// `/bin/sh` linked to it, `/sbin/poweroff` ([`POWEROFF`]), and `/init` itself.
pub fn initramfs(busybox: &[u8], init: &str) -> Vec<u8> {
    let members = [
        Member::dir("bin"),
        Member::dir("sbin"),
        Member::dir("dev"),
        Member::dir("proc"),
        Member::dir("sys"),
        Member::dir("tmp"),
        Member::chr("dev/console", 0o600, 5, 1),
        Member::chr("dev/null", 0o666, 1, 3),
        Member::chr("dev/hvc0", 0o600, 229, 0),
        Member::new("bin/busybox", S_IFREG | 0o755, busybox),
        Member::new("bin/sh", S_IFLNK | 0o777, b"busybox"),
        Member::new("sbin/poweroff", S_IFREG | 0o755, POWEROFF.as_bytes()),
        Member::new("init", S_IFREG | 0o755, init.as_bytes()),
        Member::new("TRAILER!!!", 0, &[]),
    ];
    let mut out = Vec::new();
    for (ino, m) in members.iter().enumerate() {
        write_member(&mut out, ino as u32 + 1, m);
    }
    // The kernel reads the archive in whole blocks: pad to 512 bytes as cpio does.
    out.resize(out.len().next_multiple_of(512), 0);
    out
}

/// Appends one member: the 110-byte ASCII header, the name with its NUL, the data,
/// each padded to 4 bytes.
fn write_member(out: &mut Vec<u8>, ino: u32, m: &Member<'_>) {
    let nlink = if m.mode & S_IFDIR != 0 { 2 } else { 1 };
    let fields = [
        ino,
        m.mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        m.data.len() as u32,
        0, // dev major
        0, // dev minor
        m.rdev.0,
        m.rdev.1,
        m.name.len() as u32 + 1,
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(m.name.as_bytes());
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(m.data);
    out.resize(out.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One member read back: name, mode, rdev, data.
    type Parsed = (String, u32, (u32, u32), Vec<u8>);

    /// Parses a newc archive back.
    fn parse(mut b: &[u8]) -> Vec<Parsed> {
        let mut out = Vec::new();
        let start = b.as_ptr() as usize;
        let align = |b: &[u8]| -> usize { (4 - (b.as_ptr() as usize - start) % 4) % 4 };
        loop {
            assert_eq!(&b[..6], b"070701");
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&b[6 + i * 8..14 + i * 8]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, size, rdev, namesize) =
                (field(1), field(6), (field(9), field(10)), field(11));
            b = &b[110..];
            let name = std::str::from_utf8(&b[..namesize as usize - 1])
                .unwrap()
                .to_string();
            assert_eq!(b[namesize as usize - 1], 0);
            b = &b[namesize as usize..];
            b = &b[align(b)..];
            let data = b[..size as usize].to_vec();
            b = &b[size as usize..];
            b = &b[align(b)..];
            if name == "TRAILER!!!" {
                assert!(b.iter().all(|&x| x == 0));
                return out;
            }
            out.push((name, mode, rdev, data));
        }
    }

    #[test]
    fn initramfs_holds_init_busybox_and_the_console_nodes() {
        let cpio = initramfs(b"\x7fELF busybox", "#!/bin/sh\necho hi\n");
        assert_eq!(cpio.len() % 512, 0);
        let members = parse(&cpio);
        let get = |n: &str| members.iter().find(|m| m.0 == n).unwrap();
        assert_eq!(get("init").1, S_IFREG | 0o755);
        assert_eq!(get("init").3, b"#!/bin/sh\necho hi\n");
        assert_eq!(get("bin/busybox").3, b"\x7fELF busybox");
        assert_eq!(get("bin/sh").1 & 0o170000, S_IFLNK);
        assert_eq!(get("bin/sh").3, b"busybox");
        assert_eq!(get("dev/console").1, S_IFCHR | 0o600);
        assert_eq!(get("dev/console").2, (5, 1));
        assert_eq!(get("dev/hvc0").2, (229, 0));
        assert_eq!(get("dev/null").2, (1, 3));
        assert_eq!(get("proc").1, S_IFDIR | 0o755);
        assert_eq!(get("sbin/poweroff").3, POWEROFF.as_bytes());
    }

    /// A bzImage-shaped buffer: setup header fields and an xz payload where they say.
    fn bzimage(setup_sects: u8, version: u16, payload: &[u8]) -> Vec<u8> {
        let sects = if setup_sects == 0 {
            4
        } else {
            usize::from(setup_sects)
        };
        let offset = 0x40usize;
        let mut b = vec![0u8; (sects + 1) * 512 + offset];
        b[0x1f1] = setup_sects;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        b[0x248..0x24c].copy_from_slice(&(offset as u32).to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(payload);
        b.extend_from_slice(&[0xaa; 16]); // what follows the payload is not part of it
        b
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut liblzma::read::XzEncoder::new(data, 6), &mut out).unwrap();
        out
    }

    #[test]
    fn vmlinux_comes_out_of_the_payload_the_header_locates() {
        let elf = b"\x7fELF\x02\x01\x01 a kernel".repeat(100);
        for sects in [0, 27, 39] {
            let image = bzimage(sects, 0x20f, &xz(&elf));
            assert_eq!(vmlinux(&image).unwrap(), elf, "setup_sects {sects}");
        }
        // An ELF passes through; old protocols, other formats and garbage are refused.
        assert_eq!(vmlinux(&elf).unwrap(), elf);
        assert!(vmlinux(&bzimage(39, 0x207, &xz(&elf))).is_err());
        let gz = vmlinux(&bzimage(39, 0x20f, &[0x1f, 0x8b, 8, 0])).unwrap_err();
        assert!(gz.contains("gzip"), "{gz}");
        assert!(vmlinux(&bzimage(39, 0x20f, &xz(b"not an elf"))).is_err());
        assert!(vmlinux(b"MZ nothing").is_err());
        let mut short = bzimage(39, 0x20f, &xz(&elf));
        short.truncate(short.len() - 40);
        assert!(vmlinux(&short).is_err());
    }

    #[test]
    fn versions_order_numerically() {
        let mut v = [
            "vmlinuz-6.1.0-101-amd64",
            "vmlinuz-6.1.0-57-amd64",
            "vmlinuz-5.10.0-9-amd64",
        ];
        v.sort_by_key(|n| version_key(n));
        assert_eq!(v.last(), Some(&"vmlinuz-6.1.0-101-amd64"));
    }
}
