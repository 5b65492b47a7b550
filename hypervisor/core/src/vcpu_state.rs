//! The architectural state a vCPU starts in, in the form the VMCS takes it: the PVH
//! boot state of vCPU 0, or what a guest asks for with `VCPUOP_initialise`
//! (`vcpu_hvm_context`), checked so that a hostile context is refused with -EINVAL
//! instead of failing VM entry.

use oxen_abi::hvm_save::{self, HwCpu};
use oxen_abi::vcpu::{HvmContext, HvmSegment};

/// One segment register, VMX layout (access rights with the unusable bit at 16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub selector: u16,
    pub base: u64,
    pub limit: u32,
    pub ar: u32,
}

/// Index of each segment in [`StartState::segs`].
pub mod seg {
    pub const CS: usize = 0;
    pub const SS: usize = 1;
    pub const DS: usize = 2;
    pub const ES: usize = 3;
    pub const FS: usize = 4;
    pub const GS: usize = 5;
    pub const TR: usize = 6;
    pub const LDTR: usize = 7;
}

/// CR0 bits.
const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
/// CR4.PAE.
const CR4_PAE: u64 = 1 << 5;
/// EFER bits.
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;
/// RFLAGS bits a guest may set at start-up: CF PF AF ZF SF TF IF DF OF IOPL NT RF AC ID.
const RFLAGS_ALLOWED: u64 = 0x0025_7fd5;
/// CR4 bits a guest may start with: VME PVI TSD DE PSE PAE MCE PGE PCE OSFXSR
/// OSXMMEXCPT FSGSBASE OSXSAVE.
const CR4_ALLOWED: u64 = 0x0004_07ff | (1 << 16) | (1 << 18);

/// Access rights: present code/data and a busy TSS.
const AR_CODE64: u32 = 0xa09b;
const AR_CODE32: u32 = 0xc09b;
const AR_DATA: u32 = 0xc093;
const AR_TSS32: u32 = 0x8b;
/// Real mode: 16-bit code (execute/read, accessed), data (read/write, accessed), a
/// 16-bit busy TSS.
const AR_REAL_CODE: u32 = 0x9b;
const AR_REAL_DATA: u32 = 0x93;
const AR_TSS16: u32 = 0x83;
const AR_UNUSABLE: u32 = 1 << 16;

/// Everything a vCPU's first VM entry needs from the guest's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartState {
    /// RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI (RSP also goes to the VMCS).
    pub gprs: [u64; 8],
    pub rip: u64,
    pub rflags: u64,
    /// CR0/CR4 as the guest believes them (the hypervisor adds the bits it owns).
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    /// CS, SS, DS, ES, FS, GS, TR, LDTR ([`seg`]).
    pub segs: [Segment; 8],
    /// Long mode active (the VM-entry control "IA-32e mode guest").
    pub long_mode: bool,
}

fn flat(selector: u16, ar: u32) -> Segment {
    Segment {
        selector,
        base: 0,
        limit: 0xffff_ffff,
        ar,
    }
}

fn tss(ar: u32) -> Segment {
    Segment {
        selector: 0,
        base: 0,
        limit: 0x67,
        ar,
    }
}

fn unusable() -> Segment {
    Segment {
        ar: AR_UNUSABLE,
        ..Segment::default()
    }
}

/// Flat code (selector 0x08, access rights `code_ar`) and data (0x10) segments, a busy
/// TSS (0x18) and an unusable LDTR: how Xen starts a PVH vCPU or a 64-bit
/// `VCPUOP_initialise` context.
fn flat_segments(code_ar: u32) -> [Segment; 8] {
    let data = flat(0x10, AR_DATA);
    [
        flat(0x08, code_ar),
        data,
        data,
        data,
        data,
        data,
        Segment {
            selector: 0x18,
            ..tss(AR_TSS32)
        },
        unusable(),
    ]
}

impl StartState {
    /// Xen's PVH entry: 32-bit flat protected mode, paging off, EBX = `ebx`.
    pub fn pvh(entry: u32, ebx: u64) -> Self {
        let mut gprs = [0; 8];
        gprs[3] = ebx;
        StartState {
            gprs,
            rip: u64::from(entry),
            rflags: 0x2,
            cr0: CR0_PE | CR0_ET,
            cr3: 0,
            cr4: 0,
            efer: 0,
            segs: flat_segments(AR_CODE32),
            long_mode: false,
        }
    }

    /// Where a start-up IPI with `vector` starts a vCPU: real mode at `vector << 12`
    /// (CS = `vector << 8`, IP = 0), the state an AP is in after INIT and SIPI.
    pub fn real_mode(vector: u8) -> Self {
        let real = |selector: u16, base: u64, ar: u32| Segment {
            selector,
            base,
            limit: 0xffff,
            ar,
        };
        let cs = u16::from(vector) << 8;
        let data = real(0, 0, AR_REAL_DATA);
        StartState {
            gprs: [0; 8],
            rip: 0,
            rflags: 0x2,
            cr0: CR0_ET,
            cr3: 0,
            cr4: 0,
            efer: 0,
            segs: [
                real(cs, u64::from(vector) << 12, AR_REAL_CODE),
                data,
                data,
                data,
                data,
                data,
                Segment {
                    selector: 0,
                    ..tss(AR_TSS16)
                },
                unusable(),
            ],
            long_mode: false,
        }
    }

    /// The state `VCPUOP_initialise` asks for, or why it is refused: whatever would
    /// fail the VM-entry checks on guest state (SDM Vol. 3C, 27.3.1) is refused here,
    /// so a context Xen takes with `-EINVAL` never reaches the CPU. `phys_bits` is the
    /// guest's physical address width (CR3 must lie below it).
    pub fn from_hvm(ctx: &HvmContext, phys_bits: u32) -> Result<Self, &'static str> {
        match *ctx {
            HvmContext::Mode64 {
                gprs,
                rip,
                rflags,
                cr0,
                cr3,
                cr4,
                efer,
            } => {
                if cr0 & (CR0_PE | CR0_PG) != (CR0_PE | CR0_PG) || cr4 & CR4_PAE == 0 {
                    return Err("64-bit mode needs CR0.PE, CR0.PG and CR4.PAE");
                }
                if efer & EFER_LME == 0 {
                    return Err("64-bit mode needs EFER.LME");
                }
                if rip >> 47 != 0 && rip >> 47 != 0x1_ffff {
                    return Err("RIP is not canonical");
                }
                let s = StartState {
                    gprs,
                    rip,
                    rflags,
                    cr0,
                    cr3,
                    cr4,
                    efer: efer | EFER_LMA,
                    segs: flat_segments(AR_CODE64),
                    long_mode: true,
                };
                s.check_common(phys_bits)
            }
            HvmContext::Mode32 {
                gprs,
                eip,
                eflags,
                cr0,
                cr3,
                cr4,
                efer,
                segs,
            } => {
                let long = efer & EFER_LME != 0 && u64::from(cr0) & CR0_PG != 0;
                if long && u64::from(cr4) & CR4_PAE == 0 {
                    return Err("long mode needs CR4.PAE");
                }
                if u64::from(cr0) & CR0_PG != 0 && u64::from(cr0) & CR0_PE == 0 {
                    return Err("CR0.PG without CR0.PE");
                }
                // Xen's 12-bit attribute format: access byte, then AVL, L, D/B, G.
                let conv = |s: HvmSegment, selector: u16| -> Segment {
                    let ar = u32::from(s.ar);
                    Segment {
                        selector,
                        base: u64::from(s.base),
                        limit: s.limit,
                        ar: if ar & 0x80 == 0 {
                            AR_UNUSABLE
                        } else {
                            (ar & 0xff) | ((ar & 0xf00) << 4)
                        },
                    }
                };
                let [cs, ds, ss, es, tr] = segs;
                let cs = conv(cs, 0x08);
                if cs.ar & AR_UNUSABLE != 0 || cs.ar & 0x18 != 0x18 {
                    return Err("CS must be a present code segment");
                }
                let tr = conv(tr, 0x18);
                let tr = if tr.ar & AR_UNUSABLE != 0 {
                    tss(AR_TSS32)
                } else if tr.ar & 0x1f != 0x0b {
                    // Type 11 (busy 32/64-bit TSS), S = 0.
                    return Err("TR must be a busy TSS");
                } else {
                    tr
                };
                let data = |s| conv(s, 0x10);
                let mut gp = [0u64; 8];
                for (d, s) in gp.iter_mut().zip(gprs) {
                    *d = u64::from(s);
                }
                let mut s = StartState {
                    gprs: gp,
                    rip: u64::from(eip),
                    rflags: u64::from(eflags),
                    cr0: u64::from(cr0),
                    cr3: u64::from(cr3),
                    cr4: u64::from(cr4),
                    // LMA follows LME and PG; one asked for without them is refused below.
                    efer: if long { efer | EFER_LMA } else { efer },
                    segs: [
                        cs,
                        data(ss),
                        data(ds),
                        data(es),
                        unusable(),
                        unusable(),
                        tr,
                        unusable(),
                    ],
                    long_mode: long,
                };
                s.check_segments()?;
                s.check_common(phys_bits)
            }
        }
    }

    /// The state a builder sets with `XEN_DOMCTL_sethvmcontext` (an `hvm_hw_cpu`
    /// record), checked as [`StartState::from_hvm`] checks `VCPUOP_initialise`: long mode
    /// (EFER.LME with CR0.PG) starts with flat segments; otherwise every value must fit
    /// 32 bits and the record's CS, DS, SS, ES and TR are used. R8-R15 start at 0.
    pub fn from_hw_cpu(c: &HwCpu, phys_bits: u32) -> Result<Self, &'static str> {
        let [rax, rbx, rcx, rdx, rbp, rsi, rdi, rsp, ..] = c.gprs;
        let long = c.efer & EFER_LME != 0 && c.cr0 & CR0_PG != 0;
        let ctx = if long {
            HvmContext::Mode64 {
                gprs: [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi],
                rip: c.rip,
                rflags: c.rflags,
                cr0: c.cr0,
                cr3: c.cr3,
                cr4: c.cr4,
                efer: c.efer,
            }
        } else {
            let narrow =
                |v: u64| u32::try_from(v).map_err(|_| "a 32-bit context holds a 64-bit value");
            let seg = |i: usize| -> Result<HvmSegment, &'static str> {
                let s = c.segs[i];
                Ok(HvmSegment {
                    base: narrow(s.base)?,
                    limit: s.limit,
                    ar: s.attr,
                })
            };
            use hvm_save::seg;
            let mut gprs = [0u32; 8];
            for (d, v) in gprs
                .iter_mut()
                .zip([rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi])
            {
                *d = narrow(v)?;
            }
            HvmContext::Mode32 {
                gprs,
                eip: narrow(c.rip)?,
                eflags: narrow(c.rflags)?,
                cr0: narrow(c.cr0)?,
                cr3: narrow(c.cr3)?,
                cr4: narrow(c.cr4)?,
                efer: c.efer,
                segs: [
                    seg(seg::CS)?,
                    seg(seg::DS)?,
                    seg(seg::SS)?,
                    seg(seg::ES)?,
                    seg(seg::TR)?,
                ],
            }
        };
        Self::from_hvm(&ctx, phys_bits)
    }

    /// The state as an `hvm_hw_cpu` record (`XEN_DOMCTL_gethvmcontext`): registers in
    /// the record's order, segments in Xen's 12-bit attribute format (an unusable one
    /// has attributes 0). What oxen does not keep (FPU, debug registers, MSRs but EFER)
    /// is 0. Setting the record again ([`StartState::from_hw_cpu`]) gives this state back.
    pub fn to_hw_cpu(&self) -> HwCpu {
        let [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi] = self.gprs;
        let attr = |s: &Segment| -> u16 {
            if s.ar & AR_UNUSABLE != 0 {
                0
            } else {
                ((s.ar & 0xff) | ((s.ar >> 4) & 0xf00)) as u16
            }
        };
        let mut c = HwCpu {
            rip: self.rip,
            rflags: self.rflags,
            cr0: self.cr0,
            cr3: self.cr3,
            cr4: self.cr4,
            efer: self.efer,
            ..HwCpu::default()
        };
        c.gprs[..8].copy_from_slice(&[rax, rbx, rcx, rdx, rbp, rsi, rdi, rsp]);
        use hvm_save::seg as hw;
        for (from, to) in [
            (seg::CS, hw::CS),
            (seg::SS, hw::SS),
            (seg::DS, hw::DS),
            (seg::ES, hw::ES),
            (seg::FS, hw::FS),
            (seg::GS, hw::GS),
            (seg::TR, hw::TR),
            (seg::LDTR, hw::LDTR),
        ] {
            let s = &self.segs[from];
            c.segs[to] = hvm_save::Segment {
                sel: s.selector,
                limit: s.limit,
                base: s.base,
                attr: attr(s),
            };
        }
        c
    }

    /// The VM-entry checks on segment registers (SDM 27.3.1.2) for a protected-mode
    /// context: present, S = 1 code in CS (non-conforming with DPL 0, or conforming),
    /// SS a writable data segment with DPL 0 (its selector's RPL), DS and ES data or
    /// readable code, every usable segment's limit consistent with its granularity,
    /// CS.L only with long mode and then CS.D clear. The accessed bits are set, as
    /// loading the segment would.
    fn check_segments(&mut self) -> Result<(), &'static str> {
        const ACCESSED: u32 = 1;
        let granular = |s: &Segment| {
            let g = s.ar & (1 << 15) != 0;
            (s.limit & 0xfff == 0xfff || !g) && (s.limit >> 20 == 0 || g)
        };
        let (dpl, present, code) = (
            |s: &Segment| (s.ar >> 5) & 3,
            |s: &Segment| s.ar & 0x80 != 0 && s.ar & 0x10 != 0,
            |s: &Segment| s.ar & 0x8 != 0,
        );
        let reserved = |s: &Segment| s.ar & 0xfffe_0f00 != 0;
        let cs = &mut self.segs[seg::CS];
        cs.ar |= ACCESSED;
        let conforming = cs.ar & 0x4 != 0;
        if !present(cs) || !code(cs) || reserved(cs) {
            return Err("CS must be a present code segment");
        }
        if !conforming && dpl(cs) != 0 {
            return Err("CS must have DPL 0");
        }
        if !granular(cs) {
            return Err("CS limit and granularity disagree");
        }
        let l = cs.ar & (1 << 13) != 0;
        if l && (!self.long_mode || cs.ar & (1 << 14) != 0) {
            return Err("CS.L needs long mode and CS.D clear");
        }
        let ss = &mut self.segs[seg::SS];
        if ss.ar & AR_UNUSABLE == 0 {
            ss.ar |= ACCESSED;
            if !present(ss) || code(ss) || ss.ar & 0x2 == 0 || reserved(ss) {
                return Err("SS must be a present writable data segment");
            }
            if dpl(ss) != 0 {
                return Err("SS must have DPL 0");
            }
            if !granular(ss) {
                return Err("SS limit and granularity disagree");
            }
        } else if !self.long_mode {
            return Err("SS must be usable outside long mode");
        }
        for i in [seg::DS, seg::ES] {
            let d = &mut self.segs[i];
            if d.ar & AR_UNUSABLE != 0 {
                continue;
            }
            d.ar |= ACCESSED;
            if !present(d) || reserved(d) {
                return Err("DS and ES must be present (or unusable)");
            }
            if code(d) && d.ar & 0x2 == 0 {
                return Err("DS and ES cannot be execute-only code");
            }
            if !granular(d) {
                return Err("a data segment's limit and granularity disagree");
            }
        }
        if !granular(&self.segs[seg::TR]) {
            return Err("TR limit and granularity disagree");
        }
        if !self.long_mode && self.rip >> 32 != 0 {
            return Err("RIP beyond 4 GiB outside long mode");
        }
        Ok(())
    }

    fn check_common(mut self, phys_bits: u32) -> Result<Self, &'static str> {
        if self.rflags & !RFLAGS_ALLOWED & !0x2 != 0 {
            return Err("RFLAGS has reserved bits set");
        }
        self.rflags |= 0x2;
        if self.cr4 & !CR4_ALLOWED != 0 {
            return Err("CR4 has bits oxen does not offer");
        }
        if self.efer & !(EFER_LME | EFER_LMA | EFER_NXE | 1) != 0 {
            return Err("EFER has bits oxen does not offer");
        }
        if self.cr0 >> 32 != 0 || self.cr3 >> phys_bits.clamp(32, 52) != 0 {
            return Err("CR0 or CR3 has reserved bits set (CR3 beyond the physical address width)");
        }
        if self.cr0 & CR0_PG != 0 && self.cr0 & CR0_PE == 0 {
            return Err("CR0.PG without CR0.PE");
        }
        if self.efer & EFER_LMA != 0 && !self.long_mode {
            return Err("EFER.LMA without long mode");
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx64(rip: u64) -> HvmContext {
        HvmContext::Mode64 {
            gprs: [0, 0, 0, 0, 0x8000, 0, 0, 7],
            rip,
            rflags: 0x2,
            cr0: 0x8000_0011,
            cr3: 0x1000,
            cr4: 0x20,
            efer: 0x100,
        }
    }

    #[test]
    fn a_start_up_ipi_starts_in_real_mode() {
        let s = StartState::real_mode(0x9a);
        let cs = s.segs[seg::CS];
        assert_eq!(
            (cs.selector, cs.base, cs.limit, cs.ar),
            (0x9a00, 0x9a000, 0xffff, 0x9b)
        );
        assert_eq!(s.rip, 0);
        assert_eq!(s.cr0 & CR0_PE, 0, "real mode");
        assert!(!s.long_mode);
        assert_eq!(s.segs[seg::SS].ar, 0x93);
        assert_eq!(s.segs[seg::TR].ar, 0x83);
    }

    fn pvh_record(rip: u64) -> HwCpu {
        HwCpu::pvh(rip, 0x6000)
    }

    #[test]
    fn hvm_cpu_records_become_start_states() {
        let s = StartState::from_hw_cpu(&pvh_record(0x1000), 40).unwrap();
        assert_eq!(s.rip, 0x1000);
        assert_eq!(s.gprs[3], 0x6000, "RBX");
        assert!(!s.long_mode);
        assert_eq!(s.segs[seg::CS].ar & 0xf0ff, 0xc09b);
        assert_eq!(s.segs[seg::SS].ar & 0xf0ff, 0xc093);
        // A 64-bit value in a 32-bit record.
        let mut c = pvh_record(0x1_0000_0000);
        assert!(StartState::from_hw_cpu(&c, 40).is_err());
        c.rip = 0x1000;
        c.gprs[0] = 1 << 40;
        assert!(StartState::from_hw_cpu(&c, 40).is_err());
        // No code segment.
        let mut c = pvh_record(0x1000);
        c.segs[oxen_abi::hvm_save::seg::CS].attr = 0;
        assert!(StartState::from_hw_cpu(&c, 40).is_err());
        // Long mode: flat segments of the hypervisor's, the registers as given.
        let mut c = pvh_record(0xffff_ffff_8000_0000);
        c.cr0 = 0x8000_0011;
        c.cr4 = 0x20;
        c.cr3 = 0x2000;
        c.efer = 0x500;
        c.gprs[7] = 0x9000;
        let s = StartState::from_hw_cpu(&c, 40).unwrap();
        assert!(s.long_mode);
        assert_eq!(
            (s.rip, s.gprs[4], s.cr3),
            (0xffff_ffff_8000_0000, 0x9000, 0x2000)
        );
        c.rip = 0x8000_0000_0000;
        assert!(
            StartState::from_hw_cpu(&c, 40).is_err(),
            "non-canonical RIP"
        );
    }

    #[test]
    fn a_start_state_reads_back_as_the_record_that_sets_it() {
        use oxen_abi::hvm_save::seg as hw;
        let set = pvh_record(0x1000);
        let s = StartState::from_hw_cpu(&set, 40).unwrap();
        let got = s.to_hw_cpu();
        assert_eq!((got.rip, got.rflags, got.cr0), (0x1000, 2, 0x11));
        assert_eq!(got.gprs[1], 0x6000, "RBX is the record's second register");
        assert_eq!(got.segs[hw::CS].attr, 0xc9b, "Xen's attribute format");
        assert_eq!(got.segs[hw::SS].attr, 0xc93);
        assert_eq!(got.segs[hw::TR].attr, 0x8b);
        assert_eq!(got.segs[hw::LDTR].attr, 0, "unusable");
        assert_eq!(got.segs[hw::CS].limit, 0xffff_ffff);
        assert_eq!(
            StartState::from_hw_cpu(&got, 40),
            Ok(s),
            "set again, same state"
        );
        // Every general register lands where the record keeps it.
        let mut s = StartState::pvh(0x2000, 0);
        s.gprs = [1, 2, 3, 4, 5, 6, 7, 8];
        let c = s.to_hw_cpu();
        // RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI in; RAX, RBX, RCX, RDX, RBP, RSI, RDI,
        // RSP out.
        assert_eq!(c.gprs[..8], [1, 4, 2, 3, 6, 7, 8, 5]);
        assert_eq!(c.gprs[8..], [0; 8]);
        // A 64-bit state too.
        let s = StartState::from_hvm(&ctx64(0xffff_8000_0000_1000), 40).unwrap();
        assert_eq!(StartState::from_hw_cpu(&s.to_hw_cpu(), 40), Ok(s));
    }

    #[test]
    fn pvh_state_is_flat_32_bit() {
        let s = StartState::pvh(0x10_0000, 0x6000);
        assert_eq!(s.gprs[3], 0x6000);
        assert_eq!(s.rip, 0x10_0000);
        assert!(!s.long_mode);
        assert_eq!(s.segs[seg::CS].ar, 0xc09b);
        assert_eq!(s.segs[seg::LDTR].ar, 1 << 16);
    }

    #[test]
    fn long_mode_context_is_accepted() {
        let s = StartState::from_hvm(&ctx64(0xffff_8000_0000_1000), 40).unwrap();
        assert!(s.long_mode);
        assert_eq!(s.efer, 0x500, "LMA added");
        assert_eq!(s.segs[seg::CS].ar, 0xa09b);
        assert_eq!((s.gprs[4], s.gprs[7]), (0x8000, 7));
    }

    #[test]
    fn hostile_contexts_are_refused() {
        assert!(StartState::from_hvm(&ctx64(0x0000_8000_0000_0000), 40).is_err());
        let bad = |f: fn(&mut HvmContext)| {
            let mut c = ctx64(0x1000);
            f(&mut c);
            StartState::from_hvm(&c, 40)
        };
        let cases: [fn(&mut HvmContext); 6] = [
            |c| {
                if let HvmContext::Mode64 { cr0, .. } = c {
                    *cr0 = 0x11
                }
            },
            |c| {
                if let HvmContext::Mode64 { cr4, .. } = c {
                    *cr4 = 0
                }
            },
            |c| {
                if let HvmContext::Mode64 { efer, .. } = c {
                    *efer = 0
                }
            },
            |c| {
                if let HvmContext::Mode64 { rflags, .. } = c {
                    *rflags = 1 << 40
                }
            },
            |c| {
                if let HvmContext::Mode64 { cr4, .. } = c {
                    *cr4 = 0x20 | (1 << 13)
                }
            },
            |c| {
                if let HvmContext::Mode64 { efer, .. } = c {
                    *efer = 0x100 | (1 << 20)
                }
            },
        ];
        for (i, f) in cases.into_iter().enumerate() {
            assert!(bad(f).is_err(), "case {i}");
        }
    }

    #[test]
    fn mode32_context_converts_attributes() {
        let seg = |ar| HvmSegment {
            base: 0,
            limit: 0xffff_ffff,
            ar,
        };
        let c = HvmContext::Mode32 {
            gprs: [1, 2, 3, 4, 5, 6, 7, 8],
            eip: 0x2000,
            eflags: 0x2,
            cr0: 0x11,
            cr3: 0,
            cr4: 0,
            efer: 0,
            segs: [seg(0xc9b), seg(0xc93), seg(0xc93), seg(0xc93), seg(0)],
        };
        let s = StartState::from_hvm(&c, 40).unwrap();
        assert_eq!(s.segs[seg::CS].ar, 0xc09b);
        assert_eq!(s.segs[seg::SS].ar, 0xc093);
        assert_eq!(s.segs[seg::TR].ar, 0x8b);
        assert_eq!(s.gprs[0], 1);
        // A busy TSS given explicitly is kept; anything else as TR is refused.
        let tss = ctx32(|s, _, _, _| {
            s[4].ar = 0x8b;
            s[4].limit = 0x67;
        });
        assert_eq!(
            StartState::from_hvm(&tss, 40).unwrap().segs[seg::TR].ar,
            0x8b
        );
        let not_tss = ctx32(|s, _, _, _| {
            s[4].ar = 0x93;
            s[4].limit = 0x67;
        });
        assert!(StartState::from_hvm(&not_tss, 40).is_err());
        // A data segment as CS is refused.
        let data_cs = ctx32(|s, _, _, _| s[0].ar = 0xc93);
        assert!(StartState::from_hvm(&data_cs, 40).is_err());
    }

    /// A change to a 32-bit context: its segments, CR0, CR3 and EFER.
    type Tweak = fn(&mut [HvmSegment; 5], &mut u32, &mut u32, &mut u64);

    /// A 32-bit context with flat segments, changed by `f`.
    fn ctx32(f: impl FnOnce(&mut [HvmSegment; 5], &mut u32, &mut u32, &mut u64)) -> HvmContext {
        let seg = |ar| HvmSegment {
            base: 0,
            limit: 0xffff_ffff,
            ar,
        };
        let mut segs = [seg(0xc9b), seg(0xc93), seg(0xc93), seg(0xc93), seg(0)];
        let (mut cr0, mut cr3, mut efer) = (0x11u32, 0u32, 0u64);
        f(&mut segs, &mut cr0, &mut cr3, &mut efer);
        HvmContext::Mode32 {
            gprs: [0; 8],
            eip: 0x2000,
            eflags: 0x2,
            cr0,
            cr3,
            cr4: 0,
            efer,
            segs,
        }
    }

    #[test]
    fn contexts_that_would_fail_vm_entry_are_refused() {
        let ok = StartState::from_hvm(&ctx32(|_, _, _, _| {}), 40).unwrap();
        assert_eq!(ok.segs[seg::CS].ar & 1, 1, "accessed bit set");
        // The cases: SS.DPL 3, an execute-only code segment as DS, a 4 GiB CS
        // limit with G = 0, EFER.LMA without paging.
        let cases: [(&str, Tweak); 7] = [
            ("SS.DPL 3", |s, _, _, _| s[2].ar = 0xcf3),
            ("execute-only DS", |s, _, _, _| s[1].ar = 0xc99),
            ("4 GiB CS limit with G = 0", |s, _, _, _| s[0].ar = 0x49b),
            ("EFER.LMA without paging", |_, _, _, e| *e = 0x400),
            ("CS with DPL 3", |s, _, _, _| s[0].ar = 0xcfb),
            ("code as SS", |s, _, _, _| s[2].ar = 0xc9b),
            ("a system segment as DS", |s, _, _, _| s[1].ar = 0xc83),
        ];
        for (what, f) in cases {
            assert!(
                StartState::from_hvm(&ctx32(f), 40).is_err(),
                "{what} must be refused"
            );
        }
        // Limit 0xfffff with G = 0 is fine; with G = 1 the low 12 bits must be ones.
        let small = ctx32(|s, _, _, _| {
            s[1].limit = 0xf_ffff;
            s[1].ar = 0x493;
        });
        assert!(StartState::from_hvm(&small, 40).is_ok());
        let ragged = ctx32(|s, _, _, _| s[3].limit = 0xffff_f000);
        assert!(StartState::from_hvm(&ragged, 40).is_err());
        // Readable code is a valid data segment; an unusable DS is fine too.
        assert!(StartState::from_hvm(&ctx32(|s, _, _, _| s[1].ar = 0xc9b), 40).is_ok());
        assert!(StartState::from_hvm(&ctx32(|s, _, _, _| s[1].ar = 0), 40).is_ok());
        // CR3 beyond the physical address width: refused for 40 bits, not for 48.
        let mut c = ctx64(0x1000);
        if let HvmContext::Mode64 { cr3, .. } = &mut c {
            *cr3 = 1 << 47;
        }
        assert!(StartState::from_hvm(&c, 40).is_err());
        assert!(StartState::from_hvm(&c, 48).is_ok());
    }
}
