//! The local APIC a vCPU sees, in x2APIC mode (SDM Vol. 3A, 11.12): the register file
//! behind MSRs 0x800–0x83F, with IRR/ISR/TMR, the task and processor priorities, EOI,
//! the interrupt command register and the timer. Pure logic: the hypervisor feeds it
//! MSR accesses and the time, and acts on what it returns ([`Effect`]): IPIs to
//! deliver, a timer deadline to arm, a vector to inject ([`Lapic::deliverable`]).
//!
//! The timer counts at 1 GHz divided by the divide configuration (Xen's virtual APIC
//! bus runs at 1 ns per cycle), in one-shot or periodic mode; TSC-deadline mode is not
//! offered (CPUID does not advertise it) and a write selecting it is taken as one-shot.

/// The x2APIC MSR range.
pub const MSR_BASE: u32 = 0x800;
pub const MSR_END: u32 = 0x8ff;

/// Register numbers: the MSR minus [`MSR_BASE`] (the xAPIC offset divided by 16).
pub mod reg {
    pub const ID: u32 = 0x02;
    pub const VERSION: u32 = 0x03;
    pub const TPR: u32 = 0x08;
    pub const PPR: u32 = 0x0a;
    pub const EOI: u32 = 0x0b;
    pub const LDR: u32 = 0x0d;
    pub const SVR: u32 = 0x0f;
    pub const ISR0: u32 = 0x10;
    pub const TMR0: u32 = 0x18;
    pub const IRR0: u32 = 0x20;
    pub const ESR: u32 = 0x28;
    pub const LVT_CMCI: u32 = 0x2f;
    pub const ICR: u32 = 0x30;
    pub const LVT_TIMER: u32 = 0x32;
    pub const LVT_THERMAL: u32 = 0x33;
    pub const LVT_PMC: u32 = 0x34;
    pub const LVT_LINT0: u32 = 0x35;
    pub const LVT_LINT1: u32 = 0x36;
    pub const LVT_ERROR: u32 = 0x37;
    pub const TIMER_INITIAL: u32 = 0x38;
    pub const TIMER_CURRENT: u32 = 0x39;
    pub const TIMER_DIVIDE: u32 = 0x3e;
    pub const SELF_IPI: u32 = 0x3f;
}

/// The version register: version 0x14 (an integrated APIC), 7 LVT entries (max LVT 6).
pub const VERSION: u32 = 0x14 | (6 << 16);
/// LVT mask bit.
const MASKED: u32 = 1 << 16;
/// SVR: APIC software enable.
const SVR_ENABLE: u32 = 1 << 8;
/// ESR bits: a send or a receipt of an illegal vector (below 16).
const ESR_SEND_ILLEGAL: u32 = 1 << 5;
const ESR_RECEIVE_ILLEGAL: u32 = 1 << 6;
/// The timer LVT's mode field (bits 18:17): 0 one-shot, 1 periodic.
const TIMER_PERIODIC: u32 = 1 << 17;

/// The LVT registers in order, for the reset state.
const LVTS: [u32; 7] = [
    reg::LVT_CMCI,
    reg::LVT_TIMER,
    reg::LVT_THERMAL,
    reg::LVT_PMC,
    reg::LVT_LINT0,
    reg::LVT_LINT1,
    reg::LVT_ERROR,
];

/// What an access must fault with: #GP (reserved or read-only register, reserved bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault;

/// Where an IPI goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// The APIC with this x2APIC id (0xffff_ffff: every APIC).
    Physical(u32),
    /// Logical mode: x2APIC cluster (bits 31:16) and member bitmap (15:0).
    Logical(u32),
    /// Shorthands.
    ToSelf,
    All,
    AllButSelf,
}

/// What kind of IPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpiKind {
    Fixed(u8),
    /// Lowest priority: delivered as fixed to the first APIC of the set.
    LowestPriority(u8),
    Nmi,
    Init,
    /// Start-up at the page `vector << 12`.
    Startup(u8),
}

/// An IPI the hypervisor must deliver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipi {
    pub kind: IpiKind,
    pub dest: Dest,
}

/// What a register write asks of the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Deliver this IPI.
    Ipi(Ipi),
    /// The timer changed: arm it for [`Lapic::timer_deadline`] (or disarm).
    Timer,
    /// An EOI retired an in-service vector (and a higher priority may now be due).
    Eoi(u8),
}

/// One vCPU's local APIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lapic {
    id: u32,
    tpr: u32,
    svr: u32,
    esr: u32,
    /// Errors latched since the last write of ESR.
    esr_pending: u32,
    irr: [u64; 4],
    isr: [u64; 4],
    tmr: [u64; 4],
    lvt: [u32; 7],
    icr: u64,
    timer_initial: u32,
    timer_divide: u32,
    /// System time (ns) the current count started from its initial value.
    timer_start: u64,
}

fn bit(v: u8) -> (usize, u64) {
    (usize::from(v / 64), 1u64 << (v % 64))
}

fn highest(set: &[u64; 4]) -> Option<u8> {
    (0..4)
        .rev()
        .find(|&i| set[i] != 0)
        .map(|i| (i as u32 * 64 + 63 - set[i].leading_zeros()) as u8)
}

impl Lapic {
    /// The APIC of the vCPU with x2APIC id `id`, in its reset state (software
    /// disabled, every LVT masked, the timer stopped).
    pub fn new(id: u32) -> Self {
        Lapic {
            id,
            tpr: 0,
            svr: 0xff,
            esr: 0,
            esr_pending: 0,
            irr: [0; 4],
            isr: [0; 4],
            tmr: [0; 4],
            lvt: [MASKED; 7],
            icr: 0,
            timer_initial: 0,
            timer_divide: 0,
            timer_start: 0,
        }
    }

    /// The x2APIC id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The logical destination register: cluster `id >> 4`, member `1 << (id & 15)`.
    pub fn ldr(&self) -> u32 {
        ((self.id >> 4) << 16) | (1 << (self.id & 0xf))
    }

    fn lvt_index(r: u32) -> Option<usize> {
        LVTS.iter().position(|&l| l == r)
    }

    /// Whether the APIC is software-enabled (SVR bit 8).
    pub fn enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    /// The processor priority: the higher of TPR and the class of the highest
    /// in-service vector.
    pub fn ppr(&self) -> u32 {
        let isr_class = highest(&self.isr).map_or(0, |v| u32::from(v) & 0xf0);
        if (self.tpr & 0xf0) >= isr_class {
            self.tpr & 0xff
        } else {
            isr_class
        }
    }

    /// The divide configuration as a divisor (1, 2, 4 … 128).
    fn divisor(&self) -> u64 {
        let d = self.timer_divide;
        let code = (d & 3) | ((d >> 1) & 4);
        if code == 7 { 1 } else { 2 << code }
    }

    /// Nanoseconds one full count of the timer lasts.
    fn period_ns(&self) -> u64 {
        u64::from(self.timer_initial) * self.divisor()
    }

    fn periodic(&self) -> bool {
        self.lvt[1] & TIMER_PERIODIC != 0
    }

    /// The timer's current count at `now`.
    pub fn current_count(&self, now: u64) -> u32 {
        let period = self.period_ns();
        if period == 0 {
            return 0;
        }
        let mut elapsed = now.saturating_sub(self.timer_start);
        if elapsed >= period {
            if !self.periodic() {
                return 0;
            }
            elapsed %= period;
        }
        ((period - elapsed) / self.divisor()) as u32
    }

    /// When the timer next expires (system time), if it runs.
    pub fn timer_deadline(&self, now: u64) -> Option<u64> {
        let period = self.period_ns();
        if period == 0 {
            return None;
        }
        let end = self.timer_start.saturating_add(period);
        if now < end {
            return Some(end);
        }
        if !self.periodic() {
            // Expired (and delivered by `timer_expired`).
            return None;
        }
        let n = (now - self.timer_start) / period + 1;
        Some(self.timer_start.saturating_add(n.saturating_mul(period)))
    }

    /// The timer expired at `now`: raises its vector (unless masked) and, in periodic
    /// mode, starts the next period. Returns whether a vector was raised.
    pub fn timer_expired(&mut self, now: u64) -> bool {
        let period = self.period_ns();
        if period == 0 || now < self.timer_start.saturating_add(period) {
            return false;
        }
        if self.periodic() {
            // Whole periods that passed count once (as a late tick on hardware).
            let n = (now - self.timer_start) / period;
            self.timer_start = self.timer_start.saturating_add(n.saturating_mul(period));
        } else {
            self.timer_initial = 0;
        }
        let lvt = self.lvt[1];
        if lvt & MASKED != 0 {
            return false;
        }
        self.accept(lvt as u8, false)
    }

    /// Takes a fixed interrupt with `vector` (edge or `level` triggered) into IRR.
    /// False if it was refused: the APIC is disabled, or the vector is illegal (the
    /// error is latched in ESR).
    pub fn accept(&mut self, vector: u8, level: bool) -> bool {
        if vector < 16 {
            self.esr_pending |= ESR_RECEIVE_ILLEGAL;
            return false;
        }
        if !self.enabled() {
            return false;
        }
        let (i, b) = bit(vector);
        self.irr[i] |= b;
        if level {
            self.tmr[i] |= b;
        } else {
            self.tmr[i] &= !b;
        }
        true
    }

    /// The vector to inject now, if one in IRR has a priority class above PPR.
    pub fn deliverable(&self) -> Option<u8> {
        let v = highest(&self.irr)?;
        (u32::from(v) & 0xf0 > self.ppr() & 0xf0).then_some(v)
    }

    /// The CPU took `vector` (it was [`Lapic::deliverable`]): IRR to ISR.
    pub fn acknowledge(&mut self, vector: u8) {
        let (i, b) = bit(vector);
        self.irr[i] &= !b;
        self.isr[i] |= b;
    }

    /// Whether any vector waits in IRR (deliverable or not).
    pub fn has_pending(&self) -> bool {
        self.irr.iter().any(|&w| w != 0)
    }

    /// RDMSR of `msr` at `now`.
    pub fn read(&self, msr: u32, now: u64) -> Result<u64, Fault> {
        let r = msr.checked_sub(MSR_BASE).ok_or(Fault)?;
        let v = match r {
            reg::ID => self.id,
            reg::VERSION => VERSION,
            reg::TPR => self.tpr,
            reg::PPR => self.ppr(),
            reg::LDR => self.ldr(),
            reg::SVR => self.svr,
            r if (reg::ISR0..reg::ISR0 + 8).contains(&r) => word(&self.isr, r - reg::ISR0),
            r if (reg::TMR0..reg::TMR0 + 8).contains(&r) => word(&self.tmr, r - reg::TMR0),
            r if (reg::IRR0..reg::IRR0 + 8).contains(&r) => word(&self.irr, r - reg::IRR0),
            reg::ESR => self.esr,
            reg::ICR => return Ok(self.icr),
            reg::TIMER_INITIAL => self.timer_initial,
            reg::TIMER_CURRENT => self.current_count(now),
            reg::TIMER_DIVIDE => self.timer_divide,
            r => match Self::lvt_index(r) {
                Some(i) => self.lvt[i],
                // EOI and SELF_IPI are write-only; everything else is reserved.
                None => return Err(Fault),
            },
        };
        Ok(u64::from(v))
    }

    /// WRMSR of `value` to `msr` at `now`.
    pub fn write(&mut self, msr: u32, value: u64, now: u64) -> Result<Effect, Fault> {
        let r = msr.checked_sub(MSR_BASE).ok_or(Fault)?;
        // Every register but ICR is 32 bits wide: the upper half must be 0.
        if r != reg::ICR && value >> 32 != 0 {
            return Err(Fault);
        }
        let v = value as u32;
        match r {
            reg::TPR => {
                if v & !0xff != 0 {
                    return Err(Fault);
                }
                self.tpr = v;
                Ok(Effect::None)
            }
            reg::EOI => {
                if v != 0 {
                    return Err(Fault);
                }
                match highest(&self.isr) {
                    Some(vec) => {
                        let (i, b) = bit(vec);
                        self.isr[i] &= !b;
                        self.tmr[i] &= !b;
                        Ok(Effect::Eoi(vec))
                    }
                    None => Ok(Effect::None),
                }
            }
            reg::SVR => {
                // Bits 7:0 vector, 8 enable, 9 focus (ignored), 12 EOI broadcast
                // suppression (not offered): the rest reserved.
                if v & !0x3ff != 0 {
                    return Err(Fault);
                }
                self.svr = v;
                if !self.enabled() {
                    // Software disable masks every LVT.
                    for l in &mut self.lvt {
                        *l |= MASKED;
                    }
                }
                Ok(Effect::Timer)
            }
            reg::ESR => {
                if v != 0 {
                    return Err(Fault);
                }
                self.esr = self.esr_pending;
                self.esr_pending = 0;
                Ok(Effect::None)
            }
            reg::ICR => self.write_icr(value),
            reg::SELF_IPI => {
                if v & !0xff != 0 {
                    return Err(Fault);
                }
                let vector = v as u8;
                if vector < 16 {
                    self.esr_pending |= ESR_SEND_ILLEGAL;
                    return Ok(Effect::None);
                }
                Ok(Effect::Ipi(Ipi {
                    kind: IpiKind::Fixed(vector),
                    dest: Dest::ToSelf,
                }))
            }
            reg::TIMER_INITIAL => {
                self.timer_initial = v;
                self.timer_start = now;
                Ok(Effect::Timer)
            }
            reg::TIMER_DIVIDE => {
                if v & !0xb != 0 {
                    return Err(Fault);
                }
                // Keep the current count across a change of rate.
                let count = self.current_count(now);
                self.timer_divide = v;
                if self.timer_initial != 0 {
                    let done = u64::from(self.timer_initial - count.min(self.timer_initial));
                    self.timer_start = now.saturating_sub(done * self.divisor());
                }
                Ok(Effect::Timer)
            }
            r => {
                let i = Self::lvt_index(r).ok_or(Fault)?;
                // Vector, delivery mode, polarity, trigger, mask, timer mode: the
                // fields each LVT has (a superset, kept as written).
                if v & !0x7_17ff != 0 {
                    return Err(Fault);
                }
                let mut v = v;
                if !self.enabled() {
                    v |= MASKED;
                }
                if r == reg::LVT_TIMER {
                    // TSC-deadline (mode 2) is not offered: one-shot.
                    v &= !(1 << 18);
                }
                self.lvt[i] = v;
                Ok(if r == reg::LVT_TIMER {
                    Effect::Timer
                } else {
                    Effect::None
                })
            }
        }
    }

    fn write_icr(&mut self, value: u64) -> Result<Effect, Fault> {
        // Reserved: bits 13, 16-17, 20-31 (bit 12, delivery status, reads 0).
        if value & 0x0000_0000_fff3_3000 != 0 {
            return Err(Fault);
        }
        self.icr = value;
        let vector = value as u8;
        let mode = (value >> 8) & 7;
        let logical = value & (1 << 11) != 0;
        let dest = match (value >> 18) & 3 {
            1 => Dest::ToSelf,
            2 => Dest::All,
            3 => Dest::AllButSelf,
            _ => {
                let d = (value >> 32) as u32;
                if logical {
                    Dest::Logical(d)
                } else {
                    Dest::Physical(d)
                }
            }
        };
        let kind = match mode {
            0 | 1 if vector < 16 => {
                self.esr_pending |= ESR_SEND_ILLEGAL;
                return Ok(Effect::None);
            }
            0 => IpiKind::Fixed(vector),
            1 => IpiKind::LowestPriority(vector),
            4 => IpiKind::Nmi,
            5 => {
                // INIT level de-assert (level 0, trigger level) is a no-op.
                if value & (1 << 14) == 0 && value & (1 << 15) != 0 {
                    return Ok(Effect::None);
                }
                IpiKind::Init
            }
            6 => IpiKind::Startup(vector),
            // SMI and the reserved modes: nothing is sent.
            _ => return Ok(Effect::None),
        };
        Ok(Effect::Ipi(Ipi { kind, dest }))
    }

    /// Whether an IPI to `dest` from the APIC `from` reaches this APIC.
    pub fn is_target(&self, dest: Dest, from: u32) -> bool {
        match dest {
            Dest::Physical(id) => id == self.id || id == u32::MAX,
            Dest::Logical(d) => {
                d == u32::MAX
                    || (d >> 16 == self.id >> 4 && d & 0xffff & (1 << (self.id & 0xf)) != 0)
            }
            Dest::ToSelf => self.id == from,
            Dest::All => true,
            Dest::AllButSelf => self.id != from,
        }
    }

    /// INIT: back to the reset state, keeping the id.
    pub fn reset(&mut self) {
        *self = Lapic::new(self.id);
    }
}

/// 32-bit word `n` of a 256-bit register.
fn word(set: &[u64; 4], n: u32) -> u32 {
    let w = set[(n / 2) as usize];
    if n.is_multiple_of(2) {
        w as u32
    } else {
        (w >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn msr(r: u32) -> u32 {
        MSR_BASE + r
    }

    fn enabled(id: u32) -> Lapic {
        let mut a = Lapic::new(id);
        a.write(msr(reg::SVR), 0x1ff, 0).unwrap();
        a
    }

    #[test]
    fn reset_state_and_read_only_registers() {
        let a = Lapic::new(3);
        assert_eq!(a.read(msr(reg::ID), 0), Ok(3));
        assert_eq!(a.read(msr(reg::VERSION), 0), Ok(u64::from(VERSION)));
        assert_eq!(a.read(msr(reg::LDR), 0), Ok(1 << 3));
        assert_eq!(Lapic::new(0x13).ldr(), (1 << 16) | (1 << 3));
        assert_eq!(a.read(msr(reg::SVR), 0), Ok(0xff));
        assert_eq!(a.read(msr(reg::LVT_TIMER), 0), Ok(u64::from(MASKED)));
        assert!(!a.enabled());
        let mut a = a;
        // Read-only, write-only and reserved registers fault.
        for r in [
            reg::ID,
            reg::VERSION,
            reg::PPR,
            reg::LDR,
            reg::ISR0,
            reg::IRR0 + 7,
            reg::TIMER_CURRENT,
            0x09,
            0x31,
            0x40,
        ] {
            assert_eq!(a.write(msr(r), 0, 0), Err(Fault), "write {r:#x}");
        }
        for r in [reg::EOI, reg::SELF_IPI, 0x09, 0x0c, 0x31, 0x3a] {
            assert_eq!(a.read(msr(r), 0), Err(Fault), "read {r:#x}");
        }
        // Upper halves and reserved bits.
        assert_eq!(a.write(msr(reg::TPR), 1 << 32, 0), Err(Fault));
        assert_eq!(a.write(msr(reg::TPR), 0x100, 0), Err(Fault));
        assert_eq!(a.write(msr(reg::EOI), 1, 0), Err(Fault));
        assert_eq!(a.read(0x7ff, 0), Err(Fault));
    }

    #[test]
    fn priorities_irr_isr_and_eoi() {
        let mut a = enabled(0);
        assert!(a.accept(0x41, false));
        assert!(a.accept(0x62, true));
        assert_eq!(
            a.read(msr(reg::IRR0 + 2), 0),
            Ok(1 << 1),
            "0x41 is bit 1 of word 2"
        );
        assert_eq!(a.read(msr(reg::TMR0 + 3), 0), Ok(1 << 2), "0x62 level");
        // Highest first; TPR holds back a class at or below it.
        assert_eq!(a.deliverable(), Some(0x62));
        a.write(msr(reg::TPR), 0x60, 0).unwrap();
        assert_eq!(a.deliverable(), None);
        a.write(msr(reg::TPR), 0x50, 0).unwrap();
        assert_eq!(a.deliverable(), Some(0x62));
        a.acknowledge(0x62);
        assert_eq!(a.read(msr(reg::PPR), 0), Ok(0x60));
        // 0x41 waits: its class is below the one in service.
        assert_eq!(a.deliverable(), None);
        assert!(a.has_pending());
        assert_eq!(a.write(msr(reg::EOI), 0, 0), Ok(Effect::Eoi(0x62)));
        assert_eq!(a.read(msr(reg::TMR0 + 3), 0), Ok(0));
        a.write(msr(reg::TPR), 0, 0).unwrap();
        assert_eq!(a.deliverable(), Some(0x41));
        a.acknowledge(0x41);
        assert_eq!(a.write(msr(reg::EOI), 0, 0), Ok(Effect::Eoi(0x41)));
        assert_eq!(a.write(msr(reg::EOI), 0, 0), Ok(Effect::None));
        assert_eq!(a.deliverable(), None);
        // Illegal vectors and a disabled APIC refuse; the error shows after ESR write.
        assert!(!a.accept(3, false));
        assert_eq!(a.read(msr(reg::ESR), 0), Ok(0));
        a.write(msr(reg::ESR), 0, 0).unwrap();
        assert_eq!(a.read(msr(reg::ESR), 0), Ok(u64::from(ESR_RECEIVE_ILLEGAL)));
        let mut off = Lapic::new(1);
        assert!(!off.accept(0x40, false));
    }

    #[test]
    fn icr_and_self_ipi() {
        let mut a = enabled(2);
        let ipi = |kind, dest| Ok(Effect::Ipi(Ipi { kind, dest }));
        assert_eq!(
            a.write(msr(reg::SELF_IPI), 0x44, 0),
            ipi(IpiKind::Fixed(0x44), Dest::ToSelf)
        );
        assert_eq!(
            a.write(msr(reg::ICR), (5 << 32) | 0x45, 0),
            ipi(IpiKind::Fixed(0x45), Dest::Physical(5))
        );
        assert_eq!(a.read(msr(reg::ICR), 0), Ok((5 << 32) | 0x45));
        assert_eq!(
            a.write(msr(reg::ICR), (3 << 18) | 0xfd, 0),
            ipi(IpiKind::Fixed(0xfd), Dest::AllButSelf)
        );
        assert_eq!(
            a.write(msr(reg::ICR), (1 << 11) | (0x3 << 32) | 0x50, 0),
            ipi(IpiKind::Fixed(0x50), Dest::Logical(3))
        );
        // INIT (assert), INIT de-assert (nothing), SIPI, NMI.
        assert_eq!(
            a.write(msr(reg::ICR), (1 << 32) | (1 << 14) | (5 << 8), 0),
            ipi(IpiKind::Init, Dest::Physical(1))
        );
        assert_eq!(
            a.write(msr(reg::ICR), (1 << 32) | (1 << 15) | (5 << 8), 0),
            Ok(Effect::None)
        );
        assert_eq!(
            a.write(msr(reg::ICR), (1 << 32) | (6 << 8) | 0x9a, 0),
            ipi(IpiKind::Startup(0x9a), Dest::Physical(1))
        );
        assert_eq!(
            a.write(msr(reg::ICR), (7 << 32) | (4 << 8), 0),
            ipi(IpiKind::Nmi, Dest::Physical(7))
        );
        // An illegal vector is an error, not an IPI; reserved bits fault.
        assert_eq!(a.write(msr(reg::SELF_IPI), 7, 0), Ok(Effect::None));
        assert_eq!(a.write(msr(reg::ICR), 1 << 13, 0), Err(Fault));
        // Destinations.
        let b = Lapic::new(0x11);
        assert!(b.is_target(Dest::Physical(0x11), 0));
        assert!(b.is_target(Dest::Physical(u32::MAX), 0));
        assert!(!b.is_target(Dest::Physical(1), 0));
        assert!(b.is_target(Dest::Logical((1 << 16) | 2), 0));
        assert!(!b.is_target(Dest::Logical(2), 0));
        assert!(b.is_target(Dest::AllButSelf, 0) && !b.is_target(Dest::AllButSelf, 0x11));
        assert!(b.is_target(Dest::ToSelf, 0x11) && !b.is_target(Dest::ToSelf, 0));
    }

    #[test]
    fn the_timer_in_one_shot_and_periodic_mode() {
        let mut a = enabled(0);
        // One-shot, divide by 1 (code 0b1011), 1,000,000 counts: 1 ms at 1 GHz.
        a.write(msr(reg::TIMER_DIVIDE), 0xb, 0).unwrap();
        assert_eq!(a.write(msr(reg::LVT_TIMER), 0xef, 0), Ok(Effect::Timer));
        assert_eq!(
            a.write(msr(reg::TIMER_INITIAL), 1_000_000, 10 * MS),
            Ok(Effect::Timer)
        );
        assert_eq!(a.timer_deadline(10 * MS), Some(11 * MS));
        assert_eq!(
            a.read(msr(reg::TIMER_CURRENT), 10 * MS + MS / 4),
            Ok(750_000)
        );
        assert!(!a.timer_expired(11 * MS - 1));
        assert!(a.timer_expired(11 * MS));
        assert_eq!(a.deliverable(), Some(0xef));
        assert_eq!(a.read(msr(reg::TIMER_CURRENT), 12 * MS), Ok(0));
        assert_eq!(a.timer_deadline(12 * MS), None, "one-shot: done");
        // Periodic, divide by 2 (code 0): 500,000 counts = 1 ms per period.
        a.acknowledge(0xef);
        a.write(msr(reg::EOI), 0, 0).unwrap();
        a.write(msr(reg::TIMER_DIVIDE), 0, 20 * MS).unwrap();
        a.write(
            msr(reg::LVT_TIMER),
            u64::from(TIMER_PERIODIC) | 0xee,
            20 * MS,
        )
        .unwrap();
        a.write(msr(reg::TIMER_INITIAL), 500_000, 20 * MS).unwrap();
        assert_eq!(a.timer_deadline(20 * MS), Some(21 * MS));
        assert!(a.timer_expired(21 * MS));
        assert_eq!(a.timer_deadline(21 * MS), Some(22 * MS));
        // Late by 2.5 periods: one tick, and the next deadline stays on the grid.
        assert!(a.timer_expired(23 * MS + MS / 2));
        assert_eq!(a.timer_deadline(23 * MS + MS / 2), Some(24 * MS));
        assert_eq!(
            a.read(msr(reg::TIMER_CURRENT), 23 * MS + MS / 2),
            Ok(250_000)
        );
        // Masked: counts on, raises nothing. Initial count 0 stops it.
        a.write(
            msr(reg::LVT_TIMER),
            u64::from(TIMER_PERIODIC | MASKED) | 0xee,
            0,
        )
        .unwrap();
        a.acknowledge(0xee);
        assert!(!a.timer_expired(25 * MS));
        assert!(!a.has_pending());
        a.write(msr(reg::TIMER_INITIAL), 0, 26 * MS).unwrap();
        assert_eq!(a.timer_deadline(26 * MS), None);
        // TSC-deadline mode is not offered: taken as one-shot.
        a.write(msr(reg::LVT_TIMER), (2 << 17) | 0xed, 0).unwrap();
        assert_eq!(a.read(msr(reg::LVT_TIMER), 0), Ok(0xed));
    }

    #[test]
    fn software_disable_masks_the_lvts_and_init_resets() {
        let mut a = enabled(4);
        a.write(msr(reg::LVT_TIMER), 0x30, 0).unwrap();
        a.write(msr(reg::SVR), 0xff, 0).unwrap();
        assert_eq!(a.read(msr(reg::LVT_TIMER), 0), Ok(u64::from(MASKED | 0x30)));
        // While disabled an LVT cannot be unmasked.
        a.write(msr(reg::LVT_TIMER), 0x31, 0).unwrap();
        assert_eq!(a.read(msr(reg::LVT_TIMER), 0), Ok(u64::from(MASKED | 0x31)));
        let mut b = enabled(4);
        b.accept(0x80, false);
        b.reset();
        assert_eq!(b, Lapic::new(4));
    }
}
