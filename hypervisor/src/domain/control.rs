//! The control hypercalls for privileged domains, with Xen 4.17's numbers and layouts:
//! `domctl` (create, destroy, pause, unpause and read back domains, give them memory
//! limits, vCPU 0's registers, a handle, and the credit scheduler's parameters) and
//! `sysctl` (the list of domains, the machine, the scheduler, debug keys). Every other
//! command is -ENOSYS. An unprivileged caller gets -EPERM, a wrong interface version
//! -EACCES, before anything else is read.
#![deny(unsafe_code)]

use alloc::vec;
use core::sync::atomic::Ordering;

use oxen_abi::domctl::{self, CreateDomain, DomainInfo, HvmContextBuf, cdf, dominf, offset};
use oxen_abi::errno::{
    EACCES, EBUSY, EEXIST, EFAULT, EINVAL, ENOMEM, ENOSPC, ENOSYS, EPERM, ESRCH,
};
use oxen_abi::hvm_save::{self, Descriptor, Header, HwCpu};
use oxen_abi::sched_op;
use oxen_abi::sysctl::{self, DebugKeys, GetDomainInfoList, PhysInfo, physcap};
use oxen_core::frames::FRAME_SIZE;
use oxen_core::sched::VcpuState;
use oxen_core::vcpu_state::StartState;

use super::hypercall::{copy_from_guest, copy_to_guest};
use super::lifecycle::{self, CreateError, CreateParams};
use super::sched as glue;
use super::vcpu::Vcpu;
use super::{Domain, DomainState, registry};
use crate::arch::percpu;
use crate::mm::frames;

/// Most vCPUs a domain created at run time may have.
const MAX_VCPUS: u32 = 64;
/// Largest `sethvmcontext` buffer taken (a header, 64 CPU records and an end record
/// fit).
const MAX_HVM_CONTEXT: u32 = 72 * 1024;
/// Most domains one `getdomaininfolist` returns.
const MAX_LIST: u32 = 1024;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The control structure at `ptr` for a privileged caller: -EPERM for others (before
/// anything is read), -EACCES unless its interface version (the word at `version_at`)
/// is `version`.
fn read_op<const N: usize>(
    vcpu: &Vcpu,
    ptr: u64,
    version_at: usize,
    version: u32,
) -> Result<[u8; N], i64> {
    if !vcpu.domain.privileged {
        return Err(-EPERM);
    }
    let mut op = [0u8; N];
    copy_from_guest(vcpu, ptr, &mut op)?;
    if u32_at(&op, version_at) != version {
        return Err(-EACCES);
    }
    Ok(op)
}

/// A command's result: on success the structure goes back to the caller (it carries
/// the answer), then 0.
fn write_back(vcpu: &Vcpu, ptr: u64, op: &[u8], result: Result<(), i64>) -> i64 {
    match result.and_then(|()| copy_to_guest(vcpu, ptr, op)) {
        Ok(()) => 0,
        Err(e) => e,
    }
}

/// `domctl(struct xen_domctl *)`.
pub fn domctl(vcpu: &mut Vcpu, ptr: u64) -> i64 {
    let mut op = match read_op::<{ domctl::SIZE }>(
        vcpu,
        ptr,
        offset::INTERFACE_VERSION,
        domctl::INTERFACE_VERSION,
    ) {
        Ok(op) => op,
        Err(e) => return e,
    };
    let me = vcpu.domain.id;
    let target = u32::from(u16_at(&op, offset::DOMAIN));
    let result = match u32_at(&op, offset::CMD) {
        domctl::cmd::CREATEDOMAIN => create(&mut op, me),
        // As Xen: the first domain with an id at least the one asked for.
        domctl::cmd::GETDOMAININFO => match registry::from(target, 1).first() {
            Some(d) => {
                op[offset::DOMAIN..][..2].copy_from_slice(&(d.id as u16).to_le_bytes());
                op[offset::U..][..DomainInfo::SIZE].copy_from_slice(&info(d).to_bytes());
                Ok(())
            }
            None => Err(-ESRCH),
        },
        domctl::cmd::SCHEDULER_OP => scheduler_op(&mut op),
        cmd => match registry::by_id(target) {
            None => Err(-ESRCH),
            Some(d) => on_domain(vcpu, cmd, &d, &mut op),
        },
    };
    write_back(vcpu, ptr, &op, result)
}

/// The commands on one existing domain `d`.
fn on_domain(
    vcpu: &Vcpu,
    cmd: u32,
    d: &alloc::sync::Arc<Domain>,
    op: &mut [u8],
) -> Result<(), i64> {
    let me = vcpu.domain.id;
    let u = &op[offset::U..];
    match cmd {
        domctl::cmd::DESTROYDOMAIN => {
            // As Xen: not itself; and a domain being destroyed is destroyed already.
            if d.id == me {
                return Err(-EINVAL);
            }
            lifecycle::destroy(d, me);
            Ok(())
        }
        domctl::cmd::PAUSEDOMAIN => {
            if d.id == me {
                return Err(-EINVAL);
            }
            if !d.running() {
                return Err(-EINVAL);
            }
            lifecycle::pause(d);
            Ok(())
        }
        domctl::cmd::UNPAUSEDOMAIN => {
            if d.id == me || !d.running() {
                return Err(-EINVAL);
            }
            lifecycle::unpause(d).map_err(|_| -EINVAL)
        }
        domctl::cmd::MAX_MEM => {
            let pages = u64_at(u, 0) / (FRAME_SIZE / 1024);
            // As Xen: not below what it has.
            if pages < d.ram_frames() {
                return Err(-EINVAL);
            }
            d.max_pages.store(pages, Ordering::Release);
            Ok(())
        }
        domctl::cmd::MAX_VCPUS => {
            // A domain's vCPUs are fixed by createdomain (as in Xen 4.17); asking for
            // that number again is fine.
            let have = d.vcpus.get().map_or(0, |v| v.len() as u32);
            if u32_at(u, 0) == have {
                Ok(())
            } else {
                Err(-EINVAL)
            }
        }
        domctl::cmd::SETDOMAINHANDLE => {
            d.handle.lock().copy_from_slice(&u[..16]);
            Ok(())
        }
        domctl::cmd::GETVCPUINFO => {
            let mut g = domctl::GetVcpuInfo::from_bytes(u).ok_or(-EFAULT)?;
            let slot = d.vcpu(u64::from(g.vcpu)).ok_or(-EINVAL)?.clone();
            let (info, stats) = glue::with(|s| {
                s.sync(crate::arch::time::now());
                (s.vcpu_info(slot.sched).ok(), glue::vcpu_stats(s, &slot))
            });
            g.online = u8::from(slot.up.load(Ordering::Acquire));
            g.running = u8::from(info.is_some_and(|i| i.state == VcpuState::Running));
            g.blocked = u8::from(info.is_some_and(|i| i.state == VcpuState::Blocked));
            g.cpu_time = stats.map_or(0, |st| st.run_ns);
            g.cpu = info.map_or(0, |i| i.cpu as u32);
            op[offset::U..][..domctl::GetVcpuInfo::SIZE].copy_from_slice(&g.to_bytes());
            Ok(())
        }
        domctl::cmd::SETVCPUAFFINITY | domctl::cmd::GETVCPUAFFINITY => {
            let a = domctl::VcpuAffinity::from_bytes(u).ok_or(-EFAULT)?;
            let slot = d.vcpu(u64::from(a.vcpu)).ok_or(-EINVAL)?.clone();
            if a.flags & (domctl::affinity::HARD | domctl::affinity::SOFT) == 0 {
                return Err(-EINVAL);
            }
            if cmd == domctl::cmd::SETVCPUAFFINITY && a.flags & domctl::affinity::HARD != 0 {
                let mask = read_cpumap(vcpu, &a.cpumap_hard)?;
                let now = crate::arch::time::now();
                let r =
                    glue::with(|s| s.set_affinity(slot.sched, mask, now)).map_err(|_| -EINVAL)?;
                glue::kick_one(r);
            }
            // Both directions give back the effective maps; oxen has no soft affinity,
            // so the soft map is every pCPU.
            let hard = glue::with(|s| s.vcpu_info(slot.sched).map(|i| i.affinity)).unwrap_or(0);
            if a.flags & domctl::affinity::HARD != 0 {
                write_cpumap(vcpu, &a.cpumap_hard, hard)?;
            }
            if a.flags & domctl::affinity::SOFT != 0 {
                write_cpumap(vcpu, &a.cpumap_soft, super::run::usable_cpus())?;
            }
            Ok(())
        }
        domctl::cmd::SETTIMEOFFSET => {
            let secs = u64_at(u, 0) as i64;
            d.time_offset.store(secs, Ordering::Release);
            super::event::write_wallclock(d);
            Ok(())
        }
        domctl::cmd::GETHVMCONTEXT => {
            // As Xen: not on the caller itself (it could not be paused).
            if d.id == me {
                return Err(-EINVAL);
            }
            let mut b = HvmContextBuf::from_bytes(u).ok_or(-EFAULT)?;
            let context = get_hvm_context(d)?;
            let need = context.len() as u32;
            // A null buffer asks for the size only.
            if b.buffer != 0 {
                if b.size < need {
                    return Err(-ENOSPC);
                }
                copy_to_guest(vcpu, b.buffer, &context)?;
            }
            b.size = need;
            op[offset::U..][..HvmContextBuf::SIZE].copy_from_slice(&b.to_bytes());
            Ok(())
        }
        domctl::cmd::SETHVMCONTEXT => {
            if d.id == me {
                return Err(-EINVAL);
            }
            let b = HvmContextBuf::from_bytes(u).ok_or(-EFAULT)?;
            if b.size > MAX_HVM_CONTEXT {
                return Err(-EINVAL);
            }
            let mut buf = vec![0u8; b.size as usize];
            copy_from_guest(vcpu, b.buffer, &mut buf)?;
            set_hvm_context(d, &buf)
        }
        _ => Err(-ENOSYS),
    }
}

/// A `xenctl_bitmap` of pCPUs from the caller (bits beyond the 64 oxen has are
/// ignored).
fn read_cpumap(vcpu: &Vcpu, m: &domctl::CtlBitmap) -> Result<u64, i64> {
    let bytes = (m.nr_bits as usize).div_ceil(8).min(8);
    let mut b = [0u8; 8];
    copy_from_guest(vcpu, m.bitmap, &mut b[..bytes])?;
    let mut mask = u64::from_le_bytes(b);
    if m.nr_bits < 64 {
        mask &= (1u64 << m.nr_bits) - 1;
    }
    Ok(mask)
}

/// Writes `mask` into the caller's `xenctl_bitmap` (as many bytes as it has bits for).
fn write_cpumap(vcpu: &Vcpu, m: &domctl::CtlBitmap, mask: u64) -> Result<(), i64> {
    let bytes = (m.nr_bits as usize).div_ceil(8).min(8);
    copy_to_guest(vcpu, m.bitmap, &mask.to_le_bytes()[..bytes])
}

/// `XEN_DOMCTL_createdomain`: the new domain's id goes back in `op.domain`.
fn create(op: &mut [u8], me: u32) -> Result<(), i64> {
    let c = CreateDomain::from_bytes(&op[offset::U..]).ok_or(-EFAULT)?;
    // oxen builds HVM (PVH) domains with hardware-assisted paging, nothing else.
    let known = cdf::HVM | cdf::HAP | cdf::S3_INTEGRITY | cdf::OOS_OFF | cdf::XS_DOMAIN;
    if c.flags & !known != 0 || c.flags & cdf::HVM == 0 {
        return Err(-EINVAL);
    }
    if c.max_vcpus == 0 || c.max_vcpus > MAX_VCPUS {
        return Err(-EINVAL);
    }
    let mut handle = [0u8; 16];
    for (i, w) in [c.handle0, c.handle1, c.handle2, c.handle3]
        .iter()
        .enumerate()
    {
        handle[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
    let params = CreateParams {
        domid: u32::from(u16_at(op, offset::DOMAIN)),
        max_vcpus: c.max_vcpus,
        handle,
        by: me,
    };
    let d = lifecycle::create(&params).map_err(|e| match e {
        CreateError::Id(registry::IdError::Taken) => -EEXIST,
        CreateError::Id(registry::IdError::Reserved) => -EINVAL,
        CreateError::Id(registry::IdError::Exhausted) => -ENOMEM,
        CreateError::NoMemory(why) => {
            log::warn!("domctl: createdomain by domain {me}: {why}");
            -ENOMEM
        }
    })?;
    op[offset::DOMAIN..][..2].copy_from_slice(&(d.id as u16).to_le_bytes());
    Ok(())
}

/// Reads a `sethvmcontext` buffer: a header, then records until `END`; each CPU
/// record sets the state its vCPU starts in. Nothing changes unless all of it is good.
fn set_hvm_context(d: &Domain, buf: &[u8]) -> Result<(), i64> {
    let mut at = 0usize;
    let mut record = || -> Result<(Descriptor, &[u8]), i64> {
        let desc = Descriptor::from_bytes(buf.get(at..).ok_or(-EINVAL)?).ok_or(-EINVAL)?;
        let start = at + Descriptor::SIZE;
        let end = start.checked_add(desc.length as usize).ok_or(-EINVAL)?;
        let body = buf.get(start..end).ok_or(-EINVAL)?;
        at = end;
        Ok((desc, body))
    };
    let (desc, body) = record()?;
    let header = Header::from_bytes(body).ok_or(-EINVAL)?;
    if desc.typecode != hvm_save::code::HEADER || header.magic != hvm_save::FILE_MAGIC {
        return Err(-EINVAL);
    }
    let mut states = vec![];
    loop {
        let (desc, body) = record()?;
        match desc.typecode {
            hvm_save::code::END => break,
            hvm_save::code::CPU => {
                let slot = d.vcpu(u64::from(desc.instance)).ok_or(-EINVAL)?;
                let cpu = HwCpu::from_bytes(body).ok_or(-EINVAL)?;
                let state = StartState::from_hw_cpu(&cpu, d.phys_bits()).map_err(|why| {
                    log::debug!("domain {}: sethvmcontext refused: {why}", d.id);
                    -EINVAL
                })?;
                states.push((slot.clone(), state));
            }
            // Records oxen does not keep (LAPIC, MTRR, ...) are ignored.
            _ => {}
        }
    }
    if states.iter().any(|(s, _)| has_run(d, s)) {
        return Err(-EBUSY);
    }
    for (slot, state) in states {
        *slot.start.lock() = Some(state);
        slot.initialised.store(true, Ordering::Release);
    }
    Ok(())
}

/// Whether vCPU `slot` of `d` may have run: its registers are then in its VMCS, which
/// oxen's `sethvmcontext` and `gethvmcontext` do not reach yet (-EBUSY).
fn has_run(d: &Domain, slot: &super::sched::VcpuSlot) -> bool {
    d.ever_unpaused.load(Ordering::Acquire) && slot.up.load(Ordering::Acquire)
}

/// `d`'s context as `gethvmcontext` gives it: the header, one CPU record for each vCPU
/// (the state it will start in; zeros for one never initialised), the end record.
fn get_hvm_context(d: &Domain) -> Result<alloc::vec::Vec<u8>, i64> {
    let slots = d.vcpus.get().map_or(&[][..], |v| &v[..]);
    let mut out = vec![];
    let mut record = |typecode, instance: usize, body: &[u8]| {
        let desc = Descriptor {
            typecode,
            instance: instance as u16,
            length: body.len() as u32,
        };
        out.extend_from_slice(&desc.to_bytes());
        out.extend_from_slice(body);
    };
    let header = Header {
        magic: hvm_save::FILE_MAGIC,
        version: hvm_save::FILE_VERSION,
        gtsc_khz: (crate::arch::time::tsc_hz() / 1000) as u32,
        ..Header::default()
    };
    record(hvm_save::code::HEADER, 0, &header.to_bytes());
    for (i, slot) in slots.iter().enumerate() {
        if has_run(d, slot) {
            return Err(-EBUSY);
        }
        let cpu = slot
            .start
            .lock()
            .map_or(HwCpu::default(), |s| s.to_hw_cpu());
        record(hvm_save::code::CPU, i, &cpu.to_bytes());
    }
    record(hvm_save::code::END, 0, &[]);
    Ok(out)
}

/// What `getdomaininfo` says of `d`.
pub fn info(d: &Domain) -> DomainInfo {
    let mut flags = dominf::HVM_GUEST | dominf::HAP;
    let state = d.state.lock().clone();
    let code = match &state {
        DomainState::Shutdown("poweroff") => Some(sched_op::SHUTDOWN_POWEROFF),
        DomainState::Shutdown("reboot") => Some(sched_op::SHUTDOWN_REBOOT),
        DomainState::Shutdown("suspend") => Some(sched_op::SHUTDOWN_SUSPEND),
        DomainState::Shutdown("watchdog") => Some(sched_op::SHUTDOWN_WATCHDOG),
        DomainState::Shutdown(_) | DomainState::Crashed(_) => Some(sched_op::SHUTDOWN_CRASH),
        DomainState::Running | DomainState::Destroyed(_) => None,
    };
    if let Some(code) = code {
        flags |= dominf::SHUTDOWN | (code & dominf::SHUTDOWN_MASK) << dominf::SHUTDOWN_SHIFT;
    }
    if !d.running() && d.destroyed.load(Ordering::Acquire) {
        flags |= dominf::DYING;
    }
    if d.pause_count.load(Ordering::Acquire) > 0 {
        flags |= dominf::PAUSED;
    }
    let slots = d.vcpus.get().map(alloc::vec::Vec::as_slice).unwrap_or(&[]);
    let (run_ns, running, online) = glue::with(|s| {
        let now = crate::arch::time::now();
        s.sync(now);
        let run: u64 = slots
            .iter()
            .filter_map(|v| glue::vcpu_stats(s, v))
            .map(|st| st.run_ns)
            .sum();
        let running = slots.iter().any(|v| {
            s.vcpu_info(v.sched)
                .is_ok_and(|i| matches!(i.state, VcpuState::Running | VcpuState::Runnable))
        });
        // vCPU 0 of a domain not yet unpaused counts once it has its registers
        // (`sethvmcontext`): the first unpause brings it up, as Xen counts it online.
        let fresh = !d.ever_unpaused.load(Ordering::Acquire);
        let online = slots
            .iter()
            .filter(|v| {
                v.up.load(Ordering::Acquire)
                    || (fresh && v.index == 0 && v.initialised.load(Ordering::Acquire))
            })
            .count() as u32;
        (run, running, online)
    });
    // A paused domain is neither running nor blocked (unless a vCPU is still on its way
    // off a pCPU).
    let paused = flags & dominf::PAUSED != 0;
    if d.running() && (running || !paused) {
        flags |= if running {
            dominf::RUNNING
        } else {
            dominf::BLOCKED
        };
    }
    let h = *d.handle.lock();
    let word = |i: usize| u32::from_le_bytes(h[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    DomainInfo {
        domain: d.id as u16,
        flags,
        tot_pages: d.ram_frames(),
        max_pages: d.max_pages.load(Ordering::Acquire),
        shared_info_frame: d.shared_info / FRAME_SIZE,
        cpu_time: run_ns,
        nr_online_vcpus: online,
        max_vcpu_id: (slots.len() as u32).saturating_sub(1),
        handle0: word(0),
        handle1: word(1),
        handle2: word(2),
        handle3: word(3),
        gpaddr_bits: d.phys_bits(),
        ..DomainInfo::default()
    }
}

/// `XEN_DOMCTL_scheduler_op` for the credit scheduler: get or put weight and cap.
fn scheduler_op(op: &mut [u8; domctl::SIZE]) -> Result<(), i64> {
    let target = u32::from(u16_at(op, offset::DOMAIN));
    let domain = super::by_id(target).ok_or(-ESRCH)?;
    if !domain.running() {
        return Err(-ESRCH);
    }
    if u32_at(op, offset::SCHED_ID) != domctl::SCHEDULER_CREDIT {
        return Err(-EINVAL);
    }
    let info = glue::with(|s| s.domain_info(domain.sched)).map_err(|_| -ESRCH)?;
    match u32_at(op, offset::SCHED_CMD) {
        domctl::SCHEDOP_GETINFO => {
            op[offset::CREDIT_WEIGHT..][..2].copy_from_slice(&info.weight.to_le_bytes());
            let cap = u16::try_from(info.cap).unwrap_or(u16::MAX);
            op[offset::CREDIT_CAP..][..2].copy_from_slice(&cap.to_le_bytes());
            Ok(())
        }
        domctl::SCHEDOP_PUTINFO => {
            // As Xen: weight 0 keeps the weight; a cap above 100 per vCPU is refused.
            let weight = match u16_at(op, offset::CREDIT_WEIGHT) {
                0 => info.weight,
                w => w,
            };
            let cap = u32::from(u16_at(op, offset::CREDIT_CAP));
            if cap > 100 * info.vcpus as u32 {
                return Err(-EINVAL);
            }
            let now = crate::arch::time::now();
            let kicks = glue::with(|s| s.set_params(domain.sched, weight, cap, now))
                .map_err(|_| -EINVAL)?;
            glue::kick(kicks);
            log::info!(
                "sched: domain {} ({}): weight {weight}, cap {cap} (was {}, {})",
                domain.id,
                domain.name,
                info.weight,
                info.cap
            );
            Ok(())
        }
        _ => Err(-EINVAL),
    }
}

/// `XEN_SYSCTL_scheduler_op` on the one cpupool (0), whose scheduler is credit: put
/// then get, or get, its time slice, rate limit and migration delay.
fn scheduler_op_global(o: &mut sysctl::SchedulerOp) -> Result<(), i64> {
    use oxen_core::sched::CreditLimits;
    if o.cmd != sysctl::schedop::PUTINFO && o.cmd != sysctl::schedop::GETINFO {
        return Err(-EINVAL);
    }
    if o.cpupool_id != 0 {
        return Err(-ESRCH);
    }
    if o.sched_id != domctl::SCHEDULER_CREDIT {
        return Err(-EINVAL);
    }
    let now = glue::with(|s| {
        if o.cmd == sysctl::schedop::PUTINFO {
            let was = s.limits();
            let new = CreditLimits {
                tslice_ms: o.tslice_ms,
                ratelimit_us: o.ratelimit_us,
                migr_delay_us: o.vcpu_migr_delay_us,
            };
            s.set_limits(new).map_err(|_| -EINVAL)?;
            log::info!(
                "sched: tslice {} ms, ratelimit {} us, migration delay {} us (were {}, {}, {})",
                new.tslice_ms,
                new.ratelimit_us,
                new.migr_delay_us,
                was.tslice_ms,
                was.ratelimit_us,
                was.migr_delay_us
            );
        }
        Ok::<_, i64>(s.limits())
    })?;
    o.tslice_ms = now.tslice_ms;
    o.ratelimit_us = now.ratelimit_us;
    o.vcpu_migr_delay_us = now.migr_delay_us;
    Ok(())
}

/// `sysctl(struct xen_sysctl *)`.
pub fn sysctl(vcpu: &mut Vcpu, ptr: u64) -> i64 {
    let mut op = match read_op::<{ sysctl::SIZE }>(
        vcpu,
        ptr,
        sysctl::offset::INTERFACE_VERSION,
        sysctl::INTERFACE_VERSION,
    ) {
        Ok(op) => op,
        Err(e) => return e,
    };
    let u = sysctl::offset::U;
    let result = match u32_at(&op, sysctl::offset::CMD) {
        sysctl::cmd::GETDOMAININFOLIST => {
            let mut l = GetDomainInfoList::from_bytes(&op[u..]).ok_or(-EFAULT);
            match &mut l {
                Ok(l) => {
                    let list = registry::from(
                        u32::from(l.first_domain),
                        l.max_domains.min(MAX_LIST) as usize,
                    );
                    let mut r = Ok(());
                    for (i, d) in list.iter().enumerate() {
                        let at = l.buffer.wrapping_add((i * DomainInfo::SIZE) as u64);
                        if let Err(e) = copy_to_guest(vcpu, at, &info(d).to_bytes()) {
                            r = Err(e);
                            break;
                        }
                    }
                    l.num_domains = list.len() as u32;
                    r.map(|()| op[u..][..GetDomainInfoList::SIZE].copy_from_slice(&l.to_bytes()))
                }
                Err(e) => Err(*e),
            }
        }
        sysctl::cmd::PHYSINFO => {
            let st = frames::stats();
            let p = PhysInfo {
                threads_per_core: 1,
                cores_per_socket: percpu::count() as u32,
                nr_cpus: percpu::online() as u32,
                max_cpu_id: percpu::count() as u32 - 1,
                nr_nodes: 1,
                cpu_khz: (crate::arch::time::tsc_hz() / 1000) as u32,
                capabilities: physcap::HVM | physcap::HAP,
                total_pages: st.usable / FRAME_SIZE,
                free_pages: st.free / FRAME_SIZE,
                max_mfn: st.max_phys / FRAME_SIZE,
                ..PhysInfo::default()
            };
            op[u..][..PhysInfo::SIZE].copy_from_slice(&p.to_bytes());
            Ok(())
        }
        sysctl::cmd::GETCPUINFO => match sysctl::GetCpuInfo::from_bytes(&op[u..]) {
            Some(mut g) => {
                let n = (g.max_cpus as usize).min(percpu::count());
                let mut r = Ok(());
                for cpu in 0..n {
                    let idle = glue::with(|s| s.cpu_stats(cpu).map_or(0, |st| st.idle_ns));
                    let at = g.info.wrapping_add(8 * cpu as u64);
                    if let Err(e) = copy_to_guest(vcpu, at, &idle.to_le_bytes()) {
                        r = Err(e);
                        break;
                    }
                }
                g.nr_cpus = n as u32;
                r.map(|()| op[u..][..sysctl::GetCpuInfo::SIZE].copy_from_slice(&g.to_bytes()))
            }
            None => Err(-EFAULT),
        },
        sysctl::cmd::READCONSOLE => match sysctl::ReadConsole::from_bytes(&op[u..]) {
            Some(mut c) => {
                let mut buf = vec![0u8; (c.count as usize).min(16 * 1024)];
                let from = if c.incremental != 0 {
                    c.index as usize
                } else {
                    0
                };
                let (n, next) = crate::arch::serial::history(from, &mut buf, c.clear != 0);
                copy_to_guest(vcpu, c.buffer, &buf[..n]).map(|()| {
                    c.count = n as u32;
                    c.index = next as u32;
                    op[u..][..sysctl::ReadConsole::SIZE].copy_from_slice(&c.to_bytes());
                })
            }
            None => Err(-EFAULT),
        },
        sysctl::cmd::SCHEDULER_OP => match sysctl::SchedulerOp::from_bytes(&op[u..]) {
            Some(mut o) => scheduler_op_global(&mut o)
                .map(|()| op[u..][..sysctl::SchedulerOp::SIZE].copy_from_slice(&o.to_bytes())),
            None => Err(-EFAULT),
        },
        sysctl::cmd::SCHED_ID => {
            op[u..][..4].copy_from_slice(&domctl::SCHEDULER_CREDIT.to_le_bytes());
            Ok(())
        }
        sysctl::cmd::DEBUG_KEYS => match DebugKeys::from_bytes(&op[u..]) {
            Some(k) if k.nr_keys <= 64 => {
                let mut keys = vec![0u8; k.nr_keys as usize];
                copy_from_guest(vcpu, k.keys, &mut keys)
                    .map(|()| keys.iter().for_each(|&c| super::keys::handle(c)))
            }
            _ => Err(-EINVAL),
        },
        _ => Err(-ENOSYS),
    };
    write_back(vcpu, ptr, &op, result)
}
