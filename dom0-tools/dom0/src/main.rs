//! oxen's control domain (domain 0): a `no_std` kernel on the guest runtime that gives
//! its user Xen's `xl` on the serial console.
//!
//! It reads typed input as Xen's dom0 does (`VIRQ_CONSOLE`, then
//! `console_io(CONSOLEIO_read)`), edits the line (`oxen_toolstack::LineEditor`) and
//! writes through `console_io(CONSOLEIO_write)`, which the hypervisor passes to the
//! serial line as it is. Its files are the boot archive, which the hypervisor gives it
//! as its module (`ramdisk = "@archive"`): the `xl.cfg` files under `/etc/xen`, the
//! guest images under `/images`. The domains the hypervisor built at boot (`boot.cfg`)
//! are adopted: their names come from their configuration files.
#![no_std]
#![no_main]

extern crate alloc;

mod consoles;
mod create;
mod files;
mod store;
mod xl;

use alloc::string::String;
use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

use linked_list_allocator::LockedHeap;
use oxen_guest_rt::abi::evtchn::virq;
use oxen_guest_rt::{StartInfo, events, hypercall, time, xen};
use oxen_toolstack::console::{ESCAPE, for_terminal};
use oxen_toolstack::line::Edit;
use oxen_toolstack::{LineEditor, words};

oxen_guest_rt::entry!(main);

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// The heap: 4 MiB of the kernel's own bss.
const HEAP_BYTES: usize = 4 << 20;
static mut ARENA: [MaybeUninit<u8>; HEAP_BYTES] = [MaybeUninit::uninit(); HEAP_BYTES];

const PROMPT: &str = "oxen-dom0# ";

/// Writes `text` to the console, with CR LF line ends as a terminal wants them.
pub fn out(text: &str) {
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        let line_end = rest.iter().position(|&b| b == b'\n');
        let (chunk, nl) = match line_end {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        for part in chunk.chunks(512) {
            hypercall::console_write(part);
        }
        if nl {
            hypercall::console_write(b"\r\n");
            rest = &rest[chunk.len() + 1..];
        } else {
            rest = &[];
        }
    }
}

/// The last byte [`raw`] wrote.
static LAST_RAW: AtomicU8 = AtomicU8::new(0);

/// Writes a domain's console output to the terminal as it is, but for the carriage
/// returns a terminal needs before line feeds.
pub fn raw(bytes: &[u8]) {
    let mut last = LAST_RAW.load(Ordering::Relaxed);
    let shown = for_terminal(bytes, &mut last);
    LAST_RAW.store(last, Ordering::Relaxed);
    for part in shown.chunks(512) {
        hypercall::console_write(part);
    }
}

/// Shows what the consoles wrote: the attached domain's bytes as they are; other
/// domains' mirrored lines and console notices above the prompt, which is drawn again
/// with the line being edited, if one is shown (nothing of other domains while one is
/// attached: it is in their history).
fn show(
    shown: alloc::vec::Vec<consoles::Shown>,
    attached: bool,
    prompt: bool,
    editor: &LineEditor,
) {
    for s in shown {
        match s {
            consoles::Shown::Raw(bytes) => raw(&bytes),
            consoles::Shown::Line(_) if attached => {}
            consoles::Shown::Line(line) | consoles::Shown::Notice(line) => {
                if attached {
                    out(&alloc::format!("\n{line}\n"));
                } else if !prompt {
                    out(&alloc::format!("{line}\n"));
                } else {
                    out(&alloc::format!("\r\x1b[K{line}\n{PROMPT}{}", editor.line()));
                }
            }
        }
    }
}

fn main(info: &StartInfo) {
    // SAFETY: the arena is this kernel's own memory, handed to the allocator once,
    // before anything allocates; nothing else touches it.
    unsafe { HEAP.lock().init((&raw mut ARENA).cast::<u8>(), HEAP_BYTES) };
    let files = files::Files::from_start_info(info);
    let mut tool = xl::Xl::new(files);
    let adopted = tool.adopt();
    if let Err(e) = events::init() {
        out(&alloc::format!(
            "oxen dom0: no event channels ({e:?}); no input\n"
        ));
        hypercall::halt_forever();
    }
    let port = match xen::bind_virq(virq::CONSOLE, 0) {
        Ok(p) => p,
        Err(e) => {
            out(&alloc::format!(
                "oxen dom0: cannot bind VIRQ_CONSOLE ({e}); no input\n"
            ));
            hypercall::halt_forever();
        }
    };
    // Domains that shut down are announced by VIRQ_DOM_EXC, as to Xen's dom0.
    let dom_exc = xen::bind_virq(virq::DOM_EXC, 0).ok();
    let auto = match tool.autostart() {
        0 => String::new(),
        n => alloc::format!("{n} started from /etc/xen/auto, "),
    };
    out(&alloc::format!(
        "\noxen dom0: the control domain is up; {adopted} boot domain(s) adopted, {auto}{} file(s). Type 'help'.\n",
        tool.files.len()
    ));
    out(PROMPT);
    let mut editor = LineEditor::new();
    let mut typeahead: Vec<u8> = Vec::new();
    loop {
        // What the terminal shows now: a domain's console, a command's output that
        // holds the prompt, or the prompt.
        let was_attached = tool.consoles.attached.is_some();
        let was_held = held(&tool);
        if let Some(p) = dom_exc
            && events::pending(p)
        {
            events::clear(p);
            tool.reap();
        }
        if tool.sleeping_until.is_some_and(|t| time::now_ns() >= t) {
            tool.sleeping_until = None;
        }
        tool.store.poll();
        watch_events(&mut tool);
        let mut shown = tool.consoles.poll();
        let notices = tool.notices.drain(..).chain(tool.store.notices.drain(..));
        shown.extend(notices.map(consoles::Shown::Notice));
        show(shown, was_attached, !was_held, &editor);
        if was_attached && tool.consoles.attached.is_none() {
            // The attached domain went.
            out(&alloc::format!("\n{PROMPT}"));
        } else if was_held && !held(&tool) {
            out(PROMPT);
        }
        let mut buf = [0u8; 64];
        let n = hypercall::console_read(&mut buf);
        if n > 0 {
            // Typed ahead while a command holds the prompt: kept for when it is back,
            // as a terminal keeps it (within a bound).
            let room = TYPEAHEAD_MAX.saturating_sub(typeahead.len());
            typeahead.extend(buf[..n as usize].iter().take(room));
        }
        let idle = typeahead.is_empty() || (held(&tool) && !typeahead.contains(&CTRL_C));
        if n <= 0 && idle {
            let mut ports = tool.store.ports();
            ports.extend(tool.consoles.ports());
            ports.push(port);
            ports.extend(dom_exc);
            let next = (time::now_ns() + 200_000_000).min(tool.sleeping_until.unwrap_or(u64::MAX));
            if events::wait_any(&ports, next) && events::pending(port) {
                events::clear(port);
            }
            continue;
        }
        while !typeahead.is_empty() {
            if let Some(id) = tool.consoles.attached {
                // Everything up to Ctrl-] goes to the domain.
                let end = typeahead.iter().position(|&b| b == ESCAPE);
                let give: Vec<u8> = typeahead.drain(..end.unwrap_or(typeahead.len())).collect();
                tool.consoles.input(id, &give);
                if !typeahead.is_empty() {
                    typeahead.remove(0);
                    tool.consoles.attached = None;
                    out(&alloc::format!("\n{PROMPT}"));
                }
                continue;
            }
            if held(&tool) {
                // `xl shutdown -w`, `xenstore-watch` or `sleep` holds the prompt; Ctrl-C
                // stops it (and drops what was typed before it, as an interrupt does).
                let Some(at) = typeahead.iter().position(|&b| b == CTRL_C) else {
                    break;
                };
                typeahead.drain(..=at);
                tool.waiting.clear();
                tool.sleeping_until = None;
                if let Some((path, _)) = tool.store.shell_watch.take() {
                    let _ = tool.store.unwatch(&path, WATCH_TOKEN);
                }
                out(&alloc::format!("^C\n{PROMPT}"));
                continue;
            }
            let b = typeahead.remove(0);
            match editor.feed(b, PROMPT) {
                Some(Edit::Echo(s)) => out(&s),
                Some(Edit::Line(line)) => {
                    out("\n");
                    run(&mut tool, &line);
                    if tool.consoles.attached.is_none() && !held(&tool) {
                        out(PROMPT);
                    }
                }
                None => {}
            }
        }
    }
}

/// Ctrl-C, which ends a command that holds the prompt.
const CTRL_C: u8 = 0x03;
/// Bytes typed ahead that the shell keeps while a command holds the prompt.
const TYPEAHEAD_MAX: usize = 4096;

/// The token of the shell's `xenstore-watch`.
const WATCH_TOKEN: &str = "xenstore-watch";

/// Whether a command holds the prompt (`xl shutdown -w`, `xenstore-watch`, `sleep`).
fn held(tool: &xl::Xl) -> bool {
    !tool.waiting.is_empty() || tool.store.shell_watch.is_some() || tool.sleeping_until.is_some()
}

/// Prints what the shell's `xenstore-watch` saw, one path a line as Xen's tool does,
/// and ends it after its `-n` count.
fn watch_events(tool: &mut xl::Xl) {
    let Some((path, mut left)) = tool.store.shell_watch.take() else {
        return;
    };
    for e in tool.store.take_events() {
        if left == Some(0) {
            break;
        }
        out(&alloc::format!("{e}\n"));
        left = left.map(|n| n - 1);
    }
    if left == Some(0) {
        let _ = tool.store.unwatch(&path, WATCH_TOKEN);
    } else {
        tool.store.shell_watch = Some((path, left));
    }
}

/// Ends every other domain, then this one: with no domain left the hypervisor powers
/// the machine off (as Xen does when dom0 powers off).
fn poweroff(tool: &mut xl::Xl) -> i32 {
    out("oxen dom0: destroying every other domain and powering off\n");
    tool.destroy_all_others();
    hypercall::shutdown(oxen_guest_rt::abi::sched_op::SHUTDOWN_POWEROFF)
}

/// `xenstore-read PATH...`, `xenstore-write PATH VALUE...`, `xenstore-rm PATH...`,
/// `xenstore-ls [PATH]`, `xenstore-watch [-n NR] PATH` (it holds the prompt: see
/// [`watch_events`]) and `xenstore-chmod PATH PERM...` on the store dom0 serves, with
/// the messages and exit codes of Xen's tools.
fn xenstore(tool: &mut xl::Xl, cmd: &str, args: &[&str]) -> i32 {
    let s = &mut tool.store;
    let fail = |what: &str, path: &str| {
        out(&alloc::format!("{cmd}: {what} {path}\n"));
        1
    };
    match cmd {
        "xenstore-watch" => {
            let parsed = match args {
                [p] => Some((None, *p)),
                ["-n", n, p] => n
                    .parse::<u32>()
                    .ok()
                    .filter(|&n| n > 0)
                    .map(|n| (Some(n), *p)),
                _ => None,
            };
            let Some((count, path)) = parsed else {
                out("Usage: xenstore-watch [-n NR] PATH\n");
                return 2;
            };
            if s.watch(path, WATCH_TOKEN).is_err() {
                return fail("watch failed on", path);
            }
            s.shell_watch = Some((String::from(path), count));
            0
        }
        "xenstore-chmod" => {
            let [path, perms @ ..] = args else {
                out("Usage: xenstore-chmod PATH PERM...\n");
                return 2;
            };
            let ok = !perms.is_empty()
                && perms.iter().all(|p| {
                    let mut c = p.chars();
                    matches!(c.next(), Some('n' | 'r' | 'w' | 'b'))
                        && c.as_str().parse::<u16>().is_ok()
                });
            if !ok {
                out("Usage: xenstore-chmod PATH PERM... (PERM: n|r|w|b followed by a domain id)\n");
                return 2;
            }
            match s.chmod(path, perms) {
                Ok(()) => 0,
                Err(_) => fail("could not set permissions on", path),
            }
        }
        "xenstore-ls" => match s.ls(args.first().copied().unwrap_or("/")) {
            Ok(text) => {
                out(&text);
                0
            }
            Err(_) => fail("couldn't list path", args.first().copied().unwrap_or("/")),
        },
        "xenstore-write" if args.is_empty() || args.len() % 2 == 1 => {
            out("Usage: xenstore-write PATH VALUE [PATH VALUE ...]\n");
            2
        }
        "xenstore-write" => {
            for pair in args.chunks(2) {
                if s.write(pair[0], pair[1]).is_err() {
                    return fail("could not write path", pair[0]);
                }
            }
            0
        }
        _ if args.is_empty() => {
            out(&alloc::format!("Usage: {cmd} PATH [PATH ...]\n"));
            2
        }
        "xenstore-read" => {
            for p in args {
                match s.read(p) {
                    Ok(v) => out(&alloc::format!("{v}\n")),
                    Err(_) => return fail("couldn't read path", p),
                }
            }
            0
        }
        _ => {
            for p in args {
                if s.rm(p).is_err() {
                    return fail("could not remove path", p);
                }
            }
            0
        }
    }
}

/// Runs one command line.
fn run(tool: &mut xl::Xl, line: &str) {
    let w = words(line);
    let Some(first) = w.first() else {
        return;
    };
    let args: alloc::vec::Vec<&str> = w.iter().map(String::as_str).collect();
    let code = match first.as_str() {
        "xl" => tool.run(&args[1..]),
        "help" => {
            out(xl::HELP);
            0
        }
        "ls" => tool.ls(args.get(1).copied()),
        "cat" => tool.cat(&args[1..]),
        "poweroff" => poweroff(tool),
        "sleep" => match args
            .get(1)
            .and_then(|a| oxen_toolstack::line::seconds_ns(a))
        {
            Some(ns) if args.len() == 2 => {
                tool.sleeping_until = Some(time::now_ns() + ns);
                0
            }
            _ => {
                out("sleep: usage: sleep SECONDS (e.g. 0.5)\n");
                1
            }
        },
        "xenstore-read" | "xenstore-write" | "xenstore-rm" | "xenstore-ls" | "xenstore-watch"
        | "xenstore-chmod" => xenstore(tool, first, &args[1..]),
        "echo" => {
            out(&args[1..].join(" "));
            out("\n");
            0
        }
        other => {
            out(&alloc::format!("{other}: command not found (try 'help')\n"));
            127
        }
    };
    tool.last_exit = code;
}
