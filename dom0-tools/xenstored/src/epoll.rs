//! A minimal level-triggered `epoll(7)` wrapper: the daemon learns which
//! sockets are ready without looking at the others.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// What to wait for on one descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interest {
    /// Input (or a new connection on a listener).
    pub read: bool,
    /// Room to write.
    pub write: bool,
}

impl Interest {
    /// Input only.
    pub const READ: Self = Self {
        read: true,
        write: false,
    };

    fn bits(self) -> u32 {
        let mut bits = 0;
        if self.read {
            bits |= libc::EPOLLIN as u32;
        }
        if self.write {
            bits |= libc::EPOLLOUT as u32;
        }
        bits
    }
}

/// One ready descriptor, by the token it was registered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The registration token.
    pub token: u64,
    /// Input is available (or a connection is waiting).
    pub readable: bool,
    /// Output would not block.
    pub writable: bool,
    /// The peer hung up or the socket failed.
    pub hangup: bool,
}

/// An epoll instance.
pub struct Epoll {
    fd: OwnedFd,
}

fn check(rc: i32) -> io::Result<i32> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

impl Epoll {
    /// A new, empty instance.
    pub fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is
        // a fresh descriptor that we own from here on.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by
        // nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    fn ctl(&self, op: i32, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: interest.bits(),
            u64: token,
        };
        // SAFETY: `event` is a valid epoll_event that outlives the call;
        // the kernel only reads it.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event) })?;
        Ok(())
    }

    /// Starts watching `fd`, reported as `token`.
    pub fn add(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    /// Changes what `fd` is watched for.
    pub fn modify(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, interest)
    }

    /// Waits up to `timeout_ms` (-1: no limit) for ready descriptors, at
    /// most `max` of them; retries on EINTR.
    pub fn wait(&self, max: usize, timeout_ms: i32) -> io::Result<Vec<Ready>> {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; max.max(1)];
        let capacity = i32::try_from(events.len()).unwrap_or(i32::MAX);
        let count = loop {
            // SAFETY: `events` is a valid, exclusively borrowed buffer of
            // `capacity` epoll_event structs that outlives the call.
            let rc = unsafe {
                libc::epoll_wait(
                    self.fd.as_raw_fd(),
                    events.as_mut_ptr(),
                    capacity,
                    timeout_ms,
                )
            };
            match check(rc) {
                Ok(n) => break n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        Ok(events[..count]
            .iter()
            .map(|e| {
                let bits = e.events;
                Ready {
                    token: e.u64,
                    readable: bits & libc::EPOLLIN as u32 != 0,
                    writable: bits & libc::EPOLLOUT as u32 != 0,
                    hangup: bits & (libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0,
                }
            })
            .collect())
    }
}
