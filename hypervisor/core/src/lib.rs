//! The pure logic of the oxen hypervisor.
//!
//! Everything here is `no_std`, free of `unsafe` and free of hardware access, so the
//! host's `cargo test` exercises it. The hypervisor binary feeds it what the hardware
//! reports (capability MSRs, the boot memory map, the boot archive) and acts on the
//! answers.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod archive;
pub mod config;
pub mod conswitch;
pub mod continuation;
pub mod cpuid;
pub mod decode;
pub mod diskspec;
pub mod domid;
pub mod elf;
pub mod ept;
pub mod evtchn;
pub mod frames;
pub mod grant;
pub mod guest_acpi;
pub mod guest_walk;
pub mod hvm_param;
pub mod lapic;
pub mod p2m;
pub mod pvh;
pub mod quota;
pub mod ratelimit;
pub mod sched;
pub mod time;
pub mod units;
pub mod vcpu_state;
pub mod vmcs;
pub mod vmx;
pub mod xencons;
