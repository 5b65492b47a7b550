//! `triple`: triple-faults on purpose (zero-limit IDT + UD2). oxen must handle the
//! triple-fault exit (the domain crashes); it never returns.
#![no_std]
#![no_main]

use oxen_guest_rt::{StartInfo, println};

oxen_guest_rt::entry!(main);

fn main(_info: &StartInfo) {
    println!("triple: about to triple-fault");
    let idtr = [0u16; 5]; // limit 0, base 0
    // SAFETY: deliberately unrecoverable: with an empty IDT the #UD cannot be delivered,
    // nor the #GP/#DF that follow, so the CPU shuts down (a triple-fault VM exit).
    unsafe {
        core::arch::asm!("lidt [{}]", "ud2", in(reg) idtr.as_ptr(), options(noreturn));
    }
}
