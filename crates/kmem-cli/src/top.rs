//! `kmem top`: slabtop's live view ([`crate::slabtop`]) of a machine's slab caches while a
//! workload runs on it, or of a `/proc/slabinfo` file (a real kernel's too), re-read for
//! every frame.
//!
//! Decisions:
//! - On a terminal, as slabtop: redrawn every `--delay` seconds (3 by default; fractions
//!   allowed, where slabtop takes whole seconds), the heading in reverse video, as many caches
//!   as fit (the terminal's rows less 8, 80x24 when it reports 10 rows or fewer), each line cut
//!   at the terminal's width. With a terminal on standard input too it takes the alternate
//!   screen and reads keys without echo or signals: a sort letter re-sorts and redraws at once,
//!   `q` (or Ctrl-C, Ctrl-D, the end of input) quits and restores the terminal and the screen;
//!   any other key redraws with the sort unchanged (slabtop resets the sort to objects).
//!   Without one (`kmem top < file`), Ctrl-C's signal ends it on the main screen, where the
//!   last frame stays. With `--iterations` it stays on the main screen too (keys are still
//!   read), so the last of the frames asked for is what remains, as `top -n` leaves it.
//! - Elsewhere (a pipe, a file) each frame is `--once`'s text, every cache, frames separated
//!   by a blank line, as `top -b` does. `--iterations N` stops after N frames (otherwise it
//!   runs until killed, or until the reader closes the pipe).
//! - The workload's first round is done before the first frame: the one-shot workloads run to
//!   their end, `churn` until each of its threads made its first round of operations; `churn`
//!   then goes on until `top` ends. A `churn` thread that fails (an allocation it could not
//!   get) ends the frames after the next one, and `top` says why (exit code 1).
//! - `CACHE SIZE` counts kmem's 4 KiB pages for a machine, and the host's page size for a
//!   file, as slabtop on this host would.

use std::io::{self, IsTerminal as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use kmem::Machine;

use crate::slabtop::{self, Cache, SortKey};
use crate::workload::Workload;

/// What `kmem top` shows and how often.
pub struct Options {
    pub delay: Duration,
    pub once: bool,
    pub sort: SortKey,
    pub iterations: Option<u64>,
}

/// Where the slabinfo text comes from.
pub enum Source<'a> {
    /// A machine, after (and while) this workload runs on it.
    Machine(&'a Machine, Workload),
    /// A file in `/proc/slabinfo`'s format, re-read for every frame.
    File(&'a Path),
}

/// Runs `kmem top`; `Err` holds the exit code (the error was reported).
pub fn run(source: &Source<'_>, opts: &Options) -> Result<(), ExitCode> {
    match *source {
        Source::File(path) => {
            let read = || {
                let text = read_slabinfo(path).map_err(|e| format!("cannot read: {e}"))?;
                slabtop::parse(&text).map_err(|e| e.to_string())
            };
            let page_size = rustix::param::page_size() as u64;
            show(read, || false, page_size, opts).map_err(|e| fail(&path.display().to_string(), e))
        }
        Source::Machine(m, workload) => {
            let stop = AtomicBool::new(false);
            std::thread::scope(|scope| {
                let started = workload.start(m, scope, &stop).map_err(|e| fail("workload", Failure::Source(e)))?;
                // Set on the way out whatever happens: a panic below would otherwise leave the
                // scope waiting for ever for threads that never stop.
                let _stop_on_exit = StopOnDrop(&stop);
                let read = || slabtop::parse(&m.slabinfo()).map_err(|e| format!("kmem's slabinfo: {e}"));
                // A workload thread that ended on its own failed: the frames stop, and the join
                // below says why.
                let shown =
                    show(read, || started.any_ended(), kmem::PAGE_SIZE as u64, opts).map_err(|e| fail("machine", e));
                stop.store(true, Relaxed);
                let ended = started.join().map_err(|e| fail("workload", Failure::Source(e)));
                shown.and(ended)
            })
        }
    }
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

/// Why `top` stopped early.
enum Failure {
    /// The slabinfo text could not be read (or the workload failed): exit code 1.
    Source(String),
    /// Standard output failed: `emit`'s exit code (success for a closed pipe).
    Output(ExitCode),
}

fn fail(what: &str, f: Failure) -> ExitCode {
    match f {
        Failure::Source(e) => {
            eprintln!("kmem top: {what}: {e}");
            ExitCode::from(1)
        }
        Failure::Output(code) => code,
    }
}

/// The frames, until `--once`'s one, the last of `--iterations`, a quit key, or the end of the
/// workload (`ended`: a thread that stopped before it was told to).
fn show(
    read: impl Fn() -> Result<Vec<Cache>, String>,
    ended: impl Fn() -> bool,
    page_size: u64,
    opts: &Options,
) -> Result<(), Failure> {
    let frame = |sort| {
        let mut caches = read().map_err(Failure::Source)?;
        slabtop::sort(&mut caches, sort, page_size);
        Ok::<_, Failure>(caches)
    };
    if opts.once {
        return crate::emit(&slabtop::once(&frame(opts.sort)?, page_size)).map_err(Failure::Output);
    }
    let mut screen = if io::stdout().is_terminal() { Some(Screen::enter(opts.iterations.is_none())) } else { None };
    let mut sort = opts.sort;
    for n in 1.. {
        let caches = frame(sort)?;
        let text = match &screen {
            Some(s) => s.draw(&caches, page_size),
            None => format!("{}{}", if n > 1 { "\n" } else { "" }, slabtop::once(&caches, page_size)),
        };
        crate::emit(&text).map_err(Failure::Output)?;
        if opts.iterations.is_some_and(|last| n >= last) || ended() {
            break;
        }
        match screen.as_mut().map_or(Key::Timeout, |s| s.wait_key(opts.delay)) {
            Key::Quit => break,
            Key::Sort(key) => sort = key,
            Key::Other => {}
            Key::Timeout if screen.as_ref().is_some_and(Screen::reads_keys) => {}
            Key::Timeout => std::thread::sleep(opts.delay),
        }
    }
    Ok(())
}

/// What came from the keyboard while waiting for the next frame.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    Timeout,
    Quit,
    Sort(SortKey),
    Other,
}

/// What a key pressed in the live view does. One byte at a time, as slabtop reads them: an
/// arrow key's `ESC [ A` does nothing, nothing, then sorts by `a` (slabtop's `parse_input`
/// lowercases each byte the same way).
fn key_action(byte: u8) -> Key {
    match byte {
        b'q' | b'Q' | 3 | 4 => Key::Quit,
        b => SortKey::from_char(char::from(b)).map_or(Key::Other, Key::Sort),
    }
}

/// The terminal while `top` draws on it: when standard input is a terminal too, the alternate
/// screen and keys read without echo or signals. Dropping it restores both (or, on the main
/// screen, ends the last frame's line).
struct Screen {
    saved: Option<rustix::termios::Termios>,
    /// On the alternate screen (keys read, and no `--iterations`).
    alternate: bool,
}

impl Screen {
    /// Takes the terminal: keys when standard input is one, and the alternate screen then if
    /// `alternate` is asked for.
    fn enter(alternate: bool) -> Self {
        use rustix::termios::{LocalModes, OptionalActions, SpecialCodeIndex, tcgetattr, tcsetattr};
        let stdin = io::stdin();
        let saved = stdin.is_terminal().then(|| tcgetattr(&stdin).ok()).flatten();
        if let Some(saved) = &saved {
            let mut raw = saved.clone();
            raw.local_modes.remove(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG);
            raw.special_codes[SpecialCodeIndex::VMIN] = 1;
            raw.special_codes[SpecialCodeIndex::VTIME] = 0;
            let _ = tcsetattr(&stdin, OptionalActions::Now, &raw);
        }
        let alternate = alternate && saved.is_some();
        if alternate {
            let _ = crate::emit("\x1b[?1049h");
        }
        Self { saved, alternate }
    }

    fn reads_keys(&self) -> bool {
        self.saved.is_some()
    }

    /// A frame for the terminal as it is now (slabtop's `Rows - 8` caches, lines cut at the
    /// width).
    fn draw(&self, caches: &[Cache], page_size: u64) -> String {
        let (rows, cols) = match rustix::termios::tcgetwinsize(io::stdout()) {
            Ok(w) if w.ws_row > 10 => (usize::from(w.ws_row), usize::from(w.ws_col)),
            _ => (24, 80),
        };
        let cut = |line: &str| line.chars().take(cols).collect::<String>();
        let mut s = String::from("\x1b[H\x1b[2J");
        for line in slabtop::summary(caches).lines() {
            s.push_str(&cut(line));
            s.push('\n');
        }
        s.push_str(&format!("\x1b[7m{}\x1b[m", cut(&slabtop::heading())));
        for c in caches.iter().take(rows.saturating_sub(8)) {
            s.push('\n');
            s.push_str(&cut(&slabtop::detail(c, page_size)));
        }
        s
    }

    /// Waits up to `delay` for a key (only when keys are read; otherwise returns at once).
    fn wait_key(&mut self, delay: Duration) -> Key {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        if self.saved.is_none() {
            return Key::Timeout;
        }
        let deadline = Instant::now() + delay;
        let stdin = io::stdin();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Key::Timeout;
            }
            let timeout = Timespec { tv_sec: left.as_secs() as i64, tv_nsec: i64::from(left.subsec_nanos()) };
            let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => return Key::Timeout,
                Ok(_) => {
                    // Straight from the descriptor: `Stdin`'s buffer would keep the keys after
                    // the first of a burst (`nq` typed at once, a paste) where `poll` cannot see
                    // them.
                    let mut byte = [0u8];
                    return match rustix::io::read(&stdin, &mut byte) {
                        Ok(1) => key_action(byte[0]),
                        _ => Key::Quit, // The end of input, or a terminal gone.
                    };
                }
                Err(rustix::io::Errno::INTR) => {} // A resize, say: go on waiting.
                Err(_) => return Key::Quit,
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        // On the main screen the last frame stays; its last line has no newline (the next
        // frame would start over it): end it, or the shell's prompt would follow it.
        let _ = io::stdout().write_all(if self.alternate { b"\x1b[?1049l" } else { b"\n" });
        let _ = io::stdout().flush();
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(io::stdin(), rustix::termios::OptionalActions::Now, saved);
        }
    }
}

/// The most of a `--slabinfo` file `kmem top` reads: a /proc/slabinfo of 100,000 caches is
/// below it; a larger file (`/dev/zero`) is refused instead of read without end.
const MAX_SLABINFO: u64 = 16 << 20;

/// The text of a `--slabinfo` file (a FIFO too: `<(ssh host cat /proc/slabinfo)`), at most
/// [`MAX_SLABINFO`] bytes.
fn read_slabinfo(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)?.take(MAX_SLABINFO + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_SLABINFO {
        return Err(std::io::Error::other("larger than 16 MiB: not a /proc/slabinfo text"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_quit_sort_or_redraw() {
        assert_eq!(key_action(b'q'), Key::Quit);
        assert_eq!(key_action(b'Q'), Key::Quit);
        assert_eq!(key_action(3), Key::Quit);
        assert_eq!(key_action(4), Key::Quit);
        assert_eq!(key_action(b'n'), Key::Sort(SortKey::Name));
        assert_eq!(key_action(b'C'), Key::Sort(SortKey::CacheSize));
        assert_eq!(key_action(b'x'), Key::Other);
        assert_eq!(key_action(b' '), Key::Other);
        // An up arrow, byte by byte, as slabtop sees it.
        let arrow: Vec<Key> = b"\x1b[A".iter().map(|&b| key_action(b)).collect();
        assert_eq!(arrow, [Key::Other, Key::Other, Key::Sort(SortKey::ActiveObjs)]);
    }
}
