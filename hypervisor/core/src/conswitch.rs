//! Serial console input, as Xen's console switch does it: every byte typed on the
//! machine's serial line goes to one domain at a time (the focus); `Ctrl-A` three times
//! in a row moves the focus to the next domain. Ctrl-As that do not make three are held
//! back and given to the focus before the next other byte, so a single Ctrl-A still
//! reaches the guest (a shell's "beginning of line").
//!
//! The bytes reach the domain through the `in` ring of its PV console page
//! ([`crate::xencons`]).

/// The switch code, Ctrl-A (Xen's default `conswitch`).
pub const SWITCH_CODE: u8 = 0x01;

/// What a typed byte amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A byte for the focused domain.
    Byte(u8),
    /// Move the focus to the next domain.
    Switch,
}

/// The switch's state: how many Ctrl-As are held back.
#[derive(Clone, Copy, Debug, Default)]
pub struct Switch {
    held: u8,
}

impl Switch {
    pub const fn new() -> Self {
        Switch { held: 0 }
    }

    /// Feeds one typed byte; `out` receives what it yields, in order (nothing while
    /// Ctrl-As are counted, held Ctrl-As and the byte when another byte breaks the run).
    pub fn feed(&mut self, b: u8, mut out: impl FnMut(Input)) {
        if b == SWITCH_CODE {
            self.held += 1;
            if self.held == 3 {
                self.held = 0;
                out(Input::Switch);
            }
            return;
        }
        for _ in 0..core::mem::take(&mut self.held) {
            out(Input::Byte(SWITCH_CODE));
        }
        out(Input::Byte(b));
    }
}

/// Where typed input goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    /// The hypervisor itself: typed keys are debug keys.
    Hypervisor,
    Domain(u32),
}

/// Where Ctrl-A three times moves the focus, in Xen's order: each running domain by id
/// (`ids`, ascending), then the hypervisor, then round again. A focused domain that
/// went away counts from its id (the next one up).
pub fn next_target(ids: &[u32], current: Focus) -> Focus {
    let after = match current {
        Focus::Hypervisor => ids.first(),
        Focus::Domain(c) => ids.iter().find(|&&i| i > c),
    };
    after.map_or(Focus::Hypervisor, |&i| Focus::Domain(i))
}

/// The domain after `current` in `ids` (ascending), wrapping; the first if `current`
/// is not among them; `None` if there is none.
pub fn next_focus(ids: &[u32], current: Option<u32>) -> Option<u32> {
    match current {
        Some(c) => ids
            .iter()
            .copied()
            .find(|&i| i > c)
            .or_else(|| ids.first().copied()),
        None => ids.first().copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn feed(s: &mut Switch, bytes: &[u8]) -> Vec<Input> {
        let mut out = Vec::new();
        for &b in bytes {
            s.feed(b, |i| out.push(i));
        }
        out
    }

    #[test]
    fn three_ctrl_a_switch_and_fewer_pass_through() {
        let mut s = Switch::default();
        assert_eq!(feed(&mut s, b"ls\n"), b"ls\n".map(Input::Byte));
        assert_eq!(feed(&mut s, &[1, 1, 1]), [Input::Switch]);
        // One or two Ctrl-As reach the guest, before the byte that ends the run.
        assert_eq!(feed(&mut s, &[1]), []);
        assert_eq!(feed(&mut s, b"x"), [Input::Byte(1), Input::Byte(b'x')]);
        assert_eq!(
            feed(&mut s, &[1, 1, b'y']),
            [Input::Byte(1), Input::Byte(1), Input::Byte(b'y')]
        );
        // Six switch twice; four switch once and hold one.
        assert_eq!(feed(&mut s, &[1; 6]), [Input::Switch, Input::Switch]);
        assert_eq!(feed(&mut s, &[1; 4]), [Input::Switch]);
        assert_eq!(feed(&mut s, b"z"), [Input::Byte(1), Input::Byte(b'z')]);
    }

    #[test]
    fn focus_moves_in_id_order_and_wraps() {
        let ids = [1, 2, 5];
        assert_eq!(next_focus(&ids, None), Some(1));
        assert_eq!(next_focus(&ids, Some(1)), Some(2));
        assert_eq!(next_focus(&ids, Some(2)), Some(5));
        assert_eq!(next_focus(&ids, Some(5)), Some(1));
        // The focused domain went away: the next one up.
        assert_eq!(next_focus(&ids, Some(3)), Some(5));
        assert_eq!(next_focus(&[], Some(3)), None);
    }

    #[test]
    fn the_hypervisor_comes_after_the_last_domain() {
        let ids = [1, 2, 5];
        let d = Focus::Domain;
        assert_eq!(next_target(&ids, Focus::Hypervisor), d(1));
        assert_eq!(next_target(&ids, d(1)), d(2));
        assert_eq!(next_target(&ids, d(2)), d(5));
        assert_eq!(next_target(&ids, d(5)), Focus::Hypervisor);
        assert_eq!(next_target(&ids, d(3)), d(5), "a domain that went away");
        assert_eq!(next_target(&[], Focus::Hypervisor), Focus::Hypervisor);
        assert_eq!(next_target(&[], d(7)), Focus::Hypervisor);
    }
}
