//! The control hypercall (`domctl`), for privileged domains: so far the credit
//! scheduler's per-domain parameters (`XEN_DOMCTL_scheduler_op`), as `xl sched-credit`
//! uses them.

use oxen_abi::domctl::{self, offset};
use oxen_abi::errno::{EACCES, EINVAL, ENOSYS, EPERM, ESRCH};

use super::hypercall::{copy_from_guest, copy_to_guest};
use super::sched as glue;
use super::vcpu::Vcpu;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// `domctl(struct xen_domctl *)`.
pub fn domctl(vcpu: &mut Vcpu, ptr: u64) -> i64 {
    if !vcpu.domain.privileged {
        return -EPERM;
    }
    let mut op = [0u8; domctl::SIZE];
    if let Err(e) = copy_from_guest(vcpu, ptr, &mut op) {
        return e;
    }
    if u32_at(&op, offset::INTERFACE_VERSION) != domctl::INTERFACE_VERSION {
        return -EACCES;
    }
    let result = match u32_at(&op, offset::CMD) {
        domctl::cmd::SCHEDULER_OP => scheduler_op(&mut op),
        _ => Err(-ENOSYS),
    };
    match result {
        Ok(()) => match copy_to_guest(vcpu, ptr, &op) {
            Ok(()) => 0,
            Err(e) => e,
        },
        Err(e) => e,
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
