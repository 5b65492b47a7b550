//! Shared helpers: start `oxen-xenstored` on temporary sockets and drive it
//! with Debian's real clients.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A running daemon, stopped with SIGTERM on drop.
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl Daemon {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_full(extra, &[])
    }

    /// Guest 5 with a node quota of 4.
    pub fn start_full_for_quota() -> Self {
        Self::start_full(&["--quota", "nodes=4"], &[5])
    }

    /// Also serves `--guest-socket` for each domain in `guests`.
    pub fn start_with_guests(guests: &[u32]) -> Self {
        Self::start_full(&[], guests)
    }

    /// Extra arguments and `--guest-socket` for each domain in `guests`.
    pub fn start_full_with(extra: &[&str], guests: &[u32]) -> Self {
        Self::start_full(extra, guests)
    }

    fn start_full(extra: &[&str], guests: &[u32]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let guest_args: Vec<String> = guests
            .iter()
            .flat_map(|d| {
                let path = dir.path().join(format!("guest{d}"));
                [
                    "--guest-socket".to_string(),
                    format!("{d}:{}", path.display()),
                ]
            })
            .collect();
        let sock = dir.path().join("socket");
        let ro = dir.path().join("socket_ro");
        let log = dir.path().join("access.log");
        let child = Command::new(env!("CARGO_BIN_EXE_oxen-xenstored"))
            .arg("--unix-socket")
            .arg(&sock)
            .arg("--ro-socket")
            .arg(&ro)
            .arg("--access-log")
            .arg(&log)
            .args(extra)
            .args(&guest_args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn oxen-xenstored");
        let daemon = Self {
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let guest_paths: Vec<PathBuf> = guests
            .iter()
            .map(|d| daemon.dir.path().join(format!("guest{d}")))
            .collect();
        while !(sock.exists() && ro.exists() && guest_paths.iter().all(|p| p.exists())) {
            assert!(
                Instant::now() < deadline,
                "oxen-xenstored did not create its sockets"
            );
            sleep(Duration::from_millis(10));
        }
        daemon
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    pub fn guest_socket(&self, domid: u32) -> PathBuf {
        self.dir.path().join(format!("guest{domid}"))
    }

    /// Runs a xenstore-utils tool as guest `domid`.
    pub fn guest_tool(&self, domid: u32, name: &str, args: &[&str]) -> Output {
        run_tool(&self.guest_socket(domid), name, args)
    }

    pub fn ro_socket(&self) -> PathBuf {
        self.dir.path().join("socket_ro")
    }

    pub fn access_log(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    pub fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(self.socket()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon still running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: kill(2) with a pid we spawned and still own (not yet
        // reaped) and a valid signal number has no memory-safety impact.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill failed");
        wait_timeout(&mut child, Duration::from_secs(10)).expect("daemon exits after SIGTERM")
    }

    /// Runs a xenstore-utils tool against the privileged socket.
    pub fn tool(&self, name: &str, args: &[&str]) -> Output {
        run_tool(&self.socket(), name, args)
    }

    /// Runs a tool and expects success; returns stdout.
    pub fn ok(&self, name: &str, args: &[&str]) -> String {
        let out = self.tool(name, args);
        assert!(
            out.status.success(),
            "{name} {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8 output")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        sleep(Duration::from_millis(10));
    }
}

/// The path of a peer binary; fails loudly, naming the Debian package, if absent.
pub fn peer(name: &str, package: &str) -> PathBuf {
    let path = Path::new("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: install the Debian package `{package}` (apt-get install {package})",
        path.display()
    );
    path
}

pub fn run_tool(socket: &Path, name: &str, args: &[&str]) -> Output {
    Command::new(peer(name, "xenstore-utils"))
        .args(args)
        .env("XENSTORED_PATH", socket)
        .output()
        .expect("run xenstore tool")
}

/// Runs a Python script under Debian's python3 with pyxs, with a time limit.
/// The script gets the socket path as `sys.argv[1]`.
pub fn python(socket: &Path, script: &str) -> (bool, String, String) {
    let py = peer("python3", "python3");
    let probe = Command::new(&py)
        .args(["-c", "import pyxs"])
        .output()
        .expect("run python3");
    assert!(
        probe.status.success(),
        "pyxs is not importable by /usr/bin/python3: install the Debian package `python3-pyxs`"
    );
    let mut child = Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let status = wait_timeout(&mut child, Duration::from_secs(30));
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.is_some_and(|s| s.success()), out, err)
}

/// A running `xenstore-watch` whose output lines arrive on a channel.
pub struct Watcher {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Watcher {
    /// Starts `xenstore-watch -n COUNT PATH` against `socket`.
    pub fn start(socket: &Path, path: &str, count: u32) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(peer("xenstore-watch", "xenstore-utils"))
            .args(["-n", &count.to_string(), path])
            .env("XENSTORED_PATH", socket)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn xenstore-watch");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        Watcher { child, lines }
    }

    /// The next event line (waits up to 10 s).
    pub fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("watch event line")
    }
}
