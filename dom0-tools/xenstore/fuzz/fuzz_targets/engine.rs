//! libFuzzer's entry into the XenStore fuzz harness: each input is a program
//! run by `oxen_xenstore::fuzz::run` against a fresh engine; a broken invariant
//! (tree, accounting, framing, reply order) is a crash.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = oxen_xenstore::fuzz::run(data) {
        panic!("{e}")
    }
});
