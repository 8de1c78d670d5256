//! The [`Supervisor`]: the housekeeping that keeps the queue moving when runners vanish.
//!
//! Each pass reaps attempts whose lease ran out (the task goes back to the queue, the slot
//! to STUCK, its locks are released, an AGENT_STUCK exception is raised), sweeps expired
//! locks, marks runners that stopped calling in as inactive, reports stalled and blocked
//! tasks, and prunes old history. Passes are excluded across server processes through a
//! named lease in the database, so any number of replicas can run the loop; the cron
//! endpoint triggers the same pass.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::change;
use crate::coordination::{PruneReport, RetentionPolicy};
use crate::error::Result;
use crate::store::{Store, StoreExt};
use crate::time::Clock;

/// How the supervisor works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// This process's name in the lease (unique per replica).
    pub holder: String,
    /// Time between passes of [`Supervisor::run`].
    pub interval: Duration,
    /// A runner session unseen this long becomes INACTIVE.
    pub runner_inactive_after: Duration,
    /// A running agent silent this long (while its lease is kept alive) is reported.
    pub stall_after: Duration,
    /// How much history to keep.
    pub retention: RetentionPolicy,
}

impl SupervisorConfig {
    /// Defaults for a process called `holder`: a pass every 30 s, runners inactive after
    /// 5 minutes, stalls reported after 10 minutes.
    pub fn new(holder: impl Into<String>) -> Self {
        Self {
            holder: holder.into(),
            interval: Duration::from_secs(30),
            runner_inactive_after: Duration::from_secs(5 * 60),
            stall_after: Duration::from_secs(10 * 60),
            retention: RetentionPolicy::default(),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SupervisorReport {
    /// False when another pass was running (in this process or another) and this one did
    /// nothing.
    pub ran: bool,
    pub expired_attempts: usize,
    pub swept_locks: u64,
    pub inactive_runners: usize,
    pub stalled_tasks: usize,
    pub blocked_tasks: usize,
    pub pruned_logs: u64,
    pub pruned_events: u64,
}

/// The lease name passes take turns on.
const LEASE_NAME: &str = "supervisor";
/// Attempts reaped per batch; a pass repeats batches until none is left.
const EXPIRY_BATCH: u32 = 200;
/// Blocked tasks reported per pass.
const BLOCKED_BATCH: u32 = 200;

/// Runs supervisor passes over a store.
#[derive(Debug, Clone)]
pub struct Supervisor {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: SupervisorConfig,
    /// Held while a pass runs in this process (the lease is this process's as a whole, so
    /// it cannot tell the interval's pass from the cron endpoint's).
    running: Arc<tokio::sync::Mutex<()>>,
}

impl Supervisor {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: SupervisorConfig) -> Self {
        Self {
            store,
            clock,
            config,
            running: Arc::default(),
        }
    }

    /// How this supervisor works.
    pub fn config(&self) -> &SupervisorConfig {
        &self.config
    }

    /// Takes the supervisor lease for this process, or extends it; false while another
    /// process holds it.
    async fn hold_lease(&self) -> Result<bool> {
        // The lease outlives a pass's step comfortably but frees itself if this process
        // dies.
        let lease = self.config.interval.max(Duration::from_secs(30)) * 2;
        self.store
            .try_acquire_lease(LEASE_NAME, &self.config.holder, lease, self.clock.now())
            .await
    }

    /// One pass, unless another one is running, in this process or another (then `ran`
    /// is false). The lease is extended before each step; a pass that loses it (a step
    /// outlasted the lease and another process took over) stops where it is.
    pub async fn run_once(&self) -> Result<SupervisorReport> {
        let Ok(_running) = self.running.try_lock() else {
            return Ok(SupervisorReport::default());
        };
        let now = self.clock.now();
        if !self.hold_lease().await? {
            return Ok(SupervisorReport::default());
        }
        let mut report = SupervisorReport {
            ran: true,
            ..SupervisorReport::default()
        };
        loop {
            let reaped = self.store.expire_leases(now, EXPIRY_BATCH).await?;
            report.expired_attempts += reaped.len();
            if reaped.len() < EXPIRY_BATCH as usize {
                break;
            }
        }
        if !self.hold_lease().await? {
            return Ok(report);
        }
        report.swept_locks = self.store.sweep_expired_locks(now).await?;
        report.inactive_runners = self
            .store
            .mark_inactive_runners(now.sub(self.config.runner_inactive_after), now)
            .await?
            .len();
        if !self.hold_lease().await? {
            return Ok(report);
        }
        let quiet_since = now.sub(self.config.stall_after);
        for task in self.store.stalled_tasks(quiet_since, now).await? {
            self.store
                .raise_exception(change::stalled_exception(&task, quiet_since), now)
                .await?;
            report.stalled_tasks += 1;
        }
        for (task, dependency, status) in self.store.blocked_tasks(BLOCKED_BATCH).await? {
            let title = self.store.get_task(dependency).await.ok().map(|t| t.title);
            let blocked = change::blocked_exception(&task, dependency, status, title.as_deref());
            self.store.raise_exception(blocked, now).await?;
            report.blocked_tasks += 1;
        }
        if !self.hold_lease().await? {
            return Ok(report);
        }
        let PruneReport {
            logs_deleted,
            events_deleted,
        } = self.store.prune(&self.config.retention, now).await?;
        report.pruned_logs = logs_deleted;
        report.pruned_events = events_deleted;
        Ok(report)
    }

    /// Runs a pass every interval until `shutdown` completes. A failing pass is logged and
    /// the loop goes on.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticker.tick() => match self.run_once().await {
                    Ok(report) if report.ran => tracing::debug!(?report, "supervisor pass"),
                    Ok(_) => tracing::trace!("another pass is running, here or in another process"),
                    Err(err) => tracing::warn!(error = %err, "supervisor pass failed"),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryStore;
    use crate::coordination::ClaimRequest;
    use crate::model::{ExceptionQuery, ExceptionType, NewAgent, NewTask, TaskStatus};
    use crate::store::StoreExt;
    use crate::time::{ManualClock, Timestamp};

    fn setup() -> (Arc<dyn Store>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000).unwrap()));
        (Arc::new(InMemoryStore::new()), clock)
    }

    #[tokio::test]
    async fn a_pass_reaps_expired_attempts_and_reports_blocked_tasks() {
        let (store, clock) = setup();
        let task = store
            .create_task(NewTask::new("abandoned", "d"), clock.now())
            .await
            .unwrap()
            .value;
        let agent = store
            .create_agent(NewAgent::default(), clock.now())
            .await
            .unwrap();
        store
            .claim(
                ClaimRequest {
                    agents: vec![agent.id],
                    runner_session_id: None,
                    task_id: None,
                    lease_ttl: Duration::from_secs(60),
                },
                clock.now(),
            )
            .await
            .unwrap();
        let mut blocked = NewTask::new("after cancelled", "d");
        let cancelled = store
            .create_task(NewTask::new("dropped", "d"), clock.now())
            .await
            .unwrap()
            .value;
        store
            .apply_task_action(cancelled.id, change::TaskAction::Cancel, None, clock.now())
            .await
            .unwrap();
        blocked.depends_on = vec![cancelled.id];
        store.create_task(blocked, clock.now()).await.unwrap();

        let supervisor = Supervisor::new(store.clone(), clock.clone(), SupervisorConfig::new("a"));
        let early = supervisor.run_once().await.unwrap();
        assert!(early.ran);
        assert_eq!((early.expired_attempts, early.blocked_tasks), (0, 1));
        clock.advance(Duration::from_secs(61));
        let report = supervisor.run_once().await.unwrap();
        assert_eq!(report.expired_attempts, 1);
        assert_eq!(
            report.blocked_tasks, 0,
            "the blocked task was reported already"
        );
        assert_eq!(
            store.get_task(task.id).await.unwrap().status,
            TaskStatus::Queued
        );
        let stuck = store
            .list_exceptions(&ExceptionQuery {
                exception_type: Some(ExceptionType::AgentStuck),
                ..ExceptionQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(stuck.total_count, 1);
        let blocked_reports = store
            .list_exceptions(&ExceptionQuery {
                exception_type: Some(ExceptionType::DependencyFailed),
                ..ExceptionQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(
            blocked_reports.total_count, 1,
            "reported once, however many passes"
        );
        assert_eq!(blocked_reports.items[0].occurrences, 1);
        assert!(
            blocked_reports.items[0]
                .description
                .as_deref()
                .is_some_and(|d| d.contains("(\"dropped\")")),
            "the dependency is named: {:?}",
            blocked_reports.items[0]
        );
    }

    #[tokio::test]
    async fn only_one_process_runs_a_pass_at_a_time() {
        let (store, clock) = setup();
        let first = Supervisor::new(store.clone(), clock.clone(), SupervisorConfig::new("a"));
        let second = Supervisor::new(store.clone(), clock.clone(), SupervisorConfig::new("b"));
        assert!(first.run_once().await.unwrap().ran);
        assert!(!second.run_once().await.unwrap().ran);
        clock.advance(Duration::from_secs(61));
        assert!(
            second.run_once().await.unwrap().ran,
            "the lease frees itself"
        );
        assert!(!first.run_once().await.unwrap().ran);
    }

    #[tokio::test]
    async fn a_pass_running_in_this_process_is_not_started_twice() {
        let (store, clock) = setup();
        let supervisor = Supervisor::new(store, clock, SupervisorConfig::new("a"));
        let interval_pass = supervisor.running.clone();
        let running = interval_pass.try_lock().unwrap();
        assert!(
            !supervisor.clone().run_once().await.unwrap().ran,
            "the cron endpoint's pass waits for the next turn"
        );
        drop(running);
        assert!(supervisor.run_once().await.unwrap().ran);
    }
}
