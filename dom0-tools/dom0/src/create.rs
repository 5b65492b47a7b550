//! `xl create`: the domain builder of the control domain, as Xen's lives in dom0. It
//! reads an `xl.cfg` (with `key=value` overrides), lays the kernel out with the same
//! code the hypervisor's boot builder uses (`oxen_core::pvh::plan`), creates the domain
//! through `domctl`, gives it memory (`populate_physmap`), writes the plan through
//! foreign maps, sets vCPU 0's registers (`sethvmcontext`), its scheduling parameters
//! and affinity, and unpauses it. A build that fails destroys what it made.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use oxen_core::config::DomainConfig;
use oxen_core::pvh::{self, PlanError};
use oxen_guest_rt::abi::domctl::{self, CreateDomain, cdf};
use oxen_guest_rt::abi::hvm_save::{self, HwCpu};
use oxen_guest_rt::control;
use oxen_toolstack::store::DomainFacts;

use crate::consoles::Consoles;
use crate::files::Files;
use crate::store::Store;

/// Where dom0 maps a new domain's frames to write them: 256 frames from 512 MiB up
/// (above its RAM, inside the first GiB the runtime maps one to one).
const WINDOW_GFN: u64 = 0x2_0000;
const WINDOW_FRAMES: usize = 256;
const FRAME: u64 = 4096;

/// A domain that was built: its id and configuration.
pub struct Built {
    pub id: u16,
    pub cfg: DomainConfig,
}

/// Reads `path` with `overrides` (each `key=value` a line after the file's) and builds
/// the domain, paused if `paused`. `taken` says whether a name is in use.
pub fn create(
    files: &Files,
    path: &str,
    overrides: &[&str],
    paused: bool,
    taken: impl Fn(&str) -> bool,
    store: &mut Store,
    consoles: &mut Consoles,
) -> Result<Built, String> {
    let text = files
        .get(path)
        .and_then(|b| core::str::from_utf8(b).ok())
        .ok_or_else(|| format!("xl create: {path}: no such configuration file"))?;
    let mut all = String::from(text);
    for o in overrides {
        all.push('\n');
        all.push_str(o);
    }
    let cfg = DomainConfig::parse(&all).map_err(|e| format!("xl create: {path}: {e}"))?;
    if taken(&cfg.name) {
        return Err(format!("xl create: domain '{}' already exists", cfg.name));
    }
    let kernel = files
        .get(&format!("/images/{}", cfg.kernel))
        .ok_or_else(|| format!("xl create: kernel {} is not in /images", cfg.kernel))?;
    let ramdisk = match &cfg.ramdisk {
        None => None,
        Some(r) => Some(
            files
                .get(&format!("/images/{r}"))
                .or_else(|| files.get(&format!("/etc/xen/{r}")))
                .ok_or_else(|| format!("xl create: ramdisk {r} is not in /images"))?,
        ),
    };
    let ram = cfg.memory_mib << 20;
    let plan = pvh::plan(
        kernel,
        ramdisk,
        ram,
        cfg.vcpus,
        &cfg.cmdline,
        pvh::reserved_range(0),
    )
    .map_err(|e| match e {
        PlanError::Elf(e) => format!("xl create: kernel {}: {e:?}", cfg.kernel),
        PlanError::NoPvhEntry => format!("xl create: kernel {} has no PVH entry note", cfg.kernel),
        PlanError::OutsideRam { paddr, size } => format!(
            "xl create: {} bytes at {paddr:#x} do not fit in {} MiB",
            size, cfg.memory_mib
        ),
    })?;
    if cfg.maxvcpus > cfg.vcpus {
        return Err(format!(
            "xl create: {}: maxvcpus {} above vcpus {}: vCPU hot-plug is not there yet",
            cfg.name, cfg.maxvcpus, cfg.vcpus
        ));
    }
    let uuid = cfg.uuid.unwrap_or_else(made_up_uuid);
    let id = new_domain(&cfg, &uuid)?;
    match fill(id, &cfg, &uuid, &plan, paused, store, consoles) {
        Ok(()) => Ok(Built { id, cfg }),
        Err(e) => {
            store.release(id);
            consoles.release(id);
            control::domctl(domctl::cmd::DESTROYDOMAIN, id, &[]);
            Err(format!(
                "xl create: {}: {e} (the domain was destroyed)",
                cfg.name
            ))
        }
    }
}

fn new_domain(cfg: &DomainConfig, handle: &[u8; 16]) -> Result<u16, String> {
    let word =
        |i: usize| u32::from_le_bytes([handle[i], handle[i + 1], handle[i + 2], handle[i + 3]]);
    let c = CreateDomain {
        handle0: word(0),
        handle1: word(4),
        handle2: word(8),
        handle3: word(12),
        flags: cdf::HVM | cdf::HAP,
        max_vcpus: cfg.vcpus,
        max_evtchn_port: 1023,
        max_grant_frames: 32,
        max_maptrack_frames: 1024,
        ..CreateDomain::default()
    };
    match control::domctl(domctl::cmd::CREATEDOMAIN, 0, &c.to_bytes()) {
        (0, op) => Ok(u16::from_le_bytes([
            op[domctl::offset::DOMAIN],
            op[domctl::offset::DOMAIN + 1],
        ])),
        (rc, _) => Err(format!("xl create: createdomain failed (rc={rc})")),
    }
}

/// What the store says about domain `id` built from `cfg` (`uuid` in Xen's form).
pub fn facts<'a>(id: u16, cfg: &'a DomainConfig, uuid: &'a str) -> DomainFacts<'a> {
    DomainFacts {
        id,
        name: &cfg.name,
        uuid,
        memory_kib: cfg.memory_mib * 1024,
        maxmem_kib: cfg.maxmem_mib * 1024,
        vcpus: cfg.vcpus,
    }
}

/// A UUID made up (version 4 form) from the time, for a configuration without one, as
/// Xen's toolstack makes one up (it has a random source; the time is ours).
pub fn made_up_uuid() -> [u8; 16] {
    let mut x = oxen_guest_rt::time::now_ns();
    let mut u = [0u8; 16];
    for chunk in u.chunks_mut(8) {
        // splitmix64: spreads the time over the bytes.
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// Memory, contents, registers, scheduling; then the unpause.
fn fill(
    id: u16,
    cfg: &DomainConfig,
    uuid: &[u8; 16],
    plan: &pvh::Plan<'_>,
    paused: bool,
    store: &mut Store,
    consoles: &mut Consoles,
) -> Result<(), String> {
    // Up to `maxmem`, and the special pages beyond it (as libxl's slack above the
    // target); `memory` is what it gets now.
    let kib = cfg.maxmem_mib * 1024 + pvh::RESERVED_PAGES * 4;
    let rc = control::domctl(domctl::cmd::MAX_MEM, id, &kib.to_le_bytes()).0;
    if rc != 0 {
        return Err(format!("max_mem failed (rc={rc})"));
    }
    // 2 MiB extents, then single frames for the rest.
    let frames = cfg.memory_mib * 256;
    let big: Vec<u64> = (0..frames / 512).map(|i| i * 512).collect();
    let small: Vec<u64> = (frames / 512 * 512..frames).collect();
    for (gfns, order) in [(&big, 9), (&small, 0)] {
        if !gfns.is_empty() && control::populate(id, gfns, order) != gfns.len() as i64 {
            return Err(format!(
                "populate_physmap could not give it {} MiB",
                cfg.memory_mib
            ));
        }
    }
    // The XenStore page, in the reserved range above RAM.
    let store_gfn = pvh::store_gfn(0);
    if control::populate(id, &[store_gfn], 0) != 1 {
        return Err(String::from(
            "populate_physmap could not give it a store page",
        ));
    }
    let uuid = oxen_core::config::format_uuid(uuid);
    store.introduce(&facts(id, cfg, &uuid), store_gfn)?;
    consoles.serve(id, &cfg.name)?;
    for (gpa, bytes) in &plan.writes {
        write(id, *gpa, bytes)?;
    }
    let cpu = HwCpu::pvh(u64::from(plan.entry), plan.start_info);
    let rc = control::set_context(id, &control::hvm_context(&cpu, hvm_save::FILE_MAGIC));
    if rc != 0 {
        return Err(format!("sethvmcontext failed (rc={rc})"));
    }
    let defaults = (cfg.weight, cfg.cap) == (256, 0);
    if !defaults && control::credit(id, Some((cfg.weight, cfg.cap as u16))).is_err() {
        return Err(format!(
            "weight {} and cap {} are refused",
            cfg.weight, cfg.cap
        ));
    }
    if cfg.affinity != u64::MAX {
        for v in 0..cfg.vcpus {
            control::affinity(domctl::cmd::SETVCPUAFFINITY, id, v, cfg.affinity)
                .map_err(|rc| format!("cpus {:#x} refused (rc={rc})", cfg.affinity))?;
        }
    }
    if !paused {
        let rc = control::domctl(domctl::cmd::UNPAUSEDOMAIN, id, &[]).0;
        if rc != 0 {
            return Err(format!("unpausedomain failed (rc={rc})"));
        }
    }
    Ok(())
}

/// Writes `bytes` at `gpa` of domain `id`, mapping its frames into the window in turns.
fn write(id: u16, gpa: u64, bytes: &[u8]) -> Result<(), String> {
    let first = gpa / FRAME;
    let last = (gpa + bytes.len() as u64).div_ceil(FRAME);
    let mut gfn = first;
    while gfn < last {
        let n = ((last - gfn) as usize).min(WINDOW_FRAMES);
        let idxs: Vec<u64> = (gfn..gfn + n as u64).collect();
        let gpfns: Vec<u64> = (WINDOW_GFN..WINDOW_GFN + n as u64).collect();
        let mut errs = alloc::vec![0i32; n];
        let rc = control::map_foreign(id, &idxs, &gpfns, &mut errs);
        let mapped = rc == 0 && errs.iter().all(|&e| e == 0);
        if mapped {
            // The part of `bytes` that falls in these frames.
            let from = (gfn * FRAME).max(gpa);
            let to = ((gfn + n as u64) * FRAME).min(gpa + bytes.len() as u64);
            let src = &bytes[(from - gpa) as usize..(to - gpa) as usize];
            let dst = (WINDOW_GFN * FRAME + (from - gfn * FRAME)) as *mut u8;
            for (i, b) in src.iter().enumerate() {
                // SAFETY: the window's frames are mapped (checked above) at these
                // addresses, which the runtime maps one to one; the domain does not run.
                unsafe { dst.add(i).write_volatile(*b) };
            }
        }
        for (k, e) in errs.iter().enumerate() {
            if rc == 0 && *e == 0 {
                control::unmap(WINDOW_GFN + k as u64);
            }
        }
        if !mapped {
            return Err(format!(
                "mapping its frames at {:#x} failed (rc={rc})",
                gfn * FRAME
            ));
        }
        gfn += n as u64;
    }
    Ok(())
}
