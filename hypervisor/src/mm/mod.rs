//! Physical memory: the frame allocator and the hypervisor's heap.

pub mod frames;
pub mod heap;
