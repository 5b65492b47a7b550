//! The back end's half of a PV console page (`xencons_interface`, `io/console.h`): take
//! what the guest wrote to `out`, put typed bytes into `in`. One implementation for
//! both back ends oxen has: the hypervisor's (boot-time domains) and dom0's (the
//! domains `xl create` builds).
//!
//! The page belongs to the guest, which may change any byte of it at any time: the
//! indices are read once per call, a pair claiming more than the ring holds is
//! reported ([`Broken`]) and nothing is consumed or produced, and the data is read or
//! written only between them. How the page is reached (the hypervisor's physical
//! window, dom0's foreign map) and with which accessors (atomic, volatile) is the
//! caller's [`Page`].

use oxen_abi::xencons::{IN, IN_CONS, IN_PROD, IN_SIZE, OUT, OUT_CONS, OUT_PROD, OUT_SIZE};

/// Access to one console page, at byte offsets inside it.
pub trait Page {
    /// The aligned `u32` at `off`, with acquire ordering.
    fn load(&self, off: u64) -> u32;
    /// Stores `v` at the aligned `off`, with release ordering (everything written to
    /// the page before is visible first).
    fn store(&mut self, off: u64, v: u32);
    fn load_byte(&self, off: u64) -> u8;
    fn store_byte(&mut self, off: u64, v: u8);
}

/// The guest's indices of one ring are impossible: `prod - cons` exceeds its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Broken {
    /// `"output"` or `"input"`.
    pub ring: &'static str,
    pub cons: u32,
    pub prod: u32,
}

/// Moves what the guest published in `out` into `buf` (at most `buf.len()` bytes, the
/// oldest first) and consumes it. Returns how many bytes were taken.
pub fn take_output<P: Page + ?Sized>(page: &mut P, buf: &mut [u8]) -> Result<usize, Broken> {
    let cons = page.load(OUT_CONS);
    let prod = page.load(OUT_PROD);
    let avail = prod.wrapping_sub(cons);
    if avail > OUT_SIZE {
        return Err(Broken {
            ring: "output",
            cons,
            prod,
        });
    }
    let n = buf.len().min(avail as usize);
    for (i, b) in buf[..n].iter_mut().enumerate() {
        let at = cons.wrapping_add(i as u32) % OUT_SIZE;
        *b = page.load_byte(OUT + u64::from(at));
    }
    page.store(OUT_CONS, cons.wrapping_add(n as u32));
    Ok(n)
}

/// Free bytes in the `in` ring with these indices; `None` if they claim more than it
/// holds.
pub fn in_room(cons: u32, prod: u32) -> Option<u32> {
    let used = prod.wrapping_sub(cons);
    (used <= IN_SIZE).then(|| IN_SIZE - used)
}

/// Puts as many of `bytes` as fit into `in` and publishes them. Returns how many went
/// in.
pub fn put_input<P: Page + ?Sized>(page: &mut P, bytes: &[u8]) -> Result<usize, Broken> {
    let cons = page.load(IN_CONS);
    let prod = page.load(IN_PROD);
    let room = in_room(cons, prod).ok_or(Broken {
        ring: "input",
        cons,
        prod,
    })?;
    let n = bytes.len().min(room as usize);
    for (i, &b) in bytes[..n].iter().enumerate() {
        let at = prod.wrapping_add(i as u32) % IN_SIZE;
        page.store_byte(IN + u64::from(at), b);
    }
    if n > 0 {
        page.store(IN_PROD, prod.wrapping_add(n as u32));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    struct Mem(Vec<u8>);

    impl Page for Mem {
        fn load(&self, off: u64) -> u32 {
            let o = off as usize;
            u32::from_le_bytes(self.0[o..o + 4].try_into().unwrap())
        }
        fn store(&mut self, off: u64, v: u32) {
            let o = off as usize;
            self.0[o..o + 4].copy_from_slice(&v.to_le_bytes());
        }
        fn load_byte(&self, off: u64) -> u8 {
            self.0[off as usize]
        }
        fn store_byte(&mut self, off: u64, v: u8) {
            self.0[off as usize] = v;
        }
    }

    /// A page whose guest wrote `text` to `out` starting at free-running index `start`.
    fn with_output(start: u32, text: &[u8]) -> Mem {
        let mut m = Mem(vec![0; 4096]);
        for (i, &b) in text.iter().enumerate() {
            let at = start.wrapping_add(i as u32) % OUT_SIZE;
            m.0[(OUT + u64::from(at)) as usize] = b;
        }
        m.store(OUT_CONS, start);
        m.store(OUT_PROD, start.wrapping_add(text.len() as u32));
        m
    }

    #[test]
    fn output_is_taken_in_order_across_the_wrap_and_the_index_overflow() {
        let text: Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
        for start in [0, OUT_SIZE - 100, u32::MAX - 50] {
            let mut m = with_output(start, &text);
            let mut buf = [0u8; OUT_SIZE as usize];
            assert_eq!(take_output(&mut m, &mut buf), Ok(300));
            assert_eq!(&buf[..300], &text[..]);
            assert_eq!(m.load(OUT_CONS), start.wrapping_add(300));
            assert_eq!(take_output(&mut m, &mut buf), Ok(0), "nothing twice");
        }
    }

    #[test]
    fn a_small_buffer_takes_the_oldest_part_and_leaves_the_rest() {
        let mut m = with_output(7, b"hello, world");
        let mut buf = [0u8; 5];
        assert_eq!(take_output(&mut m, &mut buf), Ok(5));
        assert_eq!(&buf, b"hello");
        let mut rest = [0u8; 64];
        assert_eq!(take_output(&mut m, &mut rest), Ok(7));
        assert_eq!(&rest[..7], b", world");
    }

    #[test]
    fn a_full_ring_is_fine_and_one_byte_more_is_broken() {
        let full: Vec<u8> = vec![b'x'; OUT_SIZE as usize];
        let mut m = with_output(5, &full);
        let mut buf = [0u8; OUT_SIZE as usize];
        assert_eq!(take_output(&mut m, &mut buf), Ok(OUT_SIZE as usize));
        let mut m = with_output(5, &full);
        m.store(OUT_PROD, 5 + OUT_SIZE + 1);
        assert_eq!(
            take_output(&mut m, &mut buf),
            Err(Broken {
                ring: "output",
                cons: 5,
                prod: 5 + OUT_SIZE + 1
            })
        );
        assert_eq!(m.load(OUT_CONS), 5, "nothing consumed");
        // A producer behind the consumer is as impossible.
        m.store(OUT_PROD, 4);
        assert!(take_output(&mut m, &mut buf).is_err());
    }

    #[test]
    fn input_fills_what_is_free_and_publishes_it() {
        let mut m = Mem(vec![0; 4096]);
        m.store(IN_CONS, u32::MAX - 2);
        m.store(IN_PROD, u32::MAX - 2);
        assert_eq!(put_input(&mut m, b"ls\r"), Ok(3));
        assert_eq!(m.load(IN_PROD), 0);
        let at = |i: u32| m.0[(IN + u64::from(i % IN_SIZE)) as usize];
        assert_eq!([at(u32::MAX - 2), at(u32::MAX - 1), at(u32::MAX)], *b"ls\r");
        // The guest consumed nothing: only IN_SIZE - 3 more fit.
        let many = vec![b'y'; 2000];
        assert_eq!(put_input(&mut m, &many), Ok(IN_SIZE as usize - 3));
        assert_eq!(put_input(&mut m, b"z"), Ok(0), "full");
    }

    #[test]
    fn impossible_input_indices_are_refused_untouched() {
        let mut m = Mem(vec![0; 4096]);
        m.store(IN_CONS, 10);
        m.store(IN_PROD, 10 + IN_SIZE + 1);
        assert_eq!(
            put_input(&mut m, b"a"),
            Err(Broken {
                ring: "input",
                cons: 10,
                prod: 10 + IN_SIZE + 1
            })
        );
        assert_eq!(m.load(IN_PROD), 10 + IN_SIZE + 1);
        assert!(m.0[..IN_SIZE as usize].iter().all(|&b| b == 0));
        assert_eq!(in_room(3, 3), Some(IN_SIZE));
        assert_eq!(in_room(10, 10 + IN_SIZE), Some(0));
        assert_eq!(in_room(u32::MAX - 5, 10), Some(IN_SIZE - 16));
        assert_eq!(in_room(3, 2), None, "a producer behind its consumer");
    }
}
