//! `orchestrator-load`: drives a running orchestrator server over HTTP as a fleet does.
//!
//! Runner sessions claim by long poll into their agent slots and work every attempt
//! (heartbeat, log batch, completion); tasks are queued up front or by an open-loop
//! producer at a fixed rate, so that a slow server cannot hide its latency by slowing the
//! load. The report gives the cycle rate, latency percentiles per call (HDR histograms,
//! enqueue → claim measured from each task's scheduled instant), errors by call and
//! status, and afterwards checks through the API that no task was lost or done twice.
//!
//! ```text
//! orchestrator-load --url http://127.0.0.1:3000 --admin-token $TOKEN \
//!     --scenario shared --runners 16 --tasks 2000
//! ```
//!
//! The server should run with rate limiting off (`RATE_LIMIT_ENABLED=false`): a fleet
//! this size is over the default budget by design. The exit status is 1 when a call failed
//! or a check did not hold.

mod api;
mod fleet;
mod report;
mod streams;

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use orchestrator_core::ids::TaskId;
use orchestrator_core::model::TaskStatus;
use tokio::sync::watch;
use tokio::task::JoinSet;

use api::{Api, Failed};
use fleet::{FleetConfig, Ledger, Scenario};
use report::{Checks, Latency, Metrics, Outcome, Report};

/// Drive a running orchestrator server as a fleet of runners does, and report.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The server's address.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    url: String,

    /// The server's admin token.
    #[arg(long, env = "ORCHESTRATOR_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,

    /// Which paths the tasks name.
    #[arg(long, value_enum, default_value = "disjoint")]
    scenario: Scenario,

    /// Runner sessions.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=512))]
    runners: u16,

    /// Agent slots per runner session (one claim fills all free ones).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=32))]
    slots: u8,

    /// Tasks the run queues and completes.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    tasks: u64,

    /// Tasks queued per second while the runners work (open loop); 0 queues every task
    /// before they start.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,

    /// Queued tasks blocked behind a held lock (in the queue's head) during the run
    /// (default: 10,000 for the deep scenario, else none).
    #[arg(long)]
    blocked: Option<u64>,

    /// How long one claim waits for work, in milliseconds.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(0..=30_000))]
    claim_wait_ms: u64,

    /// Log entries each attempt sends in one batch (0: none).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=500))]
    log_entries: u64,

    /// How long each attempt's agent works before it completes, in milliseconds.
    #[arg(long, default_value_t = 0)]
    work_ms: u64,

    /// Instead of a fleet, connect this many clients to the event stream and measure
    /// delivery while tasks are queued at `--rate` (20/s if not given).
    #[arg(long, value_name = "CLIENTS", value_parser = clap::value_parser!(u64).range(1..=20_000))]
    event_streams: Option<u64>,

    /// How long each phase of the event-stream run lasts (without clients, then with).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    phase_secs: u64,

    /// The run gives up after this many seconds.
    #[arg(long, default_value_t = 600)]
    deadline_secs: u64,

    /// Print the report as JSON instead of text.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,

    /// Print the report as one row of the Markdown table in BENCHMARKS.md, starting with
    /// this label (the store, say).
    #[arg(long, value_name = "LABEL")]
    markdown: Option<String>,
}

impl Args {
    fn config(&self) -> Result<FleetConfig, String> {
        if !self.rate.is_finite() || self.rate < 0.0 {
            return Err(format!(
                "--rate {} is not a rate: give tasks per second (0 queues all up front)",
                self.rate
            ));
        }
        Ok(FleetConfig {
            scenario: self.scenario,
            runners: usize::from(self.runners),
            slots: usize::from(self.slots),
            tasks: self.tasks,
            rate: self.rate,
            blocked: self.blocked.unwrap_or(match self.scenario {
                Scenario::Deep => 10_000,
                _ => 0,
            }),
            claim_wait: Duration::from_millis(self.claim_wait_ms),
            log_entries: usize::try_from(self.log_entries).unwrap_or(500),
            work: Duration::from_millis(self.work_ms),
            deadline: Duration::from_secs(self.deadline_secs),
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match args.config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()
        .expect("an HTTP client");
    let admin = Api::new(http, &args.url, &args.admin_token);
    if let Some(clients) = args.event_streams {
        let config = streams::StreamsConfig {
            clients: usize::try_from(clients).unwrap_or(usize::MAX),
            rate: if config.rate > 0.0 { config.rate } else { 20.0 },
            phase: Duration::from_secs(args.phase_secs),
        };
        return print(&args, streams::run(&admin, config).await);
    }
    print(&args, run(&admin, config).await)
}

/// Prints the report as asked; the exit status says whether the run held.
fn print(args: &Args, outcome: Result<impl Outcome, Failed>) -> ExitCode {
    let report = match outcome {
        Ok(report) => report,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report")
        );
    } else if let Some(label) = &args.markdown {
        println!("{}", report.markdown_row(label));
    } else {
        print!("{}", report.text());
    }
    if report.holds() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One run: connect the runners, block the queue if asked, queue the tasks, work until
/// every task completed (or the deadline), stop, check.
async fn run(admin: &Api, config: FleetConfig) -> Result<Report, Failed> {
    let (stop, stopped) = watch::channel(false);
    let holder = match config.blocked {
        0 => None,
        blocked => Some(fleet::block_queue(admin, blocked, stopped.clone()).await?),
    };
    let mut runners = Vec::with_capacity(config.runners);
    for n in 0..config.runners {
        runners.push(admin.connect_runner(&format!("load: runner {n}")).await?);
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let metrics = Arc::new(Metrics::new());
    let start = Instant::now();
    if config.rate <= 0.0 {
        fleet::produce(
            admin.clone(),
            config.clone(),
            ledger.clone(),
            metrics.clone(),
            start,
        )
        .await;
    }
    let mut fleet = JoinSet::new();
    for runner in runners {
        fleet.spawn(fleet::run_runner(
            runner,
            config.clone(),
            ledger.clone(),
            metrics.clone(),
            stopped.clone(),
        ));
    }
    let producing = (config.rate > 0.0).then(|| {
        tokio::spawn(fleet::produce(
            admin.clone(),
            config.clone(),
            ledger.clone(),
            metrics.clone(),
            start,
        ))
    });
    let deadline = start + config.deadline;
    while metrics.completions() < config.tasks && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(producing) = producing {
        producing.abort();
    }
    let _ = stop.send(true);
    while fleet.join_next().await.is_some() {}
    if let Some(holder) = holder {
        let _ = holder.await;
    }
    let end = metrics.last_completion().unwrap_or_else(Instant::now);
    let seconds = end.saturating_duration_since(start).as_secs_f64();
    let ledger = Arc::try_unwrap(ledger)
        .map(|ledger| ledger.into_inner().unwrap())
        .unwrap_or_else(|shared| std::mem::take(&mut *shared.lock().unwrap()));
    let mut latencies = metrics.latencies();
    latencies.push(Latency::of_durations(
        "enqueue → claim",
        ledger.enqueued.iter().filter_map(|(id, queued)| {
            let claimed = ledger.first_claimed.get(id)?;
            Some(claimed.saturating_duration_since(*queued))
        }),
    ));
    let checks = check(admin, &ledger).await?;
    Ok(Report {
        scenario: format!("{:?}", config.scenario).to_lowercase(),
        runners: config.runners,
        slots: config.slots,
        tasks: config.tasks,
        blocked: config.blocked,
        rate: config.rate,
        cycles_per_second: metrics.completions() as f64 / seconds.max(f64::EPSILON),
        seconds,
        latencies,
        errors: metrics.errors(),
        checks,
    })
}

/// Reads every task back through the API: the run's tasks must all be there, COMPLETED,
/// in their first attempt, with one accepted completion each.
async fn check(admin: &Api, ledger: &Ledger) -> Result<Checks, Failed> {
    let ours: HashSet<TaskId> = ledger.enqueued.keys().copied().collect();
    let mut checks = Checks::default();
    let mut seen = HashSet::new();
    let mut offset = 0;
    loop {
        let (page, total) = admin.tasks_page(offset, 100).await?;
        offset += page.len() as u64;
        for task in page.into_iter().filter(|task| ours.contains(&task.id)) {
            seen.insert(task.id);
            checks.tasks += 1;
            if task.status == TaskStatus::Completed {
                checks.completed += 1;
            } else {
                checks.lost += 1;
            }
            let accepted = ledger.completions.get(&task.id).copied().unwrap_or(0);
            if task.attempt > 1 || accepted > 1 {
                checks.done_twice += 1;
            }
        }
        if offset >= total {
            break;
        }
    }
    checks.lost += (ours.len() - seen.len()) as u64;
    Ok(checks)
}
