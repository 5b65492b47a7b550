//! Who may set which HVM parameter (`HVMOP_set_param`), with Xen's rules: a guest sets
//! only the few parameters that are its own to choose (its upcall, the event channels
//! it was told to use); the rest — where its XenStore and console pages are, and the
//! ports behind them — are the toolstack's, set by a privileged domain on another.
//! A few parameters can be set once only (Xen answers a change with `-EEXIST`).
//!
//! Differences from Xen: oxen's guest-settable list leaves out the parameters of
//! devices it does not emulate (the VM86 TSS, ACPI I/O ports, the generation id), and
//! checks the upcall's value itself (a vector of 0x20 or more) where Xen also takes
//! GSI and PCI INTx callbacks.

use oxen_abi::hvm::{self, param};

/// Why a set is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetError {
    /// No such parameter, or a value it cannot take (`-EINVAL`).
    Invalid,
    /// Not the caller's to set (`-EPERM`).
    NotPermitted,
    /// Set once already, to something else (`-EEXIST`).
    AlreadySet,
}

impl SetError {
    /// The negated errno a hypercall returns for it.
    pub fn errno(self) -> i64 {
        use oxen_abi::errno::{EEXIST, EINVAL, EPERM};
        -match self {
            SetError::Invalid => EINVAL,
            SetError::NotPermitted => EPERM,
            SetError::AlreadySet => EEXIST,
        }
    }
}

/// Parameters a guest may set on itself.
const GUEST_SETTABLE: [u32; 3] = [
    param::CALLBACK_IRQ,
    param::STORE_EVTCHN,
    param::CONSOLE_EVTCHN,
];

/// Parameters that take one value for the domain's life: `VIRIDIAN`,
/// `IOREQ_SERVER_PFN`, `NR_IOREQ_SERVER_PAGES`, `ALTP2M`, `MCA_CAP`.
const SET_ONCE: [u32; 5] = [9, 32, 33, 35, 38];

/// Whether parameter `index`, now `old`, may become `new`; `by_self` when a domain sets
/// its own. On success, for `CALLBACK_IRQ`, the upcall vector the value names (0: none).
pub fn check_set(index: u32, by_self: bool, old: u64, new: u64) -> Result<Option<u8>, SetError> {
    if index >= param::NR {
        return Err(SetError::Invalid);
    }
    if by_self && !GUEST_SETTABLE.contains(&index) {
        return Err(SetError::NotPermitted);
    }
    if SET_ONCE.contains(&index) && old != 0 && new != old {
        return Err(SetError::AlreadySet);
    }
    if index != param::CALLBACK_IRQ {
        return Ok(None);
    }
    let vector = (new & 0xff) as u8;
    match new >> hvm::CALLBACK_TYPE_SHIFT {
        _ if new == 0 => Ok(Some(0)),
        hvm::CALLBACK_TYPE_VECTOR if vector >= 0x20 => Ok(Some(vector)),
        _ => Err(SetError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_F3: u64 = (hvm::CALLBACK_TYPE_VECTOR << hvm::CALLBACK_TYPE_SHIFT) | 0xf3;

    #[test]
    fn a_guest_sets_its_upcall_and_ports_only() {
        assert_eq!(
            check_set(param::CALLBACK_IRQ, true, 0, VECTOR_F3),
            Ok(Some(0xf3))
        );
        assert_eq!(check_set(param::STORE_EVTCHN, true, 1, 5), Ok(None));
        assert_eq!(check_set(param::CONSOLE_EVTCHN, true, 2, 6), Ok(None));
        for toolstack in [param::STORE_PFN, param::CONSOLE_PFN, 9, 38] {
            assert_eq!(
                check_set(toolstack, true, 0, 1),
                Err(SetError::NotPermitted),
                "parameter {toolstack}"
            );
        }
    }

    #[test]
    fn the_toolstack_sets_any_parameter_of_another_domain() {
        for index in 0..param::NR {
            let r = check_set(index, false, 0, if index == 0 { 0 } else { 0x1234 });
            assert!(r.is_ok(), "parameter {index}: {r:?}");
        }
        assert_eq!(
            check_set(param::CALLBACK_IRQ, false, 0, VECTOR_F3),
            Ok(Some(0xf3))
        );
    }

    #[test]
    fn bad_indices_and_upcalls_are_invalid() {
        assert_eq!(check_set(param::NR, false, 0, 0), Err(SetError::Invalid));
        assert_eq!(check_set(u32::MAX, true, 0, 0), Err(SetError::Invalid));
        // A vector below 0x20 is an exception's; types 0 (GSI) and 1 (PCI) are not
        // emulated.
        let low = (hvm::CALLBACK_TYPE_VECTOR << hvm::CALLBACK_TYPE_SHIFT) | 0x1f;
        assert_eq!(
            check_set(param::CALLBACK_IRQ, true, 0, low),
            Err(SetError::Invalid)
        );
        assert_eq!(
            check_set(param::CALLBACK_IRQ, true, 0, 5),
            Err(SetError::Invalid)
        );
        assert_eq!(
            check_set(param::CALLBACK_IRQ, true, VECTOR_F3, 0),
            Ok(Some(0))
        );
    }

    #[test]
    fn set_once_parameters_keep_their_first_value() {
        assert_eq!(check_set(38, false, 0, 7), Ok(None));
        assert_eq!(check_set(38, false, 7, 7), Ok(None), "the same value again");
        assert_eq!(check_set(38, false, 7, 8), Err(SetError::AlreadySet));
        assert_eq!(
            check_set(param::STORE_PFN, false, 7, 8),
            Ok(None),
            "not a set-once one"
        );
    }

    #[test]
    fn errnos_are_xens() {
        assert_eq!(SetError::Invalid.errno(), -22);
        assert_eq!(SetError::NotPermitted.errno(), -1);
        assert_eq!(SetError::AlreadySet.errno(), -17);
    }
}
