//! What a run measured: latency histograms per call (HDR, microseconds), errors by call
//! and status, the cycle rate, and the checks that no task was lost or done twice.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::api::Failed;

/// Latencies up to this many microseconds are told apart (longer ones count as this).
const LONGEST_MICROS: u64 = 600_000_000;

/// Everything the fleet's calls record, shared by its tasks.
#[derive(Debug)]
pub(crate) struct Metrics {
    latencies: Mutex<BTreeMap<&'static str, Histogram<u64>>>,
    errors: Mutex<BTreeMap<(String, u16), u64>>,
    completions: Mutex<(u64, Option<Instant>)>,
    /// When work last became claimable as far as the fleet can tell: a task queued, or a
    /// completion accepted (which frees its paths).
    work_ready: Mutex<Option<Instant>>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Self {
            latencies: Mutex::default(),
            errors: Mutex::default(),
            completions: Mutex::new((0, None)),
            work_ready: Mutex::new(None),
        }
    }

    /// Notes that work may have become claimable now.
    pub(crate) fn work_ready(&self) {
        *self.work_ready.lock().unwrap() = Some(Instant::now());
    }

    /// Records a claim sent at `sent` that came back with work: how long it took from the
    /// later of its sending and the moment work last became claimable.
    pub(crate) fn claimed(&self, sent: Instant) {
        let now = Instant::now();
        let ready = self
            .work_ready
            .lock()
            .unwrap()
            .filter(|ready| *ready > sent && *ready <= now)
            .unwrap_or(sent);
        self.record("claim (from ready)", now - ready);
    }

    /// Records one call of `label` that took `took`.
    pub(crate) fn record(&self, label: &'static str, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latencies
            .lock()
            .unwrap()
            .entry(label)
            .or_insert_with(|| {
                Histogram::new_with_bounds(1, LONGEST_MICROS, 3).expect("valid bounds")
            })
            .saturating_record(micros.max(1));
    }

    /// Records a failed call of `label`.
    pub(crate) fn error(&self, label: &'static str, failed: &Failed) {
        *self
            .errors
            .lock()
            .unwrap()
            .entry((label.to_owned(), failed.status))
            .or_default() += 1;
    }

    /// Counts a completion the server accepted.
    pub(crate) fn completed(&self) {
        let mut completions = self.completions.lock().unwrap();
        completions.0 += 1;
        completions.1 = Some(Instant::now());
        drop(completions);
        self.work_ready();
    }

    /// Completions so far.
    pub(crate) fn completions(&self) -> u64 {
        self.completions.lock().unwrap().0
    }

    /// When the last completion was accepted.
    pub(crate) fn last_completion(&self) -> Option<Instant> {
        self.completions.lock().unwrap().1
    }

    /// The latency summary of every call recorded.
    pub(crate) fn latencies(&self) -> Vec<Latency> {
        self.latencies
            .lock()
            .unwrap()
            .iter()
            .map(|(label, histogram)| Latency::of(label, histogram))
            .collect()
    }

    /// Failed calls by call and status.
    pub(crate) fn errors(&self) -> Vec<ErrorCount> {
        self.errors
            .lock()
            .unwrap()
            .iter()
            .map(|((call, status), count)| ErrorCount {
                call: call.clone(),
                status: *status,
                count: *count,
            })
            .collect()
    }
}

/// The latency of one kind of call, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Latency {
    pub(crate) call: String,
    pub(crate) count: u64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
}

impl Latency {
    /// The summary of `histogram` (microseconds) under `label`.
    pub(crate) fn of(label: &str, histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            call: label.to_owned(),
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.5)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }

    /// The summary of `durations` under `label`.
    pub(crate) fn of_durations(label: &str, durations: impl Iterator<Item = Duration>) -> Self {
        let mut histogram =
            Histogram::<u64>::new_with_bounds(1, LONGEST_MICROS, 3).expect("valid bounds");
        for took in durations {
            histogram.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
        }
        Self::of(label, &histogram)
    }
}

/// Failed calls of one kind with one status (0: no answer).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ErrorCount {
    pub(crate) call: String,
    pub(crate) status: u16,
    pub(crate) count: u64,
}

/// What the server says about the run's tasks afterwards.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Checks {
    /// Tasks of the run the server has.
    pub(crate) tasks: u64,
    /// Of those, COMPLETED.
    pub(crate) completed: u64,
    /// Tasks of the run the server has not (queued but gone) or that never completed.
    pub(crate) lost: u64,
    /// Tasks whose completion was accepted more than once, or that ran in more than one
    /// attempt.
    pub(crate) done_twice: u64,
}

impl Checks {
    /// Whether the run kept every task and did each once.
    pub(crate) fn hold(&self) -> bool {
        self.lost == 0 && self.done_twice == 0
    }
}

/// The report of one run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) scenario: String,
    pub(crate) runners: usize,
    pub(crate) slots: usize,
    pub(crate) tasks: u64,
    pub(crate) blocked: u64,
    pub(crate) rate: f64,
    /// Completions per second, from the first task queued to the last completion.
    pub(crate) cycles_per_second: f64,
    pub(crate) seconds: f64,
    pub(crate) latencies: Vec<Latency>,
    pub(crate) errors: Vec<ErrorCount>,
    pub(crate) checks: Checks,
}

/// What a run reports, and how.
pub(crate) trait Outcome: Serialize {
    /// Whether the run held: no call failed and nothing went missing.
    fn holds(&self) -> bool;

    /// The report as one row of its table in BENCHMARKS.md (the header `benches/load.sh`
    /// writes names the columns), labelled `label`.
    fn markdown_row(&self, label: &str) -> String;

    /// The report as lines of text.
    fn text(&self) -> String;
}

/// The latency summary of `call` among `latencies`, if it was recorded.
pub(crate) fn latency<'a>(latencies: &'a [Latency], call: &str) -> Option<&'a Latency> {
    latencies.iter().find(|latency| latency.call == call)
}

/// The latencies as the lines of a text report.
pub(crate) fn latency_lines(latencies: &[Latency]) -> String {
    let mut out = format!(
        "  {:<18} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
        "call (ms)", "count", "p50", "p99", "p99.9", "max"
    );
    for latency in latencies {
        out.push_str(&format!(
            "  {:<18} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
            latency.call,
            latency.count,
            latency.p50_ms,
            latency.p99_ms,
            latency.p999_ms,
            latency.max_ms
        ));
    }
    out
}

/// The failed calls as the lines of a text report.
pub(crate) fn error_lines(errors: &[ErrorCount]) -> String {
    if errors.is_empty() {
        return "  errors: none\n".to_owned();
    }
    errors
        .iter()
        .map(|error| {
            format!(
                "  errors: {} × {} ({})\n",
                error.count,
                error.call,
                match error.status {
                    0 => "no answer".to_owned(),
                    status => status.to_string(),
                }
            )
        })
        .collect()
}

impl Outcome for Report {
    fn holds(&self) -> bool {
        self.errors.is_empty() && self.checks.hold()
    }

    fn markdown_row(&self, label: &str) -> String {
        let p99 = |call: &str| {
            latency(&self.latencies, call).map_or("–".to_owned(), |l| format!("{:.1}", l.p99_ms))
        };
        let claim = latency(&self.latencies, "claim (from ready)").map_or("–".to_owned(), |l| {
            format!("{:.1} / {:.1} / {:.1}", l.p50_ms, l.p99_ms, l.p999_ms)
        });
        let mut scenario = self.scenario.clone();
        if self.blocked > 0 {
            scenario.push_str(&format!(" ({} blocked)", self.blocked));
        }
        if self.rate > 0.0 {
            scenario.push_str(&format!(", {}/s", self.rate));
        }
        format!(
            "| {label} | {scenario} | {} × {} | {} | {:.1} | {claim} | {} | {} | {} | {} | {} | {} |",
            self.runners,
            self.slots,
            self.tasks,
            self.cycles_per_second,
            p99("enqueue → claim"),
            p99("completion"),
            p99("heartbeat"),
            self.errors.iter().map(|e| e.count).sum::<u64>(),
            self.checks.lost,
            self.checks.done_twice
        )
    }

    fn text(&self) -> String {
        let mut out = format!(
            "{} with {} runner(s) × {} slot(s): {} task(s){}{}\n",
            self.scenario,
            self.runners,
            self.slots,
            self.tasks,
            if self.rate > 0.0 {
                format!(" queued at {}/s", self.rate)
            } else {
                " queued up front".to_owned()
            },
            if self.blocked > 0 {
                format!(", behind {} blocked", self.blocked)
            } else {
                String::new()
            }
        );
        out.push_str(&format!(
            "  {:.1} cycles/s over {:.1} s\n",
            self.cycles_per_second, self.seconds
        ));
        out.push_str(&latency_lines(&self.latencies));
        out.push_str(&error_lines(&self.errors));
        out.push_str(&format!(
            "  checks: {} of {} task(s) completed, {} lost, {} done twice\n",
            self.checks.completed, self.checks.tasks, self.checks.lost, self.checks.done_twice
        ));
        out
    }
}
