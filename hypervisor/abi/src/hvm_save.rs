//! HVM save records (`arch-x86/hvm/save.h`), as `XEN_DOMCTL_sethvmcontext` takes them:
//! a sequence of (descriptor, record), the first a header, the last `END`. oxen reads
//! the header and the CPU records (`struct hvm_hw_cpu`, one per vCPU: the registers a
//! builder sets for the boot vCPU).

/// `HVM_FILE_MAGIC` and `HVM_FILE_VERSION`.
pub const FILE_MAGIC: u32 = 0x5438_1286;
pub const FILE_VERSION: u32 = 1;

/// Record type codes (`HVM_SAVE_CODE`).
pub mod code {
    pub const END: u16 = 0;
    pub const HEADER: u16 = 1;
    pub const CPU: u16 = 2;
}

le_struct! {
    /// `struct hvm_save_descriptor`: what follows and how long it is.
    pub struct Descriptor {
        pub typecode: u16,
        /// The vCPU, for per-vCPU records.
        pub instance: u16,
        pub length: u32,
    }
}

le_struct! {
    /// `struct hvm_save_header`.
    pub struct Header {
        pub magic: u32,
        pub version: u32,
        pub changeset: u64,
        pub cpuid: u32,
        pub gtsc_khz: u32,
    }
}

/// `sizeof(struct hvm_hw_cpu)`.
pub const CPU_SIZE: usize = 1032;

/// Byte offsets in `struct hvm_hw_cpu` (after 512 bytes of FXSAVE image).
pub mod cpu {
    /// RAX, RBX, RCX, RDX, RBP, RSI, RDI, RSP, then R8..R15: 8 bytes each.
    pub const RAX: usize = 512;
    pub const RIP: usize = 640;
    pub const RFLAGS: usize = 648;
    pub const CR0: usize = 656;
    pub const CR2: usize = 664;
    pub const CR3: usize = 672;
    pub const CR4: usize = 680;
    pub const DR0: usize = 688;
    /// Selectors of CS, DS, ES, FS, GS, SS, TR, LDTR: 4 bytes each.
    pub const CS_SEL: usize = 736;
    /// Limits of the same, then IDTR and GDTR: 4 bytes each.
    pub const CS_LIMIT: usize = 768;
    /// Bases in the same order as the limits: 8 bytes each.
    pub const CS_BASE: usize = 808;
    /// Xen's 12-bit attribute words of CS..LDTR: 4 bytes each.
    pub const CS_ARBYTES: usize = 888;
    pub const SYSENTER_CS: usize = 920;
    pub const SHADOW_GS: usize = 944;
    pub const MSR_FLAGS: usize = 952;
    pub const MSR_LSTAR: usize = 960;
    pub const MSR_EFER: usize = 992;
    pub const MSR_TSC_AUX: usize = 1000;
    pub const TSC: usize = 1008;
    pub const PENDING_EVENT: usize = 1016;
    pub const ERROR_CODE: usize = 1020;
    pub const FLAGS: usize = 1024;
}

/// Segment index in the selector, limit, base and attribute arrays of `hvm_hw_cpu`.
pub mod seg {
    pub const CS: usize = 0;
    pub const DS: usize = 1;
    pub const ES: usize = 2;
    pub const FS: usize = 3;
    pub const GS: usize = 4;
    pub const SS: usize = 5;
    pub const TR: usize = 6;
    pub const LDTR: usize = 7;
}

/// One segment of a CPU record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub sel: u16,
    pub limit: u32,
    pub base: u64,
    /// Xen's 12-bit attributes: type, S, DPL, P, AVL, L, D/B, G.
    pub attr: u16,
}

/// What oxen takes from a `struct hvm_hw_cpu`: the general registers (RAX, RBX, RCX,
/// RDX, RBP, RSI, RDI, RSP, R8..R15 as in the record), RIP, RFLAGS, the control
/// registers, EFER and the segments CS..LDTR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HwCpu {
    pub gprs: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub segs: [Segment; 8],
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(crate::le::get(b, at))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(crate::le::get(b, at))
}

impl HwCpu {
    /// The record a PVH builder writes for the boot vCPU (as Xen's `libxenguest` does):
    /// 32-bit flat protected mode (CR0 = PE | ET, flat code and data segments, a busy
    /// TSS), paging off, at `rip`, with RBX = `rbx` (the `hvm_start_info` address).
    pub fn pvh(rip: u64, rbx: u64) -> Self {
        let flat = |attr| Segment {
            sel: 0,
            limit: 0xffff_ffff,
            base: 0,
            attr,
        };
        let mut c = HwCpu {
            rip,
            rflags: 2,
            cr0: 0x11,
            ..HwCpu::default()
        };
        c.gprs[1] = rbx;
        c.segs[seg::CS] = flat(0xc9b);
        for s in [seg::DS, seg::ES, seg::SS] {
            c.segs[s] = flat(0xc93);
        }
        c.segs[seg::TR] = Segment {
            limit: 0x67,
            attr: 0x8b,
            ..Segment::default()
        };
        c
    }

    /// Reads a CPU record; `None` if it is short.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b = b.get(..CPU_SIZE)?;
        let seg = |i: usize| Segment {
            sel: u32_at(b, cpu::CS_SEL + 4 * i) as u16,
            limit: u32_at(b, cpu::CS_LIMIT + 4 * i),
            base: u64_at(b, cpu::CS_BASE + 8 * i),
            attr: u32_at(b, cpu::CS_ARBYTES + 4 * i) as u16,
        };
        Some(HwCpu {
            gprs: core::array::from_fn(|i| u64_at(b, cpu::RAX + 8 * i)),
            rip: u64_at(b, cpu::RIP),
            rflags: u64_at(b, cpu::RFLAGS),
            cr0: u64_at(b, cpu::CR0),
            cr3: u64_at(b, cpu::CR3),
            cr4: u64_at(b, cpu::CR4),
            efer: u64_at(b, cpu::MSR_EFER),
            segs: core::array::from_fn(seg),
        })
    }

    /// The record's bytes (every field oxen does not keep is 0).
    pub fn to_bytes(&self) -> [u8; CPU_SIZE] {
        let mut b = [0u8; CPU_SIZE];
        let mut put = |at: usize, v: &[u8]| crate::le::put(&mut b, at, v);
        for (i, r) in self.gprs.iter().enumerate() {
            put(cpu::RAX + 8 * i, &r.to_le_bytes());
        }
        put(cpu::RIP, &self.rip.to_le_bytes());
        put(cpu::RFLAGS, &self.rflags.to_le_bytes());
        put(cpu::CR0, &self.cr0.to_le_bytes());
        put(cpu::CR3, &self.cr3.to_le_bytes());
        put(cpu::CR4, &self.cr4.to_le_bytes());
        put(cpu::MSR_EFER, &self.efer.to_le_bytes());
        for (i, s) in self.segs.iter().enumerate() {
            put(cpu::CS_SEL + 4 * i, &u32::from(s.sel).to_le_bytes());
            put(cpu::CS_LIMIT + 4 * i, &s.limit.to_le_bytes());
            put(cpu::CS_BASE + 8 * i, &s.base.to_le_bytes());
            put(cpu::CS_ARBYTES + 4 * i, &u32::from(s.attr).to_le_bytes());
        }
        b
    }
}

/// Bytes of [`one_cpu_stream`]: three descriptors, the header and one CPU record.
pub const ONE_CPU_STREAM_SIZE: usize = 3 * Descriptor::SIZE + Header::SIZE + CPU_SIZE;

/// The `sethvmcontext` record stream for one vCPU: header (with `magic`), `cpu` as vCPU
/// 0's CPU record, end.
pub fn one_cpu_stream(cpu: &HwCpu, magic: u32) -> [u8; ONE_CPU_STREAM_SIZE] {
    let mut b = [0u8; ONE_CPU_STREAM_SIZE];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        b[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    let desc = |typecode, length| Descriptor {
        typecode,
        instance: 0,
        length,
    };
    put(&desc(code::HEADER, Header::SIZE as u32).to_bytes());
    put(&Header {
        magic,
        version: FILE_VERSION,
        ..Header::default()
    }
    .to_bytes());
    put(&desc(code::CPU, CPU_SIZE as u32).to_bytes());
    put(&cpu.to_bytes());
    put(&desc(code::END, 0).to_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_cpu_stream_holds_the_header_and_the_cpu() {
        let cpu = HwCpu::pvh(0x10_0000, 0x6000);
        let b = one_cpu_stream(&cpu, FILE_MAGIC);
        assert_eq!(b.len(), 1080);
        let cpu_at = 2 * Descriptor::SIZE + Header::SIZE;
        assert_eq!(u16::from_le_bytes([b[0], b[1]]), code::HEADER);
        assert_eq!(
            u32::from_le_bytes(b[Descriptor::SIZE..][..4].try_into().unwrap()),
            FILE_MAGIC
        );
        assert_eq!(HwCpu::from_bytes(&b[cpu_at..][..CPU_SIZE]), Some(cpu));
        assert_eq!(
            u16::from_le_bytes([b[cpu_at + CPU_SIZE], b[cpu_at + CPU_SIZE + 1]]),
            code::END
        );
    }

    #[test]
    fn a_cpu_record_reads_back() {
        let mut c = HwCpu {
            rip: 0x10_0000,
            rflags: 2,
            cr0: 0x11,
            efer: 0,
            ..HwCpu::default()
        };
        c.gprs[1] = 0x6000;
        c.segs[seg::CS] = Segment {
            sel: 8,
            limit: 0xffff_ffff,
            base: 0,
            attr: 0xc9b,
        };
        let b = c.to_bytes();
        assert_eq!(
            u64_at(&b, cpu::RAX + 8),
            0x6000,
            "RBX is the second register"
        );
        assert_eq!(HwCpu::from_bytes(&b), Some(c));
        assert_eq!(HwCpu::from_bytes(&b[..CPU_SIZE - 1]), None);
    }
}
