//! Shared set-up for the benchmarks: stores to measure, and the claim-complete cycle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_core::attempts::{AttemptCompletion, complete_attempt};
use orchestrator_core::change::TaskAction;
use orchestrator_core::coordination::{Claim, ClaimRequest};
use orchestrator_core::model::{NewAgent, NewTask, NewVerificationResult, Usage};
use orchestrator_core::retry::RetryPolicy;
use orchestrator_core::{Clock, Store, SystemClock};
use orchestrator_store::scratch::ScratchSchema;
use orchestrator_store::{ClockSource, SqliteStore};

/// A store to measure, with what it needs cleaned up.
#[derive(Debug)]
pub struct BenchStore {
    pub name: &'static str,
    pub store: Arc<dyn Store>,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    /// The directory of a SQLite file, removed when dropped.
    TempDir {
        _dir: tempfile::TempDir,
    },
    Schema(Box<ScratchSchema>),
}

impl BenchStore {
    /// Removes what the store left behind (a PostgreSQL schema).
    pub async fn cleanup(self) {
        if let Cleanup::Schema(schema) = self.cleanup {
            drop(self.store);
            schema.drop_schema().await;
        }
    }
}

/// SQLite in a temporary file.
pub async fn sqlite() -> BenchStore {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("bench.db"))
        .await
        .expect("SQLite store");
    BenchStore {
        name: "sqlite",
        store: Arc::new(store),
        cleanup: Cleanup::TempDir { _dir: dir },
    }
}

/// PostgreSQL in a scratch schema of `ORCHESTRATOR_TEST_DATABASE_URL`, if it is set.
pub async fn postgres() -> Option<BenchStore> {
    let schema = ScratchSchema::from_env("benchmarks").await?;
    let store = schema.open(ClockSource::Database).await;
    Some(BenchStore {
        name: "postgres",
        store: Arc::new(store),
        cleanup: Cleanup::Schema(Box::new(schema)),
    })
}

/// Queues `count` tasks (untimed set-up for a measurement).
pub async fn queue(store: &Arc<dyn Store>, count: u64) {
    let clock = SystemClock;
    let mut left = count;
    while left > 0 {
        let batch = left.min(50);
        let tasks = (0..batch)
            .map(|i| NewTask::new(format!("bench {i}"), "d"))
            .collect();
        store.create_tasks(tasks, clock.now()).await.expect("queue");
        left -= batch;
    }
}

/// How a cycle completes its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The store's bare action: the attempt closed, the slot and the locks released, the
    /// events appended.
    StoreAction,
    /// What a runner sends (`attempts::complete_attempt`): the same with a closing log
    /// entry and a passed verification result, in the same transaction.
    Runner,
}

impl Completion {
    async fn complete(self, store: &dyn Store, claim: Claim, policy: &RetryPolicy) {
        let now = SystemClock.now();
        match self {
            Self::StoreAction => {
                let complete = TaskAction::Complete {
                    commit_sha: None,
                    usage: Usage::default(),
                };
                store
                    .apply_task_action(claim.task.id, complete, Some(claim.lease), now)
                    .await
                    .expect("complete");
            }
            Self::Runner => {
                let report = AttemptCompletion {
                    success: true,
                    cancelled: false,
                    returned: false,
                    lock_conflict: false,
                    summary: Some("done".into()),
                    error: None,
                    commit_sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
                    usage: Usage::default(),
                    backend: None,
                    model: None,
                    diff_stats: None,
                    changes: None,
                    verification: Some(passed_verification()),
                };
                complete_attempt(store, policy, claim.agent_id, claim.lease, report, now)
                    .await
                    .expect("complete");
            }
        }
    }
}

fn passed_verification() -> NewVerificationResult {
    NewVerificationResult {
        passed: true,
        confidence_score: 0.9,
        syntax_passed: Some(true),
        types_passed: Some(true),
        lint_passed: Some(true),
        tests_passed: Some(true),
        tests_total: Some(12),
        tests_failed: Some(0),
        semantic_score: None,
        semantic_explanation: None,
        failures: Vec::new(),
        recommendations: Vec::new(),
        unverified: false,
        stages: Vec::new(),
    }
}

/// Runs `cycles` claim-then-complete cycles spread over `runners` concurrent runners,
/// each with `slots` agent slots that it fills with one batch claim, and returns the time
/// they took.
pub async fn claim_complete_cycles(
    store: &Arc<dyn Store>,
    cycles: u64,
    runners: u64,
    slots: usize,
    completion: Completion,
) -> Duration {
    let clock = SystemClock;
    let mut fleets = Vec::new();
    for _ in 0..runners {
        let mut agents = Vec::with_capacity(slots);
        for _ in 0..slots {
            agents.push(
                store
                    .create_agent(NewAgent::default(), clock.now())
                    .await
                    .expect("agent")
                    .id,
            );
        }
        fleets.push(agents);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (index, agents) in fleets.into_iter().enumerate() {
        let share = cycles / runners + u64::from((index as u64) < cycles % runners);
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let policy = RetryPolicy::default();
            let mut done = 0;
            while done < share {
                let wanted = usize::try_from(share - done)
                    .unwrap_or(usize::MAX)
                    .min(agents.len());
                let request = ClaimRequest {
                    agents: agents[..wanted].to_vec(),
                    runner_session_id: None,
                    task_id: None,
                    lease_ttl: Duration::from_secs(300),
                };
                let claims = store.claim(request, clock.now()).await.expect("claim");
                if claims.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                for claim in claims {
                    completion.complete(&*store, claim, &policy).await;
                    done += 1;
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("runner");
    }
    started.elapsed()
}
