//! The measuring rules of BENCHMARKS.md, independent of what is measured.
//!
//! Each workload runs every contender (kmem's variants, the peers, the floor) once per round,
//! interleaved (A B C, B C A, C A B, …: the order rotates each round, [`rotation`]), one sample
//! each. A sample times enough iterations to last
//! [`Config::sample_target`]. Ratios are paired: within a round, kmem's time is divided by the
//! best peer's time of that same round and by the floor's; the table reports the median of those
//! per-round ratios, and each contender's median ns/op with its [min–max] over rounds.
//! Invariant: `Row::ns.len() == Results::rounds` for every row; a `None` is a round in which that
//! contender was not measured (it failed or does not apply).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How long and how often to measure.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Interleaved rounds; ratios are medians over these.
    pub rounds: usize,
    /// Wall time one timed sample should last at least.
    pub sample_target: Duration,
}

/// The part a contender plays in a workload's comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// kmem itself: its rows get the two ratio columns.
    Subject,
    /// An allocator a user could pick instead.
    Peer,
    /// The hardware floor: the cheapest code that does the same bookkeeping.
    Floor,
}

/// Returns how many units of work make a sample last about `target`, warming the code up on the
/// way. `run(n)` performs `n` units and returns the time they took, or `None` on failure.
pub fn calibrate(target: Duration, start: u64, mut run: impl FnMut(u64) -> Option<Duration>) -> Option<u64> {
    let mut n = start.max(1);
    loop {
        let took = run(n)?;
        // A tenth of the target is long enough to extrapolate from without timer noise.
        if took >= target / 10 || n >= 1 << 40 {
            let scale = target.as_secs_f64() / took.as_secs_f64().max(1e-9);
            return Some(((n as f64 * scale).ceil() as u64).max(1));
        }
        n = n.saturating_mul(if took < target / 1000 { 16 } else { 4 });
    }
}

/// The order in which `n` contenders run in `round`: their list rotated by `round`, so that no
/// contender always runs first (right after the previous workload's last one) or always after the
/// same neighbour (position bias: caches, branch predictors and CPU frequency it inherits).
pub fn rotation(n: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |k| (k + round) % n)
}

/// Times one closure call.
pub fn time(f: impl FnOnce() -> Option<()>) -> Option<Duration> {
    let t = Instant::now();
    f()?;
    Some(t.elapsed())
}

/// One contender's per-round ns/op in one workload.
struct Row {
    contender: String,
    role: Role,
    ns: Vec<Option<f64>>,
}

/// One workload's rows, in the order contenders were first recorded.
struct Workload {
    name: String,
    rows: Vec<Row>,
}

/// Every sample of a run, and the table made from them.
pub struct Results {
    rounds: usize,
    workloads: Vec<Workload>,
}

impl Results {
    /// An empty result set for `rounds` rounds.
    pub fn new(rounds: usize) -> Self {
        Self { rounds, workloads: Vec::new() }
    }

    /// Whether no workload was declared or recorded (only untimed groups ran).
    pub fn is_empty(&self) -> bool {
        self.workloads.is_empty()
    }

    /// Creates the row of `contender` in `workload`, with no sample yet.
    pub fn declare(&mut self, workload: &str, contender: &str, role: Role) {
        self.row(workload, contender, role);
    }

    /// Records `ns_per_op` for `contender` in `workload` at `round`.
    pub fn record(&mut self, workload: &str, contender: &str, role: Role, round: usize, ns: f64) {
        self.row(workload, contender, role).ns[round] = Some(ns);
    }

    /// The row of `contender` in `workload`, created empty if need be.
    fn row(&mut self, workload: &str, contender: &str, role: Role) -> &mut Row {
        let w = match self.workloads.iter().position(|w| w.name == workload) {
            Some(i) => &mut self.workloads[i],
            None => {
                self.workloads.push(Workload { name: workload.to_owned(), rows: Vec::new() });
                self.workloads.last_mut().expect("just pushed")
            }
        };
        match w.rows.iter().position(|r| r.contender == contender) {
            Some(i) => &mut w.rows[i],
            None => {
                let ns = vec![None; self.rounds];
                w.rows.push(Row { contender: contender.to_owned(), role, ns });
                w.rows.last_mut().expect("just pushed")
            }
        }
    }

    /// Renders the markdown table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "| workload | allocator | median ns/op [min–max] | kmem ÷ best peer (median of rounds) \
             | kmem ÷ floor (median of rounds) |\n|---|---|---:|---:|---:|\n",
        );
        for w in &self.workloads {
            let best_peer = w
                .rows
                .iter()
                .filter(|r| r.role == Role::Peer)
                .filter_map(|r| Some((median(&present(&r.ns))?, r)))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, r)| r.contender.as_str());
            for r in &w.rows {
                let vals = present(&r.ns);
                let time = match (median(&vals), min(&vals), max(&vals)) {
                    (Some(m), Some(lo), Some(hi)) => {
                        format!("{} [{}–{}]", fmt_ns(m), fmt_ns(lo), fmt_ns(hi))
                    }
                    _ => "failed".to_owned(),
                };
                let (vs_peer, vs_floor) = match r.role {
                    Role::Subject => {
                        (fmt_ratio(self.paired(w, r, Role::Peer)), fmt_ratio(self.paired(w, r, Role::Floor)))
                    }
                    Role::Peer if Some(r.contender.as_str()) == best_peer => ("best peer".to_owned(), String::new()),
                    Role::Peer => (String::new(), String::new()),
                    Role::Floor => (String::new(), "floor".to_owned()),
                };
                let _ = writeln!(out, "| {} | {} | {time} | {vs_peer} | {vs_floor} |", w.name, r.contender);
            }
        }
        out
    }

    /// Median over rounds of `subject / fastest row of role` within each round.
    fn paired(&self, w: &Workload, subject: &Row, role: Role) -> Option<f64> {
        let ratios: Vec<f64> = (0..self.rounds)
            .filter_map(|round| {
                let mine = subject.ns[round]?;
                let theirs =
                    w.rows.iter().filter(|r| r.role == role).filter_map(|r| r.ns[round]).min_by(f64::total_cmp)?;
                Some(mine / theirs)
            })
            .collect();
        median(&ratios)
    }
}

/// The rounds in which a row was measured.
fn present(ns: &[Option<f64>]) -> Vec<f64> {
    ns.iter().flatten().copied().collect()
}

/// The median (the mean of the two middle values for an even count).
pub fn median(vals: &[f64]) -> Option<f64> {
    let mut v = vals.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

fn min(vals: &[f64]) -> Option<f64> {
    vals.iter().copied().min_by(f64::total_cmp)
}

fn max(vals: &[f64]) -> Option<f64> {
    vals.iter().copied().max_by(f64::total_cmp)
}

/// Three significant digits or so: `1.23`, `12.3`, `123`, `1234`.
fn fmt_ns(ns: f64) -> String {
    if ns < 10.0 {
        format!("{ns:.2}")
    } else if ns < 100.0 {
        format!("{ns:.1}")
    } else {
        format!("{ns:.0}")
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r < 10.0 => format!("{r:.2}×"),
        Some(r) => format!("{r:.1}×"),
        None => "—".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_visits_each_contender_once_from_a_moving_start() {
        assert_eq!(rotation(3, 0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rotation(3, 1).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(rotation(3, 5).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(rotation(0, 4).count(), 0);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn ratios_are_paired_within_rounds() {
        // Round 0: kmem 2 vs best peer 4 (0.5); round 1: kmem 6 vs best peer 3 (2.0);
        // round 2: kmem 1 vs best peer 2 (0.5). Median of paired ratios = 0.5, whereas the ratio
        // of medians would be 2 / 3.
        let mut r = Results::new(3);
        for (round, (k, a, b, f)) in
            [(2.0, 4.0, 5.0, 1.0), (6.0, 3.0, 9.0, 2.0), (1.0, 2.0, 8.0, 1.0)].into_iter().enumerate()
        {
            r.record("w", "kmem", Role::Subject, round, k);
            r.record("w", "a", Role::Peer, round, a);
            r.record("w", "b", Role::Peer, round, b);
            r.record("w", "floor", Role::Floor, round, f);
        }
        let w = &r.workloads[0];
        assert_eq!(r.paired(w, &w.rows[0], Role::Peer), Some(0.5));
        assert_eq!(r.paired(w, &w.rows[0], Role::Floor), Some(2.0));
        let table = r.table();
        assert!(table.contains("| w | kmem | 2.00 [1.00–6.00] | 0.50× | 2.00× |"), "{table}");
        assert!(table.contains("| w | a | 3.00 [2.00–4.00] | best peer |  |"), "{table}");
    }
}
