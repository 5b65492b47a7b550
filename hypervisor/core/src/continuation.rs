//! Hypercall continuations: a call over a long buffer does a bounded part of its work
//! per pass and leaves the guest to execute it again for the rest (Xen's
//! `hypercall_create_continuation` for HVM guests: the instruction pointer stays on the
//! call, the argument registers describe what is left). Between passes the hypervisor
//! can take interrupts and reschedule, so no guest can hold a pCPU with one call.

/// Splits a buffer of `len` bytes at guest address `ptr` into what one pass handles
/// (at most `chunk` bytes, `chunk` > 0) and, if anything is left, the `(len, ptr)` of
/// the rest. Addresses wrap as the guest's would.
pub fn split_chunk(len: u64, ptr: u64, chunk: u64) -> (u64, Option<(u64, u64)>) {
    let chunk = chunk.max(1);
    if len <= chunk {
        return (len, None);
    }
    (chunk, Some((len - chunk, ptr.wrapping_add(chunk))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_buffer_goes_in_chunks_and_nothing_is_lost() {
        assert_eq!(split_chunk(0, 0x1000, 512), (0, None));
        assert_eq!(split_chunk(512, 0x1000, 512), (512, None));
        assert_eq!(split_chunk(513, 0x1000, 512), (512, Some((1, 0x1200))));
        // Every byte is handled exactly once, in order, over as many passes as needed.
        let (mut len, mut ptr, mut seen, mut passes) = (10_000u64, 0x7000u64, 0u64, 0);
        loop {
            let (now, rest) = split_chunk(len, ptr, 512);
            assert_eq!(ptr, 0x7000 + seen);
            seen += now;
            passes += 1;
            match rest {
                Some((l, p)) => (len, ptr) = (l, p),
                None => break,
            }
        }
        assert_eq!((seen, passes), (10_000, 20));
        // A huge length is bounded per pass and the address wraps like the guest's.
        assert_eq!(
            split_chunk(u64::MAX, u64::MAX - 10, 512),
            (512, Some((u64::MAX - 512, 501)))
        );
        // A zero chunk still makes progress.
        assert_eq!(split_chunk(3, 0, 0), (1, Some((2, 1))));
    }
}
