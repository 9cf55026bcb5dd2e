//! Rate limiting for reports (`struct ratelimit_state`, `___ratelimit`), and the pieces of
//! reports more than one allocator prints.

use core::panic::Location;

use crate::platform::{Level, Platform, Task};
use crate::sync::SpinLock;

/// `f` with the platform's current task, or with a default one (`kmem`, pid 0) if the
/// platform never calls its argument: a report is printed either way.
pub(crate) fn with_task<P: Platform + ?Sized, R>(platform: &P, f: impl FnOnce(Task<'_>) -> R) -> R {
    let mut f = Some(f);
    let mut out = None;
    platform.with_task(&mut |task| {
        if let Some(f) = f.take() {
            out = Some(f(task));
        }
    });
    out.unwrap_or_else(|| f.take().map(|f| f(Task { comm: "kmem", pid: 0 })).expect("called at most once"))
}

/// `__might_resched`'s report of a sleeping call in atomic context, with the stack: the page
/// allocator's (rate-limited by its caller) and the mempool's.
pub(crate) fn might_sleep<P: Platform + ?Sized>(platform: &P, caller: &Location<'_>) {
    platform.log(Level::Err, format_args!("{}", MightSleep::of(platform, caller.file(), caller.line())));
    platform.dump_stack(caller);
}

/// The text of `__might_resched`'s report (without the stack), as the kernel prints it:
/// the caller's file and line, then the context: `irqs_disabled()`, the task, and
/// `preempt_count()` in hex (what the platform's [`Platform::preempt_count`] says). The C ABI's
/// `might_sleep()` prints the same text with the C caller's file and line.
pub struct MightSleep<'a, P: Platform + ?Sized> {
    platform: &'a P,
    file: &'a str,
    line: u32,
}

impl<'a, P: Platform + ?Sized> MightSleep<'a, P> {
    /// The report for a call at `file:line`, in the context of the thread that prints it.
    pub fn of(platform: &'a P, file: &'a str, line: u32) -> Self {
        MightSleep { platform, file, line }
    }
}

impl<P: Platform + ?Sized> core::fmt::Display for MightSleep<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let p = self.platform;
        with_task(p, |task| {
            write!(
                f,
                "BUG: sleeping function called from invalid context at {}:{}\nin_atomic(): 1, irqs_disabled(): {}, non_block: 0, pid: {}, name: {}\npreempt_count: {:x}, expected: 0",
                self.file,
                self.line,
                u8::from(p.irqs_disabled()),
                task.pid,
                task.comm,
                p.preempt_count(),
            )
        })
    }
}

struct State {
    begin: u64,
    printed: u32,
    missed: u32,
}

/// What [`Ratelimit::check`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Print; `missed` reports were suppressed since the last printed one, if any.
    Print {
        /// Reports suppressed in the interval that just ended.
        missed: Option<u32>,
    },
    /// Stay quiet.
    Suppress,
}

/// Allows `burst` reports per `interval_ns`, counting the suppressed ones.
pub struct Ratelimit {
    interval_ns: u64,
    burst: u32,
    state: SpinLock<State>,
}

impl Ratelimit {
    /// A limiter of `burst` reports per `interval_ns` nanoseconds.
    #[must_use]
    pub fn new(interval_ns: u64, burst: u32) -> Self {
        Self { interval_ns, burst, state: SpinLock::new(State { begin: 0, printed: 0, missed: 0 }) }
    }

    /// `DEFAULT_RATELIMIT_INTERVAL` (5 s) and `DEFAULT_RATELIMIT_BURST` (10).
    #[must_use]
    pub fn default_kernel() -> Self {
        Self::new(5_000_000_000, 10)
    }

    /// Whether a report may be printed at time `now_ns`.
    pub fn check(&self, now_ns: u64) -> Verdict {
        let mut st = self.state.lock();
        let mut missed = None;
        if st.printed == 0 && st.missed == 0 && st.begin == 0 {
            st.begin = now_ns.max(1);
        }
        if now_ns.saturating_sub(st.begin) >= self.interval_ns {
            if st.missed > 0 {
                missed = Some(st.missed);
            }
            st.begin = now_ns.max(1);
            st.printed = 0;
            st.missed = 0;
        }
        if st.printed < self.burst {
            st.printed += 1;
            Verdict::Print { missed }
        } else {
            st.missed += 1;
            Verdict::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_quiet_then_reports_missed() {
        let rs = Ratelimit::new(1000, 2);
        assert_eq!(rs.check(10), Verdict::Print { missed: None });
        assert_eq!(rs.check(20), Verdict::Print { missed: None });
        assert_eq!(rs.check(30), Verdict::Suppress);
        assert_eq!(rs.check(40), Verdict::Suppress);
        assert_eq!(rs.check(1100), Verdict::Print { missed: Some(2) });
    }
}
