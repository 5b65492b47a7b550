//! The domain builder of `xl create`, as Xen's lives in its control domain: reads an
//! `xl.cfg` (with `key=value` overrides), lays the kernel out with the code the
//! hypervisor's boot builder uses (`oxen_core::pvh::plan`), creates the domain, gives it
//! memory, writes the plan into it, sets vCPU 0's registers, its scheduling parameters
//! and affinity, introduces it to the store and its console to dom0, and unpauses it.
//! A build that fails after the domain exists destroys it and releases what was set up
//! for it.
//!
//! Everything the builder asks of the hypervisor goes through [`Control`] and of the
//! rest of dom0 through [`Services`], so the steps are host-tested against fakes; dom0
//! implements both with hypercalls, its store and its consoles.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use oxen_abi::domctl::{CreateDomain, cdf};
use oxen_abi::hvm_save::{self, HwCpu};
use oxen_core::config::DomainConfig;
use oxen_core::pvh::{self, PlanError};

use crate::store::DomainFacts;

/// What the builder asks of the hypervisor (domctl and memory_op, as Xen's libxc).
pub trait Control {
    /// `XEN_DOMCTL_createdomain`: the new domain's id.
    fn create_domain(&mut self, create: &CreateDomain) -> Result<u16, i64>;
    /// `XEN_DOMCTL_max_mem` in KiB.
    fn max_mem(&mut self, id: u16, kib: u64) -> Result<(), i64>;
    /// `XENMEM_populate_physmap`: extents of `2^order` frames at `gfns`; how many were
    /// populated.
    fn populate(&mut self, id: u16, gfns: &[u64], order: u32) -> usize;
    /// Writes `bytes` at guest-physical `gpa` of the (paused) domain.
    fn write(&mut self, id: u16, gpa: u64, bytes: &[u8]) -> Result<(), String>;
    /// `XEN_DOMCTL_sethvmcontext` with a record stream.
    fn set_context(&mut self, id: u16, stream: &[u8]) -> Result<(), i64>;
    /// `XEN_DOMCTL_scheduler_op` putinfo for the credit scheduler.
    fn set_credit(&mut self, id: u16, weight: u16, cap: u16) -> Result<(), i64>;
    /// `XEN_DOMCTL_setvcpuaffinity` (hard affinity) of one vCPU.
    fn set_affinity(&mut self, id: u16, vcpu: u32, mask: u64) -> Result<(), i64>;
    /// `XEN_DOMCTL_unpausedomain`.
    fn unpause(&mut self, id: u16) -> Result<(), i64>;
    /// `XEN_DOMCTL_destroydomain`.
    fn destroy(&mut self, id: u16);
}

/// What the builder asks of the rest of the control domain.
pub trait Services {
    /// Writes the domain's store nodes and connects its ring (page at `store_gfn`).
    fn introduce(&mut self, facts: &DomainFacts<'_>, store_gfn: u64) -> Result<(), String>;
    /// Takes over the domain's console.
    fn serve_console(&mut self, id: u16, name: &str) -> Result<(), String>;
    /// Forgets the domain's store nodes, ring and console (a failed build).
    fn release(&mut self, id: u16);
}

/// An `xl create` request.
pub struct Request<'a> {
    /// The configuration file, as named on the command line.
    pub path: &'a str,
    /// `key=value` lines that follow the file's.
    pub overrides: &'a [&'a str],
    /// `-p`: leave the domain paused.
    pub paused: bool,
    /// The UUID for a configuration without one (Xen's toolstack makes one up).
    pub fallback_uuid: [u8; 16],
}

/// The files the builder reads: configurations by path, kernels and ramdisks by
/// `/images/NAME`.
pub trait Files {
    fn get(&self, path: &str) -> Option<&[u8]>;
}

/// Limits of a new domain that `xl.cfg` does not set (libxl's defaults for PVH).
const MAX_EVTCHN_PORT: u32 = 1023;
const MAX_GRANT_FRAMES: i32 = 32;
const MAX_MAPTRACK_FRAMES: i32 = 1024;

/// A domain that was built.
#[derive(Debug)]
pub struct Built {
    pub id: u16,
    pub cfg: DomainConfig,
    /// Its UUID (the configuration's, or the request's fallback).
    pub uuid: [u8; 16],
}

/// Builds the domain `request` describes; `taken` says whether a name is in use.
/// Returns what was built, or the one line `xl` prints.
pub fn create(
    request: &Request<'_>,
    files: &dyn Files,
    taken: &dyn Fn(&str) -> bool,
    control: &mut dyn Control,
    services: &mut dyn Services,
) -> Result<Built, String> {
    let path = request.path;
    let text = files
        .get(path)
        .and_then(|b| core::str::from_utf8(b).ok())
        .ok_or_else(|| format!("xl create: {path}: no such configuration file"))?;
    let mut all = String::from(text);
    for o in request.overrides {
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
    let plan = pvh::plan(
        kernel,
        ramdisk,
        cfg.memory_mib << 20,
        (cfg.vcpus, cfg.maxvcpus),
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
    let uuid = cfg.uuid.unwrap_or(request.fallback_uuid);
    let id = control
        .create_domain(&create_domain(&cfg, &uuid))
        .map_err(|rc| format!("xl create: createdomain failed (rc={rc})"))?;
    match fill(id, &cfg, &uuid, &plan, request.paused, control, services) {
        Ok(()) => Ok(Built { id, cfg, uuid }),
        Err(e) => {
            services.release(id);
            control.destroy(id);
            Err(format!(
                "xl create: {}: {e} (the domain was destroyed)",
                cfg.name
            ))
        }
    }
}

/// `createdomain`'s arguments: an HVM domain with HAP, the handle from the UUID.
fn create_domain(cfg: &DomainConfig, handle: &[u8; 16]) -> CreateDomain {
    let word =
        |i: usize| u32::from_le_bytes([handle[i], handle[i + 1], handle[i + 2], handle[i + 3]]);
    CreateDomain {
        handle0: word(0),
        handle1: word(4),
        handle2: word(8),
        handle3: word(12),
        flags: cdf::HVM | cdf::HAP,
        max_vcpus: cfg.maxvcpus,
        max_evtchn_port: MAX_EVTCHN_PORT,
        max_grant_frames: MAX_GRANT_FRAMES,
        max_maptrack_frames: MAX_MAPTRACK_FRAMES,
        ..CreateDomain::default()
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
        max_vcpus: cfg.maxvcpus,
    }
}

/// The `max_mem` of a domain: up to `maxmem`, and the special pages beyond it (as
/// libxl's slack above the target).
pub fn max_mem_kib(cfg: &DomainConfig) -> u64 {
    cfg.maxmem_mib * 1024 + pvh::RESERVED_PAGES * 4
}

/// Memory, contents, registers, scheduling; then the unpause.
fn fill(
    id: u16,
    cfg: &DomainConfig,
    uuid: &[u8; 16],
    plan: &pvh::Plan<'_>,
    paused: bool,
    control: &mut dyn Control,
    services: &mut dyn Services,
) -> Result<(), String> {
    control
        .max_mem(id, max_mem_kib(cfg))
        .map_err(|rc| format!("max_mem failed (rc={rc})"))?;
    // `memory` now: 2 MiB extents, then single frames for the rest.
    let frames = cfg.memory_mib * 256;
    let big: Vec<u64> = (0..frames / 512).map(|i| i * 512).collect();
    let small: Vec<u64> = (frames / 512 * 512..frames).collect();
    for (gfns, order) in [(&big, 9), (&small, 0)] {
        if !gfns.is_empty() && control.populate(id, gfns, order) != gfns.len() {
            return Err(format!(
                "populate_physmap could not give it {} MiB",
                cfg.memory_mib
            ));
        }
    }
    // The XenStore page, in the reserved range above RAM.
    let store_gfn = pvh::store_gfn(0);
    if control.populate(id, &[store_gfn], 0) != 1 {
        return Err(String::from(
            "populate_physmap could not give it a store page",
        ));
    }
    let uuid = oxen_core::config::format_uuid(uuid);
    services.introduce(&facts(id, cfg, &uuid), store_gfn)?;
    services.serve_console(id, &cfg.name)?;
    for (gpa, bytes) in &plan.writes {
        control.write(id, *gpa, bytes)?;
    }
    let cpu = HwCpu::pvh(u64::from(plan.entry), plan.start_info);
    control
        .set_context(id, &hvm_save::one_cpu_stream(&cpu, hvm_save::FILE_MAGIC))
        .map_err(|rc| format!("sethvmcontext failed (rc={rc})"))?;
    let defaults = (cfg.weight, cfg.cap) == (256, 0);
    if !defaults && control.set_credit(id, cfg.weight, cfg.cap as u16).is_err() {
        return Err(format!(
            "weight {} and cap {} are refused",
            cfg.weight, cfg.cap
        ));
    }
    if cfg.affinity != u64::MAX {
        for v in 0..cfg.maxvcpus {
            control
                .set_affinity(id, v, cfg.affinity)
                .map_err(|rc| format!("cpus {:#x} refused (rc={rc})", cfg.affinity))?;
        }
    }
    if !paused {
        control
            .unpause(id)
            .map_err(|rc| format!("unpausedomain failed (rc={rc})"))?;
    }
    Ok(())
}
