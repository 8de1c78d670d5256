//! The fleet: runner sessions claiming by long poll and working their attempts
//! (heartbeat, a log batch, completion), producers queuing tasks at a fixed rate, and a
//! holder keeping a lock on the paths of blocked tasks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orchestrator_core::ids::TaskId;
use orchestrator_core::model::NewTask;
use orchestrator_core::protocol::{AttemptRef, ClaimedTask};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::{Api, Failed};
use crate::report::Metrics;

/// Which paths a task names in its files hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// Every task its own directory: parallel work.
    Disjoint,
    /// Every task also names `README.md`: serial work.
    Shared,
    /// One task in ten also names `README.md`.
    Mix,
    /// Disjoint work behind 10,000 queued tasks that a held lock blocks.
    Deep,
}

/// The path every task of a shared scenario names.
const SHARED_PATH: &str = "README.md";
/// The directory the lock holder keeps, under which blocked tasks name their files.
const BLOCKED_DIR: &str = "blocked/";

impl Scenario {
    /// The files hint of the `n`th task.
    pub(crate) fn files_hint(self, n: u64) -> Vec<String> {
        let own = format!("src/m{n}/");
        let shared = match self {
            Self::Shared => true,
            Self::Mix => n.is_multiple_of(10),
            Self::Disjoint | Self::Deep => false,
        };
        if shared {
            vec![SHARED_PATH.to_owned(), own]
        } else {
            vec![own]
        }
    }
}

/// How the fleet runs.
#[derive(Debug, Clone)]
pub(crate) struct FleetConfig {
    pub(crate) scenario: Scenario,
    pub(crate) runners: usize,
    pub(crate) slots: usize,
    pub(crate) tasks: u64,
    /// Tasks queued per second while runners work; 0 queues every task before they start.
    pub(crate) rate: f64,
    pub(crate) blocked: u64,
    pub(crate) claim_wait: Duration,
    pub(crate) log_entries: usize,
    pub(crate) work: Duration,
    pub(crate) deadline: Duration,
}

/// What the tasks of the run are, and when each was (meant to be) queued.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Intended enqueue instant of each task of the run.
    pub(crate) enqueued: HashMap<TaskId, Instant>,
    /// Completions the server accepted, per task.
    pub(crate) completions: HashMap<TaskId, u32>,
    /// Claims that handed out the task, per task.
    pub(crate) claims: HashMap<TaskId, u32>,
    /// When a claim first handed out the task.
    pub(crate) first_claimed: HashMap<TaskId, Instant>,
}

/// Queues the blocked tasks behind a lock that a runner of its own holds (it claims the
/// first task, naming the blocked directory, and keeps it with heartbeats); returns the
/// holder's task so it can be let go at the end.
pub(crate) async fn block_queue(
    admin: &Api,
    blocked: u64,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, Failed> {
    let holder = admin.connect_runner("load: lock holder").await?;
    let mut hold = NewTask::new("load: hold the blocked directory", "held during the run");
    hold.files_hint = vec![BLOCKED_DIR.to_owned()];
    hold.priority = 0;
    admin.create_task(&hold).await.0?;
    let claimed = holder.claim(1, Duration::from_secs(5)).await.0?;
    let Some(held) = claimed.claims.into_iter().next() else {
        return Err(Failed {
            status: 0,
            detail: "the lock holder got no task".into(),
        });
    };
    let mut batch = Vec::new();
    for n in 0..blocked {
        let mut task = NewTask::new(format!("load: blocked {n}"), "waits for the held lock");
        task.files_hint = vec![format!("{BLOCKED_DIR}f{n}.rs")];
        batch.push(task);
        if batch.len() == 50 {
            admin.create_tasks(&batch).await.0?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        admin.create_tasks(&batch).await.0?;
    }
    let attempt = AttemptRef::from(&held);
    Ok(tokio::spawn(async move {
        let mut stop = stop;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(10)) => {
                    let _ = holder.heartbeat(attempt).await;
                }
                _ = stop.changed() => return,
            }
        }
    }))
}

/// Queues the run's tasks: all at once before the start (rate 0), or open loop at the
/// rate, each at its own scheduled instant whatever the earlier ones take.
pub(crate) async fn produce(
    admin: Api,
    config: FleetConfig,
    ledger: Arc<Mutex<Ledger>>,
    metrics: Arc<Metrics>,
    start: Instant,
) {
    let task = |n: u64| {
        let mut task = NewTask::new(format!("load: task {n}"), "queued by the load tool");
        task.files_hint = config.scenario.files_hint(n);
        task
    };
    if config.rate <= 0.0 {
        let mut n = 0;
        while n < config.tasks {
            let batch: Vec<NewTask> = (n..(n + 50).min(config.tasks)).map(task).collect();
            n += batch.len() as u64;
            let queued = Instant::now();
            match admin.create_tasks(&batch).await {
                (Ok(tasks), took) => {
                    metrics.record("enqueue", took);
                    let mut ledger = ledger.lock().unwrap();
                    for created in tasks {
                        ledger.enqueued.insert(created.id, queued);
                    }
                }
                (Err(failed), _) => metrics.error("enqueue", &failed),
            }
        }
        return;
    }
    let every = Duration::from_secs_f64(1.0 / config.rate);
    let mut sending = JoinSet::new();
    for n in 0..config.tasks {
        let scheduled = start + every.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (admin, ledger, metrics, new) =
            (admin.clone(), ledger.clone(), metrics.clone(), task(n));
        sending.spawn(async move {
            match admin.create_task(&new).await {
                (Ok(created), took) => {
                    metrics.record("enqueue", took);
                    ledger
                        .lock()
                        .unwrap()
                        .enqueued
                        .insert(created.id, scheduled);
                }
                (Err(failed), _) => metrics.error("enqueue", &failed),
            }
        });
    }
    while sending.join_next().await.is_some() {}
}

/// One runner session: claims into its free slots by long poll and works each attempt,
/// until `stop`.
pub(crate) async fn run_runner(
    runner: Api,
    config: FleetConfig,
    ledger: Arc<Mutex<Ledger>>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(config.slots));
    let mut attempts = JoinSet::new();
    while !*stop.borrow() {
        // Wait for a free slot, then ask for as many tasks as there are free slots.
        drop(slots.acquire().await.expect("never closed"));
        let available = slots.available_permits();
        let sent = Instant::now();
        let (claimed, took) = runner.claim(available, config.claim_wait).await;
        match claimed {
            Ok(claimed) if claimed.claims.is_empty() => metrics.record("claim (none)", took),
            Ok(claimed) => {
                metrics.record("claim", took);
                metrics.claimed(sent);
                let now = Instant::now();
                for task in claimed.claims {
                    note_claim(&ledger, &task, now);
                    let permit = slots.clone().acquire_owned().await.expect("never closed");
                    let (runner, metrics, ledger, work) = (
                        runner.clone(),
                        metrics.clone(),
                        ledger.clone(),
                        (config.log_entries, config.work),
                    );
                    attempts.spawn(async move {
                        work_attempt(&runner, &metrics, &ledger, &task, work).await;
                        drop(permit);
                    });
                }
            }
            Err(failed) => {
                metrics.error("claim", &failed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while attempts.try_join_next().is_some() {}
    }
    while attempts.join_next().await.is_some() {}
}

fn note_claim(ledger: &Mutex<Ledger>, task: &ClaimedTask, now: Instant) {
    let mut ledger = ledger.lock().unwrap();
    *ledger.claims.entry(task.task.id).or_default() += 1;
    ledger.first_claimed.entry(task.task.id).or_insert(now);
}

/// Heartbeat (in progress), a log batch, the work's time, and the completion.
async fn work_attempt(
    runner: &Api,
    metrics: &Metrics,
    ledger: &Mutex<Ledger>,
    task: &ClaimedTask,
    (log_entries, work): (usize, Duration),
) {
    let attempt = AttemptRef::from(task);
    match runner.heartbeat(attempt).await {
        (Ok(_), took) => metrics.record("heartbeat", took),
        (Err(failed), _) => metrics.error("heartbeat", &failed),
    }
    if log_entries > 0 {
        match runner.logs(attempt, log_entries).await {
            (Ok(_), took) => metrics.record("log batch", took),
            (Err(failed), _) => metrics.error("log batch", &failed),
        }
    }
    if !work.is_zero() {
        tokio::time::sleep(work).await;
    }
    match runner.complete(attempt).await {
        (Ok(_), took) => {
            metrics.record("completion", took);
            metrics.completed();
            *ledger
                .lock()
                .unwrap()
                .completions
                .entry(task.task.id)
                .or_default() += 1;
        }
        (Err(failed), _) => metrics.error("completion", &failed),
    }
}
