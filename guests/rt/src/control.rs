//! The control interface of a privileged domain: `domctl` and `sysctl` with Xen 4.17's
//! interface versions, over whole `xen_domctl`/`xen_sysctl` structures (the builder
//! test guest and the control domain both call them).

use oxen_abi::{domctl, hypercall as nr, sysctl};

use crate::hypercall::hypercall;

/// `domctl(cmd)` on `domain` with `payload` as the start of its union; the result and
/// the structure as the hypervisor left it.
pub fn domctl(cmd: u32, domain: u16, payload: &[u8]) -> (i64, [u8; domctl::SIZE]) {
    use domctl::offset;
    let mut op = [0u8; domctl::SIZE];
    op[offset::CMD..][..4].copy_from_slice(&cmd.to_le_bytes());
    op[offset::INTERFACE_VERSION..][..4].copy_from_slice(&domctl::INTERFACE_VERSION.to_le_bytes());
    op[offset::DOMAIN..][..2].copy_from_slice(&domain.to_le_bytes());
    let n = payload.len().min(domctl::SIZE - offset::U);
    op[offset::U..][..n].copy_from_slice(&payload[..n]);
    // SAFETY: `op` is a whole xen_domctl the hypervisor may read and write.
    let rc = unsafe { hypercall(nr::DOMCTL, op.as_mut_ptr() as u64, 0, 0, 0, 0) };
    (rc, op)
}

/// `sysctl(cmd)` with `payload` as the start of its union.
pub fn sysctl(cmd: u32, payload: &[u8]) -> (i64, [u8; sysctl::SIZE]) {
    use sysctl::offset;
    let mut op = [0u8; sysctl::SIZE];
    op[offset::CMD..][..4].copy_from_slice(&cmd.to_le_bytes());
    op[offset::INTERFACE_VERSION..][..4].copy_from_slice(&sysctl::INTERFACE_VERSION.to_le_bytes());
    let n = payload.len().min(sysctl::SIZE - offset::U);
    op[offset::U..][..n].copy_from_slice(&payload[..n]);
    // SAFETY: `op` is a whole xen_sysctl the hypervisor may read and write.
    let rc = unsafe { hypercall(nr::SYSCTL, op.as_mut_ptr() as u64, 0, 0, 0, 0) };
    (rc, op)
}

/// `getdomaininfo` of the first domain with an id at least `domid`.
pub fn domain_info(domid: u16) -> Result<domctl::DomainInfo, i64> {
    match domctl(domctl::cmd::GETDOMAININFO, domid, &[]) {
        (0, op) => domctl::DomainInfo::from_bytes(&op[domctl::offset::U..]).ok_or(-14),
        (e, _) => Err(e),
    }
}

/// `physinfo`.
pub fn physinfo() -> Result<sysctl::PhysInfo, i64> {
    match sysctl(sysctl::cmd::PHYSINFO, &[]) {
        (0, op) => sysctl::PhysInfo::from_bytes(&op[sysctl::offset::U..]).ok_or(-14),
        (e, _) => Err(e),
    }
}

/// `getvcpuinfo` of vCPU `vcpu` of `domid`.
pub fn vcpu_info(domid: u16, vcpu: u32) -> Result<domctl::GetVcpuInfo, i64> {
    let g = domctl::GetVcpuInfo {
        vcpu,
        ..domctl::GetVcpuInfo::default()
    };
    match domctl(domctl::cmd::GETVCPUINFO, domid, &g.to_bytes()) {
        (0, op) => domctl::GetVcpuInfo::from_bytes(&op[domctl::offset::U..]).ok_or(-14),
        (e, _) => Err(e),
    }
}

/// `setvcpuaffinity` (to `mask`) or `getvcpuaffinity` (`cmd`) of a vCPU's hard
/// affinity; the effective map that comes back.
pub fn affinity(cmd: u32, domid: u16, vcpu: u32, mask: u64) -> Result<u64, i64> {
    let mut map = mask.to_le_bytes();
    let a = domctl::VcpuAffinity {
        vcpu,
        flags: domctl::affinity::HARD,
        cpumap_hard: domctl::CtlBitmap {
            bitmap: map.as_mut_ptr() as u64,
            nr_bits: 64,
            pad: 0,
        },
        ..domctl::VcpuAffinity::default()
    };
    match domctl(cmd, domid, &a.to_bytes()).0 {
        0 => Ok(u64::from_le_bytes(map)),
        e => Err(e),
    }
}

/// The credit scheduler's settings of cpupool 0 (`sysctl scheduler_op` getinfo), after
/// setting them first if `set` (putinfo): (time slice ms, rate limit µs, migration
/// delay µs).
pub fn pool_credit(set: Option<(u32, u32, u32)>) -> Result<(u32, u32, u32), i64> {
    use sysctl::{SchedulerOp, schedop};
    let op = |cmd: u32, (tslice_ms, ratelimit_us, vcpu_migr_delay_us): (u32, u32, u32)| {
        let o = SchedulerOp {
            cpupool_id: 0,
            sched_id: domctl::SCHEDULER_CREDIT,
            cmd,
            tslice_ms,
            ratelimit_us,
            vcpu_migr_delay_us,
            ..SchedulerOp::default()
        };
        let (rc, r) = sysctl(sysctl::cmd::SCHEDULER_OP, &o.to_bytes());
        let back = SchedulerOp::from_bytes(&r[sysctl::offset::U..]).unwrap_or_default();
        (
            rc,
            (back.tslice_ms, back.ratelimit_us, back.vcpu_migr_delay_us),
        )
    };
    if let Some(v) = set {
        match op(schedop::PUTINFO, v) {
            (0, got) => return Ok(got),
            (e, _) => return Err(e),
        }
    }
    match op(schedop::GETINFO, (0, 0, 0)) {
        (0, got) => Ok(got),
        (e, _) => Err(e),
    }
}

/// The credit scheduler's (weight, cap) of `domid` (`scheduler_op` getinfo), after
/// setting them first if `set` (putinfo; a 0 weight keeps the weight).
pub fn credit(domid: u16, set: Option<(u16, u16)>) -> Result<(u16, u16), i64> {
    use domctl::offset;
    let op = |cmd: u32, (weight, cap): (u16, u16)| {
        let mut u = [0u8; domctl::SIZE - offset::U];
        let mut put = |at: usize, v: &[u8]| u[at - offset::U..][..v.len()].copy_from_slice(v);
        put(offset::SCHED_ID, &domctl::SCHEDULER_CREDIT.to_le_bytes());
        put(offset::SCHED_CMD, &cmd.to_le_bytes());
        put(offset::CREDIT_WEIGHT, &weight.to_le_bytes());
        put(offset::CREDIT_CAP, &cap.to_le_bytes());
        domctl(domctl::cmd::SCHEDULER_OP, domid, &u)
    };
    if let Some(v) = set {
        match op(domctl::SCHEDOP_PUTINFO, v).0 {
            0 => {}
            e => return Err(e),
        }
    }
    match op(domctl::SCHEDOP_GETINFO, (0, 0)) {
        (0, r) => Ok((
            u16::from_le_bytes([r[offset::CREDIT_WEIGHT], r[offset::CREDIT_WEIGHT + 1]]),
            u16::from_le_bytes([r[offset::CREDIT_CAP], r[offset::CREDIT_CAP + 1]]),
        )),
        (e, _) => Err(e),
    }
}

/// `memory_op(cmd, arg)` over the bytes of its argument structure.
pub fn memory_op(cmd: u32, arg: &mut [u8]) -> i64 {
    // SAFETY: `arg` is the call's whole argument structure, which the hypervisor may
    // read and write; the lists it points to are the caller's (see each wrapper).
    unsafe {
        hypercall(
            nr::MEMORY_OP,
            u64::from(cmd),
            arg.as_mut_ptr() as u64,
            0,
            0,
            0,
        )
    }
}

/// `XENMEM_populate_physmap` of `domid`: extents of `2^order` frames at `gfns`; the
/// extents done.
pub fn populate(domid: u16, gfns: &[u64], order: u32) -> i64 {
    let mut r = oxen_abi::memory::MemoryReservation {
        extent_start: gfns.as_ptr() as u64,
        nr_extents: gfns.len() as u64,
        extent_order: order,
        domid,
        ..Default::default()
    }
    .to_bytes();
    memory_op(oxen_abi::memory::POPULATE_PHYSMAP, &mut r)
}

/// `XENMEM_add_to_physmap_batch` with `XENMAPSPACE_gmfn_foreign`: `target`'s frames
/// `idxs` at our `gpfns`; each frame's result goes to `errs` (as long as `idxs`).
pub fn map_foreign(target: u16, idxs: &[u64], gpfns: &[u64], errs: &mut [i32]) -> i64 {
    let n = idxs.len().min(gpfns.len()).min(errs.len());
    let mut b = oxen_abi::memory::AddToPhysmapBatch {
        domid: oxen_abi::evtchn::DOMID_SELF,
        space: oxen_abi::memory::MAPSPACE_GMFN_FOREIGN as u16,
        size: n as u16,
        foreign_domid: target,
        idxs: idxs.as_ptr() as u64,
        gpfns: gpfns.as_ptr() as u64,
        errs: errs.as_mut_ptr() as u64,
    }
    .to_bytes();
    memory_op(oxen_abi::memory::ADD_TO_PHYSMAP_BATCH, &mut b)
}

/// `XENMEM_remove_from_physmap` of our frame `gpfn` (a foreign map goes away).
pub fn unmap(gpfn: u64) -> i64 {
    let mut r = oxen_abi::memory::RemoveFromPhysmap {
        domid: oxen_abi::evtchn::DOMID_SELF,
        gpfn,
        ..Default::default()
    }
    .to_bytes();
    memory_op(oxen_abi::memory::REMOVE_FROM_PHYSMAP, &mut r)
}

/// Writes `bytes` at guest-physical `gpa` of `target` (a domain being built, which
/// does not run), mapping its frames at ours from `window` on (`frames` of them: holes
/// below 1 GiB, which the runtime maps one to one), a batch at a time. On failure, the
/// first gfn of the batch that could not be mapped and the hypercall's result.
pub fn write_foreign(
    target: u16,
    gpa: u64,
    bytes: &[u8],
    window: u64,
    frames: usize,
) -> Result<(), (u64, i64)> {
    const FRAME: u64 = 4096;
    const BATCH: usize = 256;
    let frames = frames.min(BATCH);
    if frames == 0 || window == 0 || window + frames as u64 > (1 << 30) / FRAME {
        return Err((gpa / FRAME, -22));
    }
    let end = gpa + bytes.len() as u64;
    let mut gfn = gpa / FRAME;
    while gfn < end.div_ceil(FRAME) {
        let n = ((end.div_ceil(FRAME) - gfn) as usize).min(frames);
        let mut idxs = [0u64; BATCH];
        let mut gpfns = [0u64; BATCH];
        for k in 0..n {
            idxs[k] = gfn + k as u64;
            gpfns[k] = window + k as u64;
        }
        let mut errs = [0i32; BATCH];
        let rc = map_foreign(target, &idxs[..n], &gpfns[..n], &mut errs[..n]);
        let mapped = rc == 0 && errs[..n].iter().all(|&e| e == 0);
        if mapped {
            // The part of `bytes` that falls in these frames.
            let from = (gfn * FRAME).max(gpa);
            let to = ((gfn + n as u64) * FRAME).min(end);
            let src = &bytes[(from - gpa) as usize..(to - gpa) as usize];
            let dst = (window * FRAME + (from - gfn * FRAME)) as *mut u8;
            for (i, b) in src.iter().enumerate() {
                // SAFETY: the window's `n` frames are mapped (checked above) below 1 GiB
                // (checked at the top), which the runtime maps one to one, and `from..to`
                // lies within them; nobody else uses the window.
                unsafe { dst.add(i).write_volatile(*b) };
            }
        }
        for (k, e) in errs[..n].iter().enumerate() {
            if rc == 0 && *e == 0 {
                unmap(window + k as u64);
            }
        }
        if !mapped {
            return Err((
                gfn,
                if rc != 0 {
                    rc
                } else {
                    i64::from(errs[..n].iter().copied().find(|&e| e != 0).unwrap_or(0))
                },
            ));
        }
        gfn += n as u64;
    }
    Ok(())
}

/// One frame of another domain mapped into ours (`XENMAPSPACE_gmfn_foreign`) at a
/// frame of our own below 1 GiB (which the runtime maps one to one), read and written
/// only through bounds-checked volatile accesses: the other domain changes it at any
/// time. Dropping it takes the mapping away.
pub struct ForeignFrame {
    gpfn: u64,
}

impl ForeignFrame {
    /// Maps `target`'s frame `gfn` at our `gpfn`, which must be one of ours that holds
    /// nothing (a hole above our RAM): what was there is replaced. `None` if the
    /// hypervisor refuses, or `gpfn` is not below 1 GiB.
    pub fn map(target: u16, gfn: u64, gpfn: u64) -> Option<Self> {
        if gpfn == 0 || gpfn >= (1 << 30) / 4096 {
            return None;
        }
        let mut err = [0i32; 1];
        let rc = map_foreign(target, &[gfn], &[gpfn], &mut err);
        (rc == 0 && err[0] == 0).then_some(Self { gpfn })
    }

    fn at(&self, off: usize, size: usize) -> *mut u8 {
        assert!(
            off + size <= 4096 && off.is_multiple_of(size),
            "ForeignFrame access at {off}"
        );
        (self.gpfn * 4096 + off as u64) as *mut u8
    }

    /// The byte at `off`.
    pub fn read_u8(&self, off: usize) -> u8 {
        // SAFETY: the frame is mapped at `gpfn` (checked in `map`), inside the first GiB
        // the runtime maps one to one; `at` keeps the access inside it.
        unsafe { self.at(off, 1).read_volatile() }
    }

    /// Stores `v` at `off`.
    pub fn write_u8(&self, off: usize, v: u8) {
        // SAFETY: as in `read_u8`.
        unsafe { self.at(off, 1).write_volatile(v) }
    }

    /// The aligned `u32` at `off`.
    pub fn read_u32(&self, off: usize) -> u32 {
        // SAFETY: as in `read_u8`; `at` checks the alignment.
        unsafe { self.at(off, 4).cast::<u32>().read_volatile() }
    }

    /// Stores `v` at the aligned `off`.
    pub fn write_u32(&self, off: usize, v: u32) {
        // SAFETY: as in `read_u32`.
        unsafe { self.at(off, 4).cast::<u32>().write_volatile(v) }
    }
}

impl Drop for ForeignFrame {
    fn drop(&mut self) {
        unmap(self.gpfn);
    }
}

/// The `sethvmcontext` record stream for one vCPU: header, `cpu` as vCPU 0's CPU
/// record, end.
pub fn hvm_context(
    cpu: &oxen_abi::hvm_save::HwCpu,
    magic: u32,
) -> [u8; oxen_abi::hvm_save::ONE_CPU_STREAM_SIZE] {
    oxen_abi::hvm_save::one_cpu_stream(cpu, magic)
}

/// `sethvmcontext` of `domid` with the record stream `buf`.
pub fn set_context(domid: u16, buf: &[u8]) -> i64 {
    let b = domctl::HvmContextBuf {
        size: buf.len() as u32,
        pad: 0,
        buffer: buf.as_ptr() as u64,
    };
    domctl(domctl::cmd::SETHVMCONTEXT, domid, &b.to_bytes()).0
}
