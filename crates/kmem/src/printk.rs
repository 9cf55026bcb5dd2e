//! The kernel log: a ring buffer of records with levels (`printk`, `dmesg`).
//!
//! Records keep their level, a sequence number and a timestamp since the machine started.
//! The buffer holds at most `capacity` bytes of text; the oldest records are dropped first.
//! With echo on, each record is also written to stderr as it is logged.
//!
//! Heap: everything the ring allocates comes from the system allocator even when
//! [`crate::KmemAlloc`] is the global allocator, because kmem logs from inside its own
//! operations (possibly under its locks), and a record allocated through kmem there could
//! re-enter it. Each method that locks the ring first enters a system-heap scope.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use kmem_core::platform::Level;

/// One log record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Sequence number, from 0.
    pub seq: u64,
    /// Log level.
    pub level: Level,
    /// Nanoseconds since the machine started.
    pub ts_ns: u64,
    /// The text, one line, without the trailing newline.
    pub text: String,
}

/// Which records go to stderr as they are logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// None.
    Off,
    /// Records whose level is below this console log level (as `loglevel=`).
    Below(u8),
}

struct Ring {
    records: VecDeque<Record>,
    bytes: usize,
    next_seq: u64,
    partial: String,
    partial_level: Level,
}

/// What sees each record as it is logged ([`Printk::follow`]).
pub type Follower = Box<dyn Fn(&Record) + Send + Sync>;

/// A printk ring buffer.
pub struct Printk {
    ring: Mutex<Ring>,
    capacity: usize,
    start: Instant,
    echo: Echo,
    follower: OnceLock<Follower>,
}

/// `PRINTKRB_RECORD_MAX`: the most text one record holds while continuations are added.
pub const PRINTKRB_RECORD_MAX: usize = 1024;

impl Printk {
    /// A ring of `capacity` bytes of text.
    pub fn new(capacity: usize, echo: Echo) -> Self {
        Self {
            ring: Mutex::new(Ring {
                records: VecDeque::new(),
                bytes: 0,
                next_seq: 0,
                partial: String::new(),
                partial_level: Level::Warning,
            }),
            capacity: capacity.max(1024),
            start: Instant::now(),
            echo,
            follower: OnceLock::new(),
        }
    }

    /// `dmesg --follow`: `f` sees every record in the ring now, then each new one as it is
    /// logged, none twice or missed, so a process that dies has shown its log up to there.
    /// It runs under the log's lock, one record at a time: it must not log. Returns false (and
    /// drops `f`) if the log has a follower already.
    pub fn follow(&self, f: impl Fn(&Record) + Send + Sync + 'static) -> bool {
        let _heap = crate::global_alloc::system_scope(); // See the module docs (heap).
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if self.follower.set(Box::new(f)).is_err() {
            return false;
        }
        if let Some(f) = self.follower.get() {
            ring.records.iter().for_each(f);
        }
        true
    }

    /// Logs text at `level`. Every `\n` ends a record; text after the last newline waits for
    /// the next call (as `KERN_CONT` continuation) unless `flush` is set, or until it reaches
    /// [`PRINTKRB_RECORD_MAX`] bytes, where it becomes a record of its own.
    pub fn log(&self, level: Level, text: &str, flush: bool) {
        let _heap = crate::global_alloc::system_scope(); // See the module docs (heap).
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.partial.is_empty() {
            ring.partial_level = level;
        }
        ring.partial.push_str(text);
        while let Some(pos) = ring.partial.find('\n') {
            let line: String = ring.partial.drain(..=pos).collect();
            let level = ring.partial_level;
            self.push(&mut ring, level, line.trim_end_matches('\n').to_owned());
            ring.partial_level = level;
        }
        // `PRINTKRB_RECORD_MAX`: a continuation that no longer fits its record starts a new
        // one (`prb_reserve_in_last` fails), so unterminated text cannot grow without bound.
        if flush && !ring.partial.is_empty() || ring.partial.len() >= PRINTKRB_RECORD_MAX {
            let line = std::mem::take(&mut ring.partial);
            let level = ring.partial_level;
            self.push(&mut ring, level, line);
        }
    }

    fn push(&self, ring: &mut Ring, level: Level, text: String) {
        let ts_ns = self.start.elapsed().as_nanos() as u64;
        if let Echo::Below(console) = self.echo
            && (level as u8) < console
        {
            eprintln!("{}", format_record(ts_ns, &text));
        }
        ring.bytes += text.len();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        let record = Record { seq, level, ts_ns, text };
        if let Some(f) = self.follower.get() {
            f(&record);
        }
        ring.records.push_back(record);
        while ring.bytes > self.capacity {
            let Some(old) = ring.records.pop_front() else { break };
            ring.bytes -= old.text.len();
        }
    }

    /// Whether a record at `level` is echoed to stderr (`KMEM_LOG_ECHO`).
    pub fn echoes(&self, level: Level) -> bool {
        matches!(self.echo, Echo::Below(console) if (level as u8) < console)
    }

    /// Every record still in the ring, oldest first.
    pub fn records(&self) -> Vec<Record> {
        let _heap = crate::global_alloc::system_scope(); // See the module docs (heap).
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).records.iter().cloned().collect()
    }

    /// The messages only, one per line (what the book's listings show).
    pub fn messages(&self) -> String {
        let _heap = crate::global_alloc::system_scope(); // See the module docs (heap).
        let mut out = String::new();
        for r in self.ring.lock().unwrap_or_else(|e| e.into_inner()).records.iter() {
            out.push_str(&r.text);
            out.push('\n');
        }
        out
    }

    /// `dmesg`: each record as `[seconds.micros] text`.
    pub fn dmesg(&self) -> String {
        let _heap = crate::global_alloc::system_scope(); // See the module docs (heap).
        let mut out = String::new();
        for r in self.ring.lock().unwrap_or_else(|e| e.into_inner()).records.iter() {
            let _ = writeln!(out, "{}", format_record(r.ts_ns, &r.text));
        }
        out
    }

    /// `dmesg -C`: empties the ring.
    pub fn clear(&self) {
        let _heap = crate::global_alloc::system_scope(); // See the module docs (heap).
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.records.clear();
        ring.bytes = 0;
    }
}

fn format_record(ts_ns: u64, text: &str) -> String {
    format!("[{:>5}.{:06}] {text}", ts_ns / 1_000_000_000, (ts_ns / 1000) % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A follower sees the records already logged, then each new one once, in order; a second
    /// follower is refused.
    #[test]
    fn a_follower_sees_every_record_once() {
        use std::sync::Arc;
        let log = Printk::new(1 << 20, Echo::Off);
        log.log(Level::Info, "before\n", false);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        assert!(log.follow(move |r| s.lock().unwrap().push((r.seq, r.text.clone()))));
        log.log(Level::Info, "after\npart", false);
        log.log(Level::Info, "ial\n", false);
        assert!(!log.follow(|_| {}));
        let want = [(0, "before"), (1, "after"), (2, "partial")].map(|(n, t)| (n, t.to_owned()));
        assert_eq!(*seen.lock().unwrap(), want);
    }

    /// Continuations without a newline stop growing at `PRINTKRB_RECORD_MAX` (audit: the
    /// pending text grew without bound): each full record is pushed, the rest keeps waiting.
    #[test]
    fn an_unterminated_continuation_becomes_records_of_at_most_the_record_max() {
        let log = Printk::new(1 << 20, Echo::Off);
        for _ in 0..2500 {
            log.log(Level::Info, "x", false);
        }
        let recs = log.records();
        assert_eq!(recs.len(), 2, "two full records, the rest pending");
        assert!(recs.iter().all(|r| r.text.len() == PRINTKRB_RECORD_MAX && r.level == Level::Info));
        log.log(Level::Info, "\n", false);
        assert_eq!(log.records().last().map(|r| r.text.len()), Some(2500 - 2 * PRINTKRB_RECORD_MAX));
    }

    #[test]
    fn lines_partial_and_capacity() {
        let log = Printk::new(1024, Echo::Off);
        log.log(Level::Info, "one\ntw", false);
        log.log(Level::Warning, "o\n", false);
        log.log(Level::Err, "three", true);
        let recs = log.records();
        assert_eq!(recs.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(), ["one", "two", "three"]);
        assert_eq!(recs[1].level, Level::Info, "a continuation keeps the first level");
        assert_eq!(recs[2].level, Level::Err);
        assert_eq!(log.messages(), "one\ntwo\nthree\n");
        assert!(log.dmesg().lines().all(|l| l.starts_with('[') && l.contains("] ")));
        for i in 0..500 {
            log.log(Level::Info, &format!("line {i}\n"), false);
        }
        let recs = log.records();
        assert!(recs.iter().map(|r| r.text.len()).sum::<usize>() <= 1024);
        assert_eq!(recs.last().unwrap().text, "line 499");
        log.clear();
        assert!(log.records().is_empty());
    }
}
