//! An `xl.cfg` `disk = [...]` entry (Xen's `xl-disk-configuration(5)`): comma-separated
//! `key=value` pairs, flags and positional parameters. A parameter without `=` that is
//! not a flag fills the next positional one still unset, in the order target, format,
//! vdev, access (an empty one leaves it at its default); each may be given once;
//! `target=` takes the rest of the spec, commas and all. Defaults: format `raw`,
//! access `rw`, devtype `disk`; the vdev is required.
//!
//! The virtual device's number is the one Xen's VBD interface gives it (`xvdX`: major
//! 202 with 16 minors per disk for the first 16 disks, the extended form beyond; `hdX`
//! and `sdX` their Linux majors), as front ends read it from the store.

use alloc::format;
use alloc::string::{String, ToString};

/// An image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow,
    Qcow2,
    Vhd,
    Qed,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow => "qcow",
            Format::Qcow2 => "qcow2",
            Format::Vhd => "vhd",
            Format::Qed => "qed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "raw" => Format::Raw,
            "qcow" => Format::Qcow,
            "qcow2" => Format::Qcow2,
            "vhd" => Format::Vhd,
            "qed" => Format::Qed,
            _ => return None,
        })
    }
}

/// One disk of a domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    /// The image (a path in dom0's storage); empty for an empty CD-ROM drive.
    pub target: String,
    pub format: Format,
    /// As written (`xvda`, `hdc`, …).
    pub vdev: String,
    /// The VBD device number (`device/vbd/N` in the store).
    pub devid: u32,
    pub read_only: bool,
    pub cdrom: bool,
    /// The back-end domain (`backend=`), 0 by default.
    pub backend: String,
}

/// Parses one `DISKSPEC`.
pub fn parse(spec: &str) -> Result<DiskSpec, String> {
    let mut target: Option<String> = None;
    let mut format: Option<Format> = None;
    let mut vdev: Option<String> = None;
    let mut access: Option<bool> = None;
    let mut cdrom = None;
    let mut backend = None;
    let mut positional = 0usize;
    let mut rest = spec;
    while !rest.is_empty() {
        let trimmed = rest.trim_start();
        if let Some(t) = trimmed.strip_prefix("target=") {
            set(&mut target, "target", t.trim().to_string())?;
            break;
        }
        let (item, more) = match rest.split_once(',') {
            Some((a, b)) => (a, b),
            None => (rest, ""),
        };
        rest = more;
        let item = item.trim();
        if let Some((key, value)) = item.split_once('=') {
            let value = value.trim();
            match key.trim() {
                "format" => set(&mut format, "format", parse_format(value)?)?,
                "vdev" => set(&mut vdev, "vdev", value.to_string())?,
                "access" => set(&mut access, "access", parse_access(value)?)?,
                "devtype" if value == "cdrom" => set(&mut cdrom, "devtype", true)?,
                "devtype" if value == "disk" => set(&mut cdrom, "devtype", false)?,
                "devtype" => return Err(format!("devtype '{value}': use cdrom or disk")),
                "backend" => set(&mut backend, "backend", value.to_string())?,
                "backendtype" | "script" | "specification" => {}
                other => return Err(format!("unknown disk parameter '{other}'")),
            }
            continue;
        }
        match item {
            "cdrom" => set(&mut cdrom, "devtype", true)?,
            "discard" | "no-discard" | "direct-io-safe" | "trusted" | "untrusted" => {}
            _ => {
                // The next positional parameter not yet given.
                loop {
                    let done = match positional {
                        0 => target.is_some(),
                        1 => format.is_some(),
                        2 => vdev.is_some(),
                        3 => access.is_some(),
                        _ => return Err(format!("too many positional parameters at '{item}'")),
                    };
                    if !done {
                        break;
                    }
                    positional += 1;
                }
                let slot = positional;
                positional += 1;
                if item.is_empty() {
                    // Left at its default, but taken.
                    match slot {
                        0 => target = Some(String::new()),
                        1 => format = Some(Format::Raw),
                        2 => {}
                        _ => access = Some(false),
                    }
                    continue;
                }
                match slot {
                    0 => target = Some(item.to_string()),
                    1 => format = Some(parse_format(item)?),
                    2 => vdev = Some(item.to_string()),
                    _ => access = Some(parse_access(item)?),
                }
            }
        }
    }
    let vdev = vdev.filter(|v| !v.is_empty()).ok_or("no vdev")?;
    let devid = devid(&vdev).ok_or_else(|| format!("vdev '{vdev}' is not a disk name"))?;
    let cdrom = cdrom.unwrap_or(false);
    let target = target.unwrap_or_default();
    if target.is_empty() && !cdrom {
        return Err(format!("{vdev}: no target"));
    }
    Ok(DiskSpec {
        target,
        format: format.unwrap_or(Format::Raw),
        vdev,
        devid,
        // A CD-ROM is read-only whatever it says.
        read_only: access.unwrap_or(false) || cdrom,
        cdrom,
        backend: backend.unwrap_or_else(|| String::from("0")),
    })
}

fn set<T>(slot: &mut Option<T>, name: &str, v: T) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("'{name}' is given twice"));
    }
    *slot = Some(v);
    Ok(())
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s).ok_or_else(|| format!("format '{s}': use raw, qcow, qcow2, vhd or qed"))
}

/// Whether `s` means read-only.
fn parse_access(s: &str) -> Result<bool, String> {
    match s {
        "ro" | "r" => Ok(true),
        "rw" | "w" => Ok(false),
        _ => Err(format!("access '{s}': use ro or rw")),
    }
}

/// The VBD number of `vdev`: `xvd` + disk letters (a…z, aa…) + an optional partition,
/// `hd[a-t]`, `sd[a-z]…` likewise, or `dNpM`.
pub fn devid(vdev: &str) -> Option<u32> {
    fn letters(s: &str) -> Option<(u32, u32)> {
        let end = s.find(|c: char| !c.is_ascii_lowercase()).unwrap_or(s.len());
        let (l, digits) = s.split_at(end);
        if l.is_empty() || l.len() > 3 {
            return None;
        }
        // Bijective base 26: a = 0, z = 25, aa = 26.
        let disk = l
            .bytes()
            .fold(0u32, |n, b| n * 26 + u32::from(b - b'a') + 1)
            - 1;
        let part = if digits.is_empty() {
            0
        } else if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        } else {
            digits.parse().ok()?
        };
        Some((disk, part))
    }
    if let Some(rest) = vdev.strip_prefix("xvd") {
        let (disk, part) = letters(rest)?;
        return xvd(disk, part);
    }
    if let Some(rest) = vdev.strip_prefix("hd") {
        let (disk, part) = letters(rest)?;
        if part > 63 {
            return None;
        }
        // IDE: two disks per major (3, 22, 33, 34, …).
        const MAJORS: [u32; 10] = [3, 22, 33, 34, 56, 57, 88, 89, 90, 91];
        let major = *MAJORS.get(disk as usize / 2)?;
        return Some((major << 8) | ((disk % 2) << 6) | part);
    }
    if let Some(rest) = vdev.strip_prefix("sd") {
        let (disk, part) = letters(rest)?;
        if disk >= 16 || part > 15 {
            return None;
        }
        return Some((8 << 8) | (disk << 4) | part);
    }
    let rest = vdev.strip_prefix('d')?;
    let (disk, part) = match rest.split_once('p') {
        Some((d, p)) => (d.parse().ok()?, p.parse().ok()?),
        None => (rest.parse().ok()?, 0),
    };
    xvd(disk, part)
}

fn xvd(disk: u32, part: u32) -> Option<u32> {
    if disk < 16 && part < 16 {
        Some((202 << 8) | (disk << 4) | part)
    } else if disk < (1 << 20) && part < 256 {
        Some((1 << 28) | (disk << 8) | part)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manual_s_equivalent_forms_agree() {
        let a = parse("/dev/vg/guest-volume,,hda").unwrap();
        let b = parse("/dev/vg/guest-volume,raw,hda,rw").unwrap();
        let c = parse("format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.target, "/dev/vg/guest-volume");
        assert_eq!(
            (a.format, a.read_only, a.cdrom),
            (Format::Raw, false, false)
        );
        let d = parse("/root/image.iso,,hdc,cdrom").unwrap();
        let e = parse("/root/image.iso,,hdc,,cdrom").unwrap();
        let f = parse("/root/image.iso,raw,hdc,devtype=cdrom").unwrap();
        let g = parse("format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/root/image.iso")
            .unwrap();
        for x in [&e, &f, &g] {
            assert_eq!(&d, x);
        }
        assert!(d.cdrom && d.read_only);
    }

    #[test]
    fn qcow2_images_read_only_and_the_rest_of_target() {
        let d = parse("/img/a.qcow2,qcow2,xvda,rw").unwrap();
        assert_eq!(
            (d.format, d.vdev.as_str(), d.devid),
            (Format::Qcow2, "xvda", 51712)
        );
        let r = parse("vdev=xvdb, access=ro, target=/img/with,comma").unwrap();
        assert_eq!(r.target, "/img/with,comma");
        assert!(r.read_only);
        assert_eq!(r.devid, 51728);
        assert_eq!(parse("x.img,,xvda,w,backend=1").unwrap().backend, "1");
    }

    #[test]
    fn mistakes_are_named() {
        for (spec, says) in [
            ("/img/a", "no vdev"),
            ("/img/a,vmdk,xvda", "format 'vmdk'"),
            ("/img/a,,xvda,rx", "access 'rx'"),
            ("/img/a,,xvda,rw,extra", "too many positional"),
            ("/img/a,,xvda,vdev=xvdb", "'vdev' is given twice"),
            ("/img/a,,nvme0", "vdev 'nvme0'"),
            ("/img/a,,xvda,colour=red", "unknown disk parameter 'colour'"),
            (",,xvda", "xvda: no target"),
            ("/img/a,,xvda,devtype=tape", "devtype 'tape'"),
        ] {
            let e = parse(spec).unwrap_err();
            assert!(e.contains(says), "{spec}: {e}");
        }
        // An empty CD-ROM drive needs no target.
        assert!(parse(",,hdc,cdrom").unwrap().target.is_empty());
    }

    #[test]
    fn device_numbers_are_xen_s() {
        assert_eq!(devid("xvda"), Some(202 << 8));
        assert_eq!(devid("xvdb3"), Some((202 << 8) | (1 << 4) | 3));
        assert_eq!(devid("xvdp"), Some((202 << 8) | (15 << 4)));
        // The 17th disk needs the extended form; so does partition 16.
        assert_eq!(devid("xvdq"), Some((1 << 28) | (16 << 8)));
        assert_eq!(devid("xvdaa"), Some((1 << 28) | (26 << 8)));
        assert_eq!(devid("xvda16"), Some((1 << 28) | 16));
        assert_eq!(devid("d0p1"), Some((202 << 8) | 1));
        assert_eq!(devid("hda"), Some(3 << 8));
        assert_eq!(devid("hdb1"), Some((3 << 8) | (1 << 6) | 1));
        assert_eq!(devid("hdc"), Some(22 << 8));
        assert_eq!(devid("sdb"), Some((8 << 8) | (1 << 4)));
        for bad in ["xvd", "xvdA", "xvda01", "hd", "vda", "xvdabcd", "sdq"] {
            assert_eq!(devid(bad), None, "{bad}");
        }
    }
}
