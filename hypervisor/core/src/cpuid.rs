//! What a guest sees when it executes CPUID: the host's answer, filtered, plus Xen's
//! hypervisor leaves.

use oxen_abi::cpuid::{BASE, HYPERCALL_MSR, SIGNATURE};

/// The four registers of one CPUID answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// The Xen version oxen reports (4.17: guests treat anything below 4 as ancient).
pub const XEN_MAJOR: u32 = 4;
pub const XEN_MINOR: u32 = 17;

/// Leaf 1 ECX bits hidden from guests: VMX, SMX, MONITOR, DTES64, DS-CPL, EST, TM2,
/// PDCM, x2APIC (not emulated yet), TSC-deadline.
const LEAF1_ECX_HIDDEN: u32 = (1 << 5)
    | (1 << 6)
    | (1 << 3)
    | (1 << 2)
    | (1 << 4)
    | (1 << 7)
    | (1 << 8)
    | (1 << 15)
    | (1 << 21)
    | (1 << 24);
/// Leaf 1 ECX bit 31: "running under a hypervisor".
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 EDX bits hidden: MCE, MTRR, MCA, ACPI thermal, TM, PBE, DS.
const LEAF1_EDX_HIDDEN: u32 =
    (1 << 7) | (1 << 12) | (1 << 14) | (1 << 22) | (1 << 29) | (1 << 31) | (1 << 21);

/// Who asks, for the leaves that describe the guest itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Asker {
    pub vcpu: u32,
    pub domid: u32,
    /// The TSC frequency (the time leaf reports it and oxen's system-time scale).
    pub tsc_hz: u64,
}

/// The guest's answer for `leaf`/`subleaf`, given the host's answer for the same leaf.
pub fn guest_view(leaf: u32, subleaf: u32, host: Regs, who: Asker) -> Regs {
    let Asker { vcpu, domid, .. } = who;
    match leaf {
        1 => Regs {
            eax: host.eax,
            // APIC id = vCPU id, one logical processor per package, keep CLFLUSH size.
            ebx: (vcpu << 24) | (1 << 16) | (host.ebx & 0xffff),
            ecx: (host.ecx & !LEAF1_ECX_HIDDEN) | LEAF1_ECX_HYPERVISOR,
            edx: host.edx & !LEAF1_EDX_HIDDEN,
        },
        // Monitor/MWAIT, thermal and power, performance monitoring: not offered.
        5 | 6 | 0xa => Regs::default(),
        BASE => Regs {
            eax: BASE + 4,
            ebx: SIGNATURE[0],
            ecx: SIGNATURE[1],
            edx: SIGNATURE[2],
        },
        l if l == BASE + 1 => Regs {
            eax: (XEN_MAJOR << 16) | XEN_MINOR,
            ..Regs::default()
        },
        l if l == BASE + 2 => Regs {
            eax: 1,
            ebx: HYPERCALL_MSR,
            ecx: 0,
            edx: 0,
        },
        // Time leaf. Subleaf 0: no TSC emulation, the guest TSC frequency in kHz;
        // subleaf 1: system time = scale(TSC - offset) with offset 0 (see `time`);
        // subleaf 2: the host TSC frequency in kHz.
        l if l == BASE + 3 => {
            let khz = u32::try_from(who.tsc_hz / 1000).unwrap_or(u32::MAX);
            let scale = crate::time::TimeScale::from_hz(who.tsc_hz);
            match subleaf {
                0 => Regs {
                    ecx: khz,
                    ..Regs::default()
                },
                1 => Regs {
                    eax: 0,
                    ebx: 0,
                    ecx: scale.mul,
                    edx: scale.shift as u8 as u32,
                },
                2 => Regs {
                    ecx: khz,
                    ..Regs::default()
                },
                _ => Regs::default(),
            }
        }
        // HVM leaf: vCPU id (bit 3) and domain id (bit 4) present.
        l if l == BASE + 4 => Regs {
            eax: (1 << 3) | (1 << 4),
            ebx: vcpu,
            ecx: domid,
            edx: 0,
        },
        // Every other hypervisor leaf (including Viridian's 0x40000100 range) is empty.
        l if (BASE..BASE + 0x1_0000).contains(&l) => Regs::default(),
        _ => host,
    }
}

/// Submap `index` of `XENVER_get_features` for an HVM/PVH guest: exactly the features
/// of `public/features.h` that oxen honours. A translated guest may write its own page
/// tables (0) and has an auto-translated physmap (2); the upcall is delivered by vector
/// (`HVMOP_set_param(CALLBACK_IRQ)` with a vector, 8); `vcpu_time_info` is safe to use
/// from the guest's TSC (9). Not set: the PV-only bits, PIRQs (no emulated interrupt
/// controller routes to event channels), dom0, vNUMA (`XENMEM_get_vnumainfo`). Other
/// submaps are empty.
pub fn xen_features(index: u32) -> u32 {
    use oxen_abi::xenfeat::*;
    match index {
        0 => {
            (1 << WRITABLE_PAGE_TABLES)
                | (1 << AUTO_TRANSLATED_PHYSMAP)
                | (1 << HVM_CALLBACK_VECTOR)
                | (1 << HVM_SAFE_PVCLOCK)
        }
        _ => 0,
    }
}

/// Whether XSETBV may load `value` into XCR0, by the SDM's rules (Vol. 1, 13.3) and
/// `allowed`, the components the host has and oxen keeps per vCPU: x87 (bit 0) always
/// on; AVX (2) only with SSE (1); the AVX-512 states (5-7) all together and only with
/// AVX; the MPX states (3-4) together; the AMX states (17-18) together. Anything else
/// gets the guest a #GP (and never reaches the CPU's own XSETBV, which would fault in
/// the hypervisor).
pub fn xcr0_valid(value: u64, allowed: u64) -> bool {
    let all_or_none = |mask: u64| value & mask == 0 || value & mask == mask;
    value & 1 != 0
        && value & !allowed == 0
        && (value & 4 == 0 || value & 2 != 0)
        && all_or_none(0xe0)
        && (value & 0xe0 == 0 || value & 4 != 0)
        && all_or_none(0x18)
        && all_or_none(0x6_0000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(vcpu: u32, domid: u32) -> Asker {
        Asker {
            vcpu,
            domid,
            tsc_hz: 2_000_000_000,
        }
    }

    #[test]
    fn time_leaf_gives_the_system_time_scale() {
        let r = guest_view(BASE + 3, 0, all_ones(), who(0, 1));
        assert_eq!(r.ecx, 2_000_000);
        let r = guest_view(BASE + 3, 1, all_ones(), who(0, 1));
        let scale = crate::time::TimeScale {
            mul: r.ecx,
            shift: r.edx as u8 as i8,
        };
        assert_eq!((r.eax, r.ebx), (0, 0));
        assert!(scale.ns(2_000_000_000).abs_diff(1_000_000_000) <= 1);
        assert_eq!(
            guest_view(BASE + 3, 3, all_ones(), who(0, 1)),
            Regs::default()
        );
    }

    fn all_ones() -> Regs {
        Regs {
            eax: !0,
            ebx: !0,
            ecx: !0,
            edx: !0,
        }
    }

    #[test]
    fn leaf1_hides_vmx_and_shows_the_hypervisor() {
        let r = guest_view(1, 0, all_ones(), who(3, 7));
        assert_eq!(r.ecx & (1 << 5), 0, "VMX hidden");
        assert_ne!(r.ecx & (1 << 31), 0, "hypervisor bit");
        assert_eq!(r.ecx & (1 << 21), 0, "x2APIC hidden");
        assert_eq!(r.edx & (1 << 12), 0, "MTRR hidden");
        assert_ne!(r.edx & 1, 0, "FPU kept");
        assert_eq!(r.ebx >> 24, 3, "APIC id is the vCPU id");
    }

    #[test]
    fn xen_leaves() {
        let r = guest_view(BASE, 0, all_ones(), who(0, 1));
        assert_eq!([r.ebx, r.ecx, r.edx], SIGNATURE);
        let bytes: Vec<u8> = [r.ebx, r.ecx, r.edx]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert_eq!(&bytes, b"XenVMMXenVMM");
        assert!(r.eax >= BASE + 2);
        assert_eq!(guest_view(BASE + 1, 0, all_ones(), who(0, 1)).eax >> 16, 4);
        assert_eq!(
            guest_view(BASE + 2, 0, all_ones(), who(0, 1)),
            Regs {
                eax: 1,
                ebx: 0x4000_0000,
                ecx: 0,
                edx: 0
            }
        );
        let hvm = guest_view(BASE + 4, 0, all_ones(), who(2, 9));
        assert_eq!((hvm.ebx, hvm.ecx), (2, 9));
        assert_eq!(
            guest_view(BASE + 0x100, 0, all_ones(), who(0, 1)),
            Regs::default()
        );
    }

    #[test]
    fn other_leaves_pass_through_or_vanish() {
        let host = Regs {
            eax: 1,
            ebx: 2,
            ecx: 3,
            edx: 4,
        };
        assert_eq!(guest_view(0, 0, host, who(0, 1)), host);
        assert_eq!(guest_view(7, 0, host, who(0, 1)), host);
        assert_eq!(guest_view(6, 0, host, who(0, 1)), Regs::default());
    }

    #[test]
    fn xcr0_rules() {
        // x87 | SSE | AVX | opmask | ZMM_Hi256 | Hi16_ZMM, as a Skylake-X host offers.
        let host = 0xe7;
        for ok in [0x1, 0x3, 0x7, 0xe7] {
            assert!(xcr0_valid(ok, host), "{ok:#x} is valid");
        }
        for bad in [
            0x0,  // x87 off
            0x2,  // x87 off
            0x5,  // AVX without SSE
            0x27, // opmask without the ZMM states (the hypervisor crash of issue 11)
            0x67, // two of the three AVX-512 states
            0xe3, // AVX-512 without AVX
            0xe1, // AVX-512 without SSE and AVX
            0x8,  // a component the host lacks (and no x87)
            0x9,  // MPX BNDREGS: not offered
            1 << 63,
        ] {
            assert!(!xcr0_valid(bad, host), "{bad:#x} is refused");
        }
        // MPX and AMX go in pairs, where offered.
        let wide = 0x6_00ff;
        assert!(xcr0_valid(0x1b, wide));
        assert!(!xcr0_valid(0x0b, wide));
        assert!(xcr0_valid(0x6_0007, wide));
        assert!(!xcr0_valid(0x2_0007, wide));
        assert!(!xcr0_valid(0x4_0007, wide));
    }

    #[test]
    fn features_are_the_ones_oxen_honours() {
        use oxen_abi::xenfeat::*;
        let f = xen_features(0);
        for bit in [
            AUTO_TRANSLATED_PHYSMAP,
            HVM_CALLBACK_VECTOR,
            HVM_SAFE_PVCLOCK,
        ] {
            assert_ne!(
                f & (1 << bit),
                0,
                "bit {bit}: Linux needs it for its PVH path"
            );
        }
        for bit in [
            WRITABLE_DESCRIPTOR_TABLES,
            SUPERVISOR_MODE_KERNEL,
            PAE_PGDIR_ABOVE_4GB,
            MMU_PT_UPDATE_PRESERVE_AD,
            HIGHMEM_ASSIST,
            GNTTAB_MAP_AVAIL_BITS,
            HVM_PIRQS,
            DOM0,
        ] {
            assert_eq!(f & (1 << bit), 0, "bit {bit} is not honoured");
        }
        assert_eq!(f, 0x305);
        assert_eq!(xen_features(1), 0);
        assert_eq!(xen_features(u32::MAX), 0);
    }
}
