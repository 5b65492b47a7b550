//! The request and response of every ring test, laid out like the C shim's
//! `struct test_req` / `struct test_rsp`. Included by path from the unit tests,
//! the C interop test and the benchmark; the including module brings `Pod` into
//! scope.

use super::Pod;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Req {
    pub id: u64,
    pub a: u32,
    pub b: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rsp {
    pub id: u64,
    pub sum: u32,
    pub pad: u32,
}

// SAFETY: integer fields only, no padding.
unsafe impl Pod for Req {}
// SAFETY: integer fields only, no padding.
unsafe impl Pod for Rsp {}
