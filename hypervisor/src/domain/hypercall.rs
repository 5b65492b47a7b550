//! Hypercalls, with Xen's numbering and register ABI: RAX = number; arguments in RDI,
//! RSI, RDX, R10, R8 (64-bit guests) or EBX, ECX, EDX, ESI, EDI (32-bit); result in RAX,
//! a negative errno on failure. Pointers are guest-virtual and are translated through
//! the guest's page tables; every one is an allegation checked before use.
#![deny(unsafe_code)]

use alloc::vec;

use core::sync::atomic::Ordering;

use oxen_abi::errno::{EEXIST, EFAULT, EINVAL, ENOENT, ENOSYS, EPERM, ESRCH, ETIME};
use oxen_abi::vcpu::{self as vcpu_abi, HvmContext};
use oxen_abi::{console_io, hypercall as nr, sched_op, xen_version};
use oxen_core::guest_walk::{self, GuestMemory};
use oxen_core::vcpu_state::StartState;

use super::exits::Next;
use super::sched as glue;
use super::vcpu::Vcpu;
use super::{Domain, DomainState};
use crate::arch::time;

/// Most bytes one pass of a `console_io` write handles; a longer write continues (the
/// guest re-executes the call for the rest), so it is preemptible between passes.
const CONSOLE_CHUNK: u64 = 512;

/// Guest memory as the page-table walker sees it.
struct Ram<'a>(&'a Domain);

impl GuestMemory for Ram<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
        self.0.read_ram(gpa, buf)
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> bool {
        self.0.write_ram(gpa, data)
    }
}

pub(super) fn copy_from_guest(vcpu: &Vcpu, gva: u64, buf: &mut [u8]) -> Result<(), i64> {
    guest_walk::copy_from_guest(&Ram(&vcpu.domain), &vcpu.paging(), gva, buf).map_err(|_| -EFAULT)
}

/// Reads the argument structure `$t` at `$arg` (its `SIZE` bytes) from the guest; on a
/// fault or a short structure, returns `$fail(errno)` from the calling function (by
/// default `Err(errno)`).
macro_rules! read_arg {
    ($vcpu:expr, $arg:expr, $t:ty) => {
        read_arg!($vcpu, $arg, $t, Err)
    };
    ($vcpu:expr, $arg:expr, $t:ty, $fail:expr) => {{
        let mut raw = [0u8; <$t>::SIZE];
        match $crate::domain::hypercall::copy_from_guest($vcpu, $arg, &mut raw)
            .and_then(|()| <$t>::from_bytes(&raw).ok_or(-oxen_abi::errno::EFAULT))
        {
            Ok(x) => x,
            Err(e) => return ($fail)(e),
        }
    }};
}
pub(super) use read_arg;

pub(super) fn copy_to_guest(vcpu: &Vcpu, gva: u64, data: &[u8]) -> Result<(), i64> {
    guest_walk::copy_to_guest(&mut Ram(&vcpu.domain), &vcpu.paging(), gva, data)
        .map_err(|_| -EFAULT)
}

/// Handles a VMCALL.
pub fn dispatch(vcpu: &mut Vcpu) -> Next {
    vcpu.hypercalls += 1;
    let r = &vcpu.regs;
    let args = if vcpu.long_mode() {
        [r.rdi, r.rsi, r.rdx, r.r10, r.r8]
    } else {
        [r.rbx, r.rcx, r.rdx, r.rsi, r.rdi].map(|v| v & 0xffff_ffff)
    };
    let number = r.rax;
    if vcpu.cpl() != 0 {
        vcpu.skip_instruction();
        vcpu.regs.rax = (-EPERM) as u64;
        return Next::Resume;
    }
    let (result, next) = match u32::try_from(number) {
        Ok(nr::CONSOLE_IO) => match console(vcpu, args) {
            Ok(rc) => (rc, Next::Resume),
            Err(Continue(rest)) => {
                // The guest executes the call again for the rest (after whatever is due
                // on this pCPU), as Xen's hypercall continuations do for HVM guests.
                set_args(vcpu, rest);
                return Next::Resume;
            }
        },
        Ok(nr::XEN_VERSION) => (version(vcpu, args), Next::Resume),
        Ok(nr::SCHED_OP) => sched(vcpu, args),
        Ok(nr::VCPU_OP) => vcpu_op(vcpu, args),
        Ok(nr::EVENT_CHANNEL_OP) => (
            super::event::event_channel_op(vcpu, args[0], args[1]),
            Next::Resume,
        ),
        Ok(nr::HVM_OP) => (super::event::hvm_op(vcpu, args[0], args[1]), Next::Resume),
        Ok(nr::MEMORY_OP) => match super::memory::memory_op(vcpu, args[0], args[1]) {
            Ok(rc) => (rc, Next::Resume),
            Err(cmd) => {
                // Continued from this command (Xen's hypercall continuation).
                set_args(vcpu, [cmd, args[1], args[2], args[3], args[4]]);
                return Next::Resume;
            }
        },
        Ok(nr::GRANT_TABLE_OP) => (
            super::grant::grant_table_op(vcpu, args[0], args[1], args[2]),
            Next::Resume,
        ),
        Ok(nr::DOMCTL) => (super::control::domctl(vcpu, args[0]), Next::Resume),
        Ok(nr::SYSCTL) => (super::control::sysctl(vcpu, args[0]), Next::Resume),
        _ => (-ENOSYS, Next::Resume),
    };
    vcpu.skip_instruction();
    vcpu.regs.rax = result as u64;
    next
}

/// A hypercall that did part of its work: the arguments that describe the rest.
struct Continue([u64; 5]);

/// Puts hypercall arguments back where the guest passes them (its RIP still points at
/// the VMCALL, RAX still holds the number).
fn set_args(vcpu: &mut Vcpu, a: [u64; 5]) {
    let long = vcpu.long_mode();
    let r = &mut vcpu.regs;
    if long {
        [r.rdi, r.rsi, r.rdx, r.r10, r.r8] = a;
    } else {
        [r.rbx, r.rcx, r.rdx, r.rsi, r.rdi] = a.map(|v| v & 0xffff_ffff);
    }
}

fn console(vcpu: &mut Vcpu, [op, len, ptr, a3, a4]: [u64; 5]) -> Result<i64, Continue> {
    match u32::try_from(op) {
        Ok(console_io::WRITE) => {
            let (now, rest) = oxen_core::continuation::split_chunk(len, ptr, CONSOLE_CHUNK);
            let mut buf = vec![0u8; now as usize];
            if let Err(e) = copy_from_guest(vcpu, ptr, &mut buf) {
                return Ok(e);
            }
            let d = vcpu.domain.clone();
            if d.is_control() {
                // As Xen's hardware domain: its bytes go out as they are.
                let _ = crate::arch::serial::guest_raw(&buf);
            } else {
                d.emit(&d.console_line, "", &buf);
            }
            match rest {
                Some((len, ptr)) => Err(Continue([op, len, ptr, a3, a4])),
                None => Ok(0),
            }
        }
        // Typed input, for the privileged domain that has the focus (as Xen's dom0);
        // others read theirs from their PV console.
        Ok(console_io::READ) => {
            if !vcpu.domain.privileged {
                return Ok(-EPERM);
            }
            let max = usize::try_from(len)
                .unwrap_or(usize::MAX)
                .min(CONSOLE_CHUNK as usize);
            let d = vcpu.domain.clone();
            let mut fault = None;
            let n = super::conin::read(&d, max, |bytes| match copy_to_guest(vcpu, ptr, bytes) {
                Ok(()) => true,
                Err(e) => {
                    fault = Some(e);
                    false
                }
            });
            Ok(fault.unwrap_or(n as i64))
        }
        _ => Ok(-EINVAL),
    }
}

fn write_string(vcpu: &Vcpu, gva: u64, text: &[u8], size: usize) -> i64 {
    let mut buf = vec![0u8; size];
    let n = text.len().min(size - 1);
    buf[..n].copy_from_slice(&text[..n]);
    match copy_to_guest(vcpu, gva, &buf) {
        Ok(()) => 0,
        Err(e) => e,
    }
}

fn version(vcpu: &mut Vcpu, [cmd, arg, ..]: [u64; 5]) -> i64 {
    use oxen_core::cpuid::{XEN_MAJOR, XEN_MINOR};
    match u32::try_from(cmd) {
        Ok(xen_version::VERSION) => i64::from((XEN_MAJOR << 16) | XEN_MINOR),
        Ok(xen_version::EXTRAVERSION) => {
            write_string(vcpu, arg, b"-oxen", xen_version::EXTRAVERSION_LEN)
        }
        Ok(xen_version::CAPABILITIES) => write_string(
            vcpu,
            arg,
            b"hvm-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p",
            xen_version::CAPABILITIES_LEN,
        ),
        Ok(xen_version::CHANGESET) => {
            write_string(vcpu, arg, env!("CARGO_PKG_VERSION").as_bytes(), 64)
        }
        Ok(xen_version::COMPILE_INFO) => {
            // compiler[64], compile_by[16], compile_domain[32], compile_date[32].
            let mut info = [0u8; 144];
            let put = |buf: &mut [u8], at: usize, size: usize, s: &[u8]| {
                let n = s.len().min(size - 1);
                buf[at..at + n].copy_from_slice(&s[..n]);
            };
            put(&mut info, 0, 64, b"rustc (nightly)");
            put(&mut info, 64, 16, b"oxen");
            put(&mut info, 80, 32, b"oxen.invalid");
            put(&mut info, 112, 32, b"unknown");
            match copy_to_guest(vcpu, arg, &info) {
                Ok(()) => 0,
                Err(e) => e,
            }
        }
        Ok(xen_version::PLATFORM_PARAMETERS) => match copy_to_guest(vcpu, arg, &0u64.to_le_bytes())
        {
            Ok(()) => 0,
            Err(e) => e,
        },
        Ok(xen_version::GET_FEATURES) => {
            let mut info = [0u8; 8];
            if let Err(e) = copy_from_guest(vcpu, arg, &mut info[..4]) {
                return e;
            }
            let index = u32::from_le_bytes(info[..4].try_into().expect("4 bytes"));
            let map = oxen_core::cpuid::xen_features(index);
            info[4..].copy_from_slice(&map.to_le_bytes());
            match copy_to_guest(vcpu, arg, &info) {
                Ok(()) => 0,
                Err(e) => e,
            }
        }
        Ok(xen_version::PAGESIZE) => 4096,
        _ => -EINVAL,
    }
}

fn sched(vcpu: &mut Vcpu, [cmd, arg, ..]: [u64; 5]) -> (i64, Next) {
    match u32::try_from(cmd) {
        Ok(sched_op::YIELD) => (0, Next::Yield),
        Ok(sched_op::BLOCK) => (0, Next::Block),
        Ok(sched_op::POLL) => match super::event::poll(vcpu, arg) {
            Ok(true) => (0, Next::Poll),
            Ok(false) => (0, Next::Resume),
            Err(e) => (e, Next::Resume),
        },
        Ok(sched_op::SHUTDOWN) => {
            let mut raw = [0u8; 4];
            if let Err(e) = copy_from_guest(vcpu, arg, &mut raw) {
                return (e, Next::Resume);
            }
            let Some(state) = shutdown_state(u32::from_le_bytes(raw), "the guest") else {
                return (-EINVAL, Next::Resume);
            };
            vcpu.domain.finish(state);
            (0, Next::Finished)
        }
        Ok(sched_op::REMOTE_SHUTDOWN) => {
            let mut raw = [0u8; oxen_abi::SchedRemoteShutdown::SIZE];
            if let Err(e) = copy_from_guest(vcpu, arg, &mut raw) {
                return (e, Next::Resume);
            }
            let Some(a) = oxen_abi::SchedRemoteShutdown::from_bytes(&raw) else {
                return (-EFAULT, Next::Resume);
            };
            // As Xen: the domain must exist (DOMID_SELF does not name one here), then
            // only a privileged caller may, then the reason must be one of Xen's.
            let Some(target) = super::by_id(u32::from(a.domain_id)).filter(|d| d.running()) else {
                return (-ESRCH, Next::Resume);
            };
            if !vcpu.domain.privileged {
                return (-EPERM, Next::Resume);
            }
            let who = alloc::format!("domain {}", vcpu.domain.id);
            let Some(state) = shutdown_state(a.reason, &who) else {
                return (-EINVAL, Next::Resume);
            };
            target.finish(state);
            super::lifecycle::stop(&target);
            if target.id == vcpu.domain.id {
                (0, Next::Finished)
            } else {
                (0, Next::Resume)
            }
        }
        _ => (-EINVAL, Next::Resume),
    }
}

/// What a shutdown with Xen's `reason` (asked for by `who`) makes of a domain; `None`
/// for a reason Xen does not know.
fn shutdown_state(reason: u32, who: &str) -> Option<DomainState> {
    Some(match reason {
        sched_op::SHUTDOWN_POWEROFF => DomainState::Shutdown("poweroff"),
        sched_op::SHUTDOWN_REBOOT => DomainState::Shutdown("reboot"),
        sched_op::SHUTDOWN_SUSPEND => DomainState::Shutdown("suspend"),
        sched_op::SHUTDOWN_CRASH => {
            DomainState::Crashed(alloc::format!("{who} reported a crash (SHUTDOWN_crash)"))
        }
        sched_op::SHUTDOWN_WATCHDOG => DomainState::Shutdown("watchdog"),
        _ => return None,
    })
}

/// `vcpu_op(cmd, vcpuid, arg)`: secondary vCPU bring-up and the single-shot timer.
fn vcpu_op(vcpu: &mut Vcpu, [cmd, target, arg, ..]: [u64; 5]) -> (i64, Next) {
    let domain = vcpu.domain.clone();
    let Some(slot) = domain.vcpu(target) else {
        return (-ENOENT, Next::Resume);
    };
    let is_self = slot.index == vcpu.id;
    let now = time::now();
    let Ok(cmd) = u32::try_from(cmd) else {
        return (-ENOSYS, Next::Resume);
    };
    match cmd {
        vcpu_abi::op::INITIALISE => {
            let mut raw = [0u8; vcpu_abi::HVM_CONTEXT_SIZE];
            if let Err(e) = copy_from_guest(vcpu, arg, &mut raw) {
                return (e, Next::Resume);
            }
            // As Xen: an initialised vCPU is -EEXIST whatever the context says.
            let mut start = slot.start.lock();
            if slot.initialised.load(Ordering::Acquire) {
                return (-EEXIST, Next::Resume);
            }
            let Some(ctx) = HvmContext::from_bytes(&raw) else {
                return (-EINVAL, Next::Resume);
            };
            let state = match StartState::from_hvm(&ctx, domain.phys_bits()) {
                Ok(s) => s,
                Err(why) => {
                    // Debug only: a guest could otherwise fill the log with refusals.
                    log::debug!(
                        "domain {} vcpu{}: VCPUOP_initialise of vcpu{target} refused: {why}",
                        domain.id,
                        vcpu.id
                    );
                    return (-EINVAL, Next::Resume);
                }
            };
            *start = Some(state);
            slot.initialised.store(true, Ordering::Release);
            (0, Next::Resume)
        }
        vcpu_abi::op::UP => {
            if !slot.initialised.load(Ordering::Acquire) {
                return (-EINVAL, Next::Resume);
            }
            if !slot.up.swap(true, Ordering::AcqRel) {
                let id = slot.sched;
                let _ = glue::with(|s| s.online(id, now));
                glue::wake(slot, now);
            }
            (0, Next::Resume)
        }
        vcpu_abi::op::DOWN => match super::lifecycle::vcpu_down(&domain, slot, now) {
            super::lifecycle::Down::LastOne => (0, Next::Finished),
            super::lifecycle::Down::Down if is_self => (0, Next::Reschedule),
            super::lifecycle::Down::Down => (0, Next::Resume),
        },
        vcpu_abi::op::IS_UP => (i64::from(slot.up.load(Ordering::Acquire)), Next::Resume),
        vcpu_abi::op::SET_SINGLESHOT_TIMER => {
            if !is_self {
                return (-EINVAL, Next::Resume);
            }
            let mut raw = [0u8; vcpu_abi::SingleshotTimer::SIZE];
            if let Err(e) = copy_from_guest(vcpu, arg, &mut raw) {
                return (e, Next::Resume);
            }
            let Some(t) = vcpu_abi::SingleshotTimer::from_bytes(&raw) else {
                return (-EINVAL, Next::Resume);
            };
            let deadline = t.timeout_abs_ns;
            if t.flags & vcpu_abi::SSHOTTMR_FUTURE != 0 && deadline < now {
                return (-ETIME, Next::Resume);
            }
            glue::arm_timer(slot, deadline);
            (0, Next::Resume)
        }
        vcpu_abi::op::STOP_SINGLESHOT_TIMER => {
            if !is_self {
                return (-EINVAL, Next::Resume);
            }
            glue::stop_timer(slot);
            (0, Next::Resume)
        }
        vcpu_abi::op::SET_PERIODIC_TIMER => {
            let mut raw = [0u8; vcpu_abi::PeriodicTimer::SIZE];
            if let Err(e) = copy_from_guest(vcpu, arg, &mut raw) {
                return (e, Next::Resume);
            }
            let Some(p) = vcpu_abi::PeriodicTimer::from_bytes(&raw) else {
                return (-EINVAL, Next::Resume);
            };
            // As Xen: at least 1 ms, at most STIME_DELTA_MAX.
            if p.period_ns < 1_000_000 || p.period_ns > u64::MAX >> 2 {
                return (-EINVAL, Next::Resume);
            }
            glue::set_periodic(slot, p.period_ns, now);
            (0, Next::Resume)
        }
        vcpu_abi::op::STOP_PERIODIC_TIMER => {
            glue::stop_periodic(slot);
            (0, Next::Resume)
        }
        vcpu_abi::op::GET_RUNSTATE_INFO => {
            let Some(info) = runstate_info(slot, now) else {
                return (-ENOENT, Next::Resume);
            };
            match copy_to_guest(vcpu, arg, &info.to_bytes()) {
                Ok(()) => (0, Next::Resume),
                Err(e) => (e, Next::Resume),
            }
        }
        vcpu_abi::op::REGISTER_VCPU_INFO => {
            let mut raw = [0u8; vcpu_abi::RegisterVcpuInfo::SIZE];
            if let Err(e) = copy_from_guest(vcpu, arg, &mut raw) {
                return (e, Next::Resume);
            }
            let Some(r) = vcpu_abi::RegisterVcpuInfo::from_bytes(&raw) else {
                return (-EINVAL, Next::Resume);
            };
            match super::event::register_vcpu_info(&domain, slot.index, r.mfn, r.offset) {
                Ok(()) => (0, Next::Resume),
                Err(e) => (e, Next::Resume),
            }
        }
        vcpu_abi::op::SEND_NMI => {
            // As Xen: no argument; the NMI is delivered at the vCPU's next entry where
            // it can take one (at most one pending, as on hardware).
            if arg != 0 {
                return (-EINVAL, Next::Resume);
            }
            if !slot.nmi_pending.swap(true, Ordering::AcqRel) {
                glue::wake(slot, now);
                glue::poke_running(slot);
            }
            (0, Next::Resume)
        }
        vcpu_abi::op::REGISTER_RUNSTATE_MEMORY_AREA => {
            let mut raw = [0u8; vcpu_abi::RegisterRunstateMemoryArea::SIZE];
            if let Err(e) = copy_from_guest(vcpu, arg, &mut raw) {
                return (e, Next::Resume);
            }
            let Some(r) = vcpu_abi::RegisterRunstateMemoryArea::from_bytes(&raw) else {
                return (-EINVAL, Next::Resume);
            };
            // A guest-virtual address, written whenever the vCPU's runstate changes
            // (each time it is put on or taken off a pCPU), as Xen does; 0 stops it.
            slot.runstate_area.store(r.addr, Ordering::Release);
            if is_self {
                update_runstate_area(vcpu, slot);
            }
            (0, Next::Resume)
        }
        _ => (-ENOSYS, Next::Resume),
    }
}

/// Writes the loaded vCPU's runstate into the area it registered, if any. A bad address
/// is the guest's problem: nothing is written (Xen ignores the failure too).
pub fn update_runstate_area(vcpu: &Vcpu, slot: &glue::VcpuSlot) {
    let at = slot.runstate_area.load(Ordering::Acquire);
    if at == 0 {
        return;
    }
    if let Some(info) = runstate_info(slot, time::now()) {
        let _ = copy_to_guest(vcpu, at, &info.to_bytes());
    }
}

/// Xen's `vcpu_runstate_info` of `slot`'s vCPU as of `now`, from the scheduler.
fn runstate_info(slot: &glue::VcpuSlot, now: u64) -> Option<vcpu_abi::RunstateInfo> {
    let r = glue::with(|s| s.runstate(slot.sched, now).ok())?;
    let [running, runnable, blocked, offline] = r.time_ns;
    Some(vcpu_abi::RunstateInfo {
        state: r.state,
        state_entry_time: r.entry_ns,
        time_running: running,
        time_runnable: runnable,
        time_blocked: blocked,
        time_offline: offline,
    })
}

/// The guest wrote the hypercall-page MSR: fill that page with 32-byte stubs
/// (`mov eax, N; vmcall; ret`), the IRET slot with `ud2`. False means #GP.
pub fn install_page(vcpu: &mut Vcpu, value: u64) -> bool {
    // The low 12 bits select a page of the hypercall area; there is one page.
    if value & 0xfff != 0 {
        return false;
    }
    let mut page = [0xccu8; 4096];
    for (i, stub) in page.as_chunks_mut::<32>().0.iter_mut().enumerate() {
        if i == nr::IRET as usize {
            stub[..2].copy_from_slice(&[0x0f, 0x0b]);
            continue;
        }
        stub[0] = 0xb8;
        stub[1..5].copy_from_slice(&(i as u32).to_le_bytes());
        stub[5..8].copy_from_slice(&[0x0f, 0x01, 0xc1]);
        stub[8] = 0xc3;
    }
    if !vcpu.domain.write_ram(value, &page) {
        return false;
    }
    log::debug!("domain {}: hypercall page at {value:#x}", vcpu.domain.id);
    true
}
