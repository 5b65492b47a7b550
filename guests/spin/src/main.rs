//! `spin`: spins forever with interrupts off and no hypercalls, so oxen's preemption
//! (timer) has to take the CPU back.
#![no_std]
#![no_main]

use oxen_guest_rt::{StartInfo, println};

oxen_guest_rt::entry!(main);

fn main(_info: &StartInfo) {
    println!("spin: spinning forever");
    loop {
        core::hint::spin_loop();
    }
}
