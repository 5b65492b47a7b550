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
/// PDCM, TSC-deadline (the APIC timer offers one-shot and periodic only).
const LEAF1_ECX_HIDDEN: u32 = (1 << 5)
    | (1 << 6)
    | (1 << 3)
    | (1 << 2)
    | (1 << 4)
    | (1 << 7)
    | (1 << 8)
    | (1 << 15)
    | (1 << 24);
/// Leaf 1 ECX bit 21: x2APIC (every vCPU's APIC is emulated in x2APIC mode).
const LEAF1_ECX_X2APIC: u32 = 1 << 21;
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
    /// The XCR0 components a guest may enable (those the host has and oxen keeps per
    /// vCPU), and the XSAVE area size they need ([`xsave_size`]).
    pub xcr0_allowed: u64,
    pub xsave_size: u32,
    /// Whether INVPCID works in the guest (the VMCS control is on).
    pub invpcid: bool,
}

/// The guest's answer for `leaf`/`subleaf`, given the host's answer for the same leaf.
pub fn guest_view(leaf: u32, subleaf: u32, host: Regs, who: Asker) -> Regs {
    let Asker { vcpu, domid, .. } = who;
    match leaf {
        1 => Regs {
            eax: host.eax,
            // APIC id = vCPU id, one logical processor per package, keep CLFLUSH size.
            ebx: (vcpu << 24) | (1 << 16) | (host.ebx & 0xffff),
            ecx: (host.ecx & !LEAF1_ECX_HIDDEN) | LEAF1_ECX_HYPERVISOR | LEAF1_ECX_X2APIC,
            edx: host.edx & !LEAF1_EDX_HIDDEN,
        },
        // Monitor/MWAIT, thermal and power, performance monitoring: not offered.
        5 | 6 | 0xa => Regs::default(),
        7 => leaf7(subleaf, host, who),
        // x2APIC topology: every vCPU is a package of its own (level 0 SMT, level 1
        // core, one logical processor each; EDX the x2APIC id = the vCPU id). Leaf 0x1F
        // says nothing, so guests fall back to 0xB.
        0xb => match subleaf {
            0 => Regs {
                eax: 0,
                ebx: 1,
                ecx: 1 << 8,
                edx: vcpu,
            },
            1 => Regs {
                eax: 0,
                ebx: 1,
                ecx: (2 << 8) | 1,
                edx: vcpu,
            },
            n => Regs {
                eax: 0,
                ebx: 0,
                ecx: n & 0xff,
                edx: vcpu,
            },
        },
        0x1f => Regs::default(),
        0xd => leaf_d(subleaf, host, who),
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

/// Leaf 7 subleaf 0 EBX bits hidden: TSC_ADJUST (1: its MSR #GPs; Linux reads it at
/// boot when offered), SGX (2), MPX (14: its XCR0 states are not kept), RDT monitoring
/// and allocation (12, 15: their MSRs #GP), processor trace (25).
const LEAF7_EBX_HIDDEN: u32 = (1 << 1) | (1 << 2) | (1 << 12) | (1 << 14) | (1 << 15) | (1 << 25);
/// The AVX-512 feature bits of leaf 7 EBX (F, DQ, IFMA, PF, ER, CD, BW, VL).
const LEAF7_EBX_AVX512: u32 =
    (1 << 16) | (1 << 17) | (1 << 21) | (1 << 26) | (1 << 27) | (1 << 28) | (1 << 30) | (1 << 31);
/// Leaf 7 ECX bits hidden: PKU and OSPKE (3, 4: PKRU is not kept per vCPU, CR4.PKE is
/// refused), WAITPKG (5: UMWAIT would idle the pCPU), CET shadow stacks (7: CR4.CET is
/// refused), LA57 (16: oxen walks 4-level guest page tables only), ENQCMD (29), SGX
/// launch control (30), PKS (31).
const LEAF7_ECX_HIDDEN: u32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 7) | (1 << 16) | (1 << 29) | (1 << 30) | (1 << 31);
/// The AVX-512 bits of leaf 7 ECX (VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ).
const LEAF7_ECX_AVX512: u32 = (1 << 1) | (1 << 6) | (1 << 11) | (1 << 12) | (1 << 14);
/// Leaf 7 EDX bits hidden: AVX-512 4VNNIW/4FMAPS/VP2INTERSECT/FP16 unless AVX-512 is
/// allowed (2, 3, 8, 23), and every feature whose MSR oxen does not offer (their
/// RDMSR/WRMSR would #GP where the guest expects them to work): CET IBT (20),
/// IBRS/IBPB (26), STIBP (27), L1D_FLUSH (28), ARCH_CAPABILITIES (29),
/// CORE_CAPABILITIES (30), SSBD (31); also PCONFIG (18) and hybrid (15) stays.
const LEAF7_EDX_HIDDEN: u32 =
    (1 << 18) | (1 << 20) | (1 << 26) | (1 << 27) | (1 << 28) | (1 << 29) | (1 << 30) | (1 << 31);
const LEAF7_EDX_AVX512: u32 = (1 << 2) | (1 << 3) | (1 << 8) | (1 << 23);

/// Leaf 7: structured extended features, limited to what oxen emulates consistently.
/// Only subleaf 0 is offered (EAX, the highest subleaf, says 0).
fn leaf7(subleaf: u32, host: Regs, who: Asker) -> Regs {
    if subleaf != 0 {
        return Regs::default();
    }
    let avx512 = who.xcr0_allowed & 0xe0 == 0xe0;
    let mut ebx = host.ebx & !LEAF7_EBX_HIDDEN;
    let mut ecx = host.ecx & !LEAF7_ECX_HIDDEN;
    let mut edx = host.edx & !LEAF7_EDX_HIDDEN;
    if !avx512 {
        ebx &= !LEAF7_EBX_AVX512;
        ecx &= !LEAF7_ECX_AVX512;
        edx &= !LEAF7_EDX_AVX512;
    }
    if who.xcr0_allowed & 4 == 0 {
        // AVX2 (5) and VAES/VPCLMULQDQ (9, 10) need the AVX state.
        ebx &= !(1 << 5);
        ecx &= !((1 << 9) | (1 << 10));
    }
    if !who.invpcid {
        ebx &= !(1 << 10);
    }
    Regs {
        eax: 0,
        ebx,
        ecx,
        edx,
    }
}

/// Leaf 0xD: XSAVE, limited to the components a guest may enable. Subleaf 0: the
/// allowed XCR0 bits, the size for the XCR0 the guest has now (EBX: the CPU holds the
/// guest's XCR0 while its CPUID exit is handled), the size for all allowed ones.
/// Subleaf 1: XSAVEOPT, XSAVEC and XGETBV(1) stay; XSAVES (no IA32_XSS, no VMCS
/// control) and XFD go; no supervisor states. Subleaves 2-63: a component's size and
/// offset if it is allowed, else zero.
fn leaf_d(subleaf: u32, host: Regs, who: Asker) -> Regs {
    let allowed = who.xcr0_allowed;
    match subleaf {
        0 => Regs {
            eax: host.eax & allowed as u32,
            ebx: host.ebx,
            ecx: who.xsave_size,
            edx: host.edx & (allowed >> 32) as u32,
        },
        1 => Regs {
            eax: host.eax & 0b111,
            ebx: host.ebx,
            ecx: 0,
            edx: 0,
        },
        n if n < 64 && allowed & (1 << n) != 0 => host,
        _ => Regs::default(),
    }
}

/// Bytes of an XSAVE area (standard format) holding the components in `mask`: the
/// legacy region and header (576), then each component `n` >= 2 at the offset and
/// with the size CPUID leaf 0xD subleaf `n` reports (`component(n)` = (size, offset)).
pub fn xsave_size(mask: u64, component: impl Fn(u32) -> (u32, u32)) -> u32 {
    (2..63)
        .filter(|n| mask & (1 << n) != 0)
        .map(|n| {
            let (size, offset) = component(n);
            offset.saturating_add(size)
        })
        .fold(576, u32::max)
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
            xcr0_allowed: 0x7,
            xsave_size: 832,
            invpcid: true,
        }
    }

    #[test]
    fn x2apic_is_offered_and_the_topology_matches_the_apic_ids() {
        let r = guest_view(1, 0, all_ones(), who(5, 1));
        assert_ne!(r.ecx & (1 << 21), 0, "x2APIC");
        assert_eq!(r.ecx & (1 << 24), 0, "no TSC-deadline");
        assert_eq!(r.ebx >> 24, 5, "initial APIC id");
        for sub in 0..3 {
            assert_eq!(guest_view(0xb, sub, all_ones(), who(5, 1)).edx, 5);
        }
        let l0 = guest_view(0xb, 0, all_ones(), who(5, 1));
        assert_eq!((l0.eax, l0.ebx & 0xffff, (l0.ecx >> 8) & 0xff), (0, 1, 1));
        let l2 = guest_view(0xb, 2, all_ones(), who(5, 1));
        assert_eq!((l2.ebx, (l2.ecx >> 8) & 0xff), (0, 0), "level 2 is invalid");
        assert_eq!(guest_view(0x1f, 0, all_ones(), who(5, 1)), Regs::default());
    }

    #[test]
    fn leaf7_offers_only_what_is_emulated() {
        let r = guest_view(7, 0, all_ones(), who(0, 1));
        assert_eq!(r.eax, 0, "only subleaf 0");
        // PKU/OSPKE, LA57, WAITPKG, CET: hidden.
        for bit in [3, 4, 5, 7, 16] {
            assert_eq!(r.ecx & (1 << bit), 0, "ecx bit {bit}");
        }
        // The MSR-backed speculation controls and ARCH_CAPABILITIES: hidden.
        for bit in [20, 26, 27, 28, 29, 30, 31] {
            assert_eq!(r.edx & (1 << bit), 0, "edx bit {bit}");
        }
        // TSC_ADJUST, SGX, MPX, PT hidden; SMEP (7), ERMS (9), SMAP (20), AVX2 (5) kept
        // with AVX.
        assert_eq!(r.ebx & ((1 << 1) | (1 << 2) | (1 << 14) | (1 << 25)), 0);
        assert_eq!(
            r.ebx & ((1 << 7) | (1 << 9) | (1 << 20) | (1 << 5)),
            0x1002a0
        );
        // Without AVX-512 in XCR0, no AVX-512 feature bit.
        assert_eq!(r.ebx & (1 << 16), 0);
        assert_eq!(r.ecx & (1 << 1), 0);
        let mut w = who(0, 1);
        w.xcr0_allowed = 0xe7;
        assert_ne!(guest_view(7, 0, all_ones(), w).ebx & (1 << 16), 0);
        // Without AVX, no AVX2; without the INVPCID control, no INVPCID.
        w.xcr0_allowed = 0x3;
        w.invpcid = false;
        let r = guest_view(7, 0, all_ones(), w);
        assert_eq!(r.ebx & ((1 << 5) | (1 << 10)), 0);
        assert_eq!(guest_view(7, 1, all_ones(), who(0, 1)), Regs::default());
    }

    #[test]
    fn leaf_d_describes_the_allowed_components_only() {
        let w = who(0, 1);
        let r = guest_view(0xd, 0, all_ones(), w);
        assert_eq!((r.eax, r.edx, r.ecx), (0x7, 0, 832));
        assert_eq!(
            r.ebx, !0,
            "the size for the current XCR0 comes from the CPU"
        );
        let r = guest_view(0xd, 1, all_ones(), w);
        assert_eq!(
            (r.eax, r.ecx, r.edx),
            (0b111, 0, 0),
            "no XSAVES, XFD, XSS states"
        );
        let avx = Regs {
            eax: 256,
            ebx: 576,
            ecx: 0,
            edx: 0,
        };
        assert_eq!(guest_view(0xd, 2, avx, w), avx);
        assert_eq!(guest_view(0xd, 5, all_ones(), w), Regs::default());
        assert_eq!(guest_view(0xd, 9, all_ones(), w), Regs::default(), "PKRU");
        assert_eq!(guest_view(0xd, 99, all_ones(), w), Regs::default());
    }

    #[test]
    fn xsave_size_covers_the_last_component() {
        // Sizes and offsets as a Skylake-SP reports them.
        let comp = |n: u32| match n {
            2 => (256, 576),
            5 => (64, 1088),
            6 => (512, 1152),
            7 => (1024, 1664),
            _ => (0, 0),
        };
        assert_eq!(xsave_size(0x3, comp), 576);
        assert_eq!(xsave_size(0x7, comp), 832);
        assert_eq!(xsave_size(0xe7, comp), 2688);
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
        assert_ne!(r.ecx & (1 << 21), 0, "x2APIC offered (emulated)");
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
        assert_eq!(guest_view(0x8000_0001, 0, host, who(0, 1)), host);
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
