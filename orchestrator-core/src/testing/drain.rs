//! Many runners draining one queue at once: the heaviest test of claims and locks.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::helpers::overlapping_locks;
use crate::change::TaskAction;
use crate::coordination::ClaimRequest;
use crate::error::Error;
use crate::ids::{AgentId, TaskId};
use crate::lock::LockQuery;
use crate::model::{NewAgent, NewTask, TaskQuery, TaskStatus, Usage};
use crate::store::Store;
use crate::time::{Clock, SystemClock, Timestamp};

/// What a drain run saw.
#[derive(Debug, Default)]
pub struct DrainReport {
    pub claims: u64,
    pub errors: Vec<String>,
    pub double_claims: u64,
    pub overlapping_grants: u64,
}

fn files_hint(index: usize) -> Vec<String> {
    // A mix of directory and file locks over a handful of modules, so that claims
    // contend: module directories, files inside them, and tasks that touch nothing.
    let module = index % 16;
    match index % 5 {
        0 => vec![format!("src/module_{module}/")],
        1 | 2 => vec![format!("src/module_{module}/file_{}.rs", index % 7)],
        3 => vec![
            format!("src/module_{module}/file_{}.rs", index % 3),
            format!("tests/module_{}.rs", (module + 1) % 16),
        ],
        _ => Vec::new(),
    }
}

/// Queues `tasks` tasks, then lets `claimers` concurrent runners (one agent slot each)
/// claim and complete them until the queue is empty. After every grant the store's live
/// locks are checked (no two of different runners overlap), and every task must be
/// claimed exactly once.
pub async fn drain_queue(store: Arc<dyn Store>, tasks: usize, claimers: usize) -> DrainReport {
    let clock = SystemClock;
    let mut ids = HashSet::new();
    let specs: Vec<NewTask> = (0..tasks)
        .map(|i| {
            let mut new = NewTask::new(format!("drain {i}"), "d");
            new.priority = (i % 4) as u8;
            new.files_hint = files_hint(i);
            new
        })
        .collect();
    for chunk in specs.chunks(50) {
        for task in store
            .create_tasks(chunk.to_vec(), clock.now())
            .await
            .expect("queue")
        {
            ids.insert(task.id);
        }
    }

    let claimed: Arc<Mutex<HashSet<TaskId>>> = Arc::default();
    let report: Arc<Mutex<DrainReport>> = Arc::default();
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(tasks));
    let mut runners = Vec::new();
    for _ in 0..claimers {
        let agent = store
            .create_agent(NewAgent::default(), clock.now())
            .await
            .expect("agent")
            .id;
        let (store, claimed, report, remaining) = (
            store.clone(),
            claimed.clone(),
            report.clone(),
            remaining.clone(),
        );
        runners.push(tokio::spawn(async move {
            run_claimer(store, agent, claimed, report, remaining).await;
        }));
    }
    for runner in runners {
        runner.await.expect("a runner panicked");
    }
    let mut report = std::mem::take(&mut *report.lock().expect("report"));
    if claimed.lock().expect("claimed").len() != tasks {
        report.errors.push("not every task was claimed".into());
    }
    report
}

async fn run_claimer(
    store: Arc<dyn Store>,
    agent: AgentId,
    claimed: Arc<Mutex<HashSet<TaskId>>>,
    report: Arc<Mutex<DrainReport>>,
    remaining: Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    let clock = SystemClock;
    let mut wake = store.subscribe();
    let record = |message: String| report.lock().expect("report").errors.push(message);
    while remaining.load(Ordering::SeqCst) > 0 {
        let request = ClaimRequest {
            agents: vec![agent],
            runner_session_id: None,
            task_id: None,
            lease_ttl: Duration::from_secs(300),
        };
        let claim = match store.claim(request, clock.now()).await {
            Ok(mut claims) if !claims.is_empty() => claims.remove(0),
            Ok(_) => {
                wake.borrow_and_update();
                let _ = tokio::time::timeout(Duration::from_millis(50), wake.changed()).await;
                continue;
            }
            Err(err) => {
                record(format!("claim: {err}"));
                return;
            }
        };
        {
            let mut report = report.lock().expect("report");
            report.claims += 1;
            if !claimed.lock().expect("claimed").insert(claim.task.id) {
                report.double_claims += 1;
            }
        }
        if !claim.locks.is_empty() {
            // The grant's locks are live until the completion below releases them.
            let query = LockQuery {
                limit: 200,
                ..LockQuery::default()
            };
            match store.list_locks(&query, clock.now()).await {
                Ok(live) => {
                    if let Some(overlap) = overlapping_locks(&live) {
                        let mut report = report.lock().expect("report");
                        report.overlapping_grants += 1;
                        report.errors.push(overlap);
                    }
                }
                Err(err) => {
                    record(format!("list locks: {err}"));
                    return;
                }
            }
        }
        let done = TaskAction::Complete {
            commit_sha: None,
            usage: Usage::default(),
        };
        match store
            .apply_task_action(claim.task.id, done, Some(claim.lease), clock.now())
            .await
        {
            Ok(_) => {
                remaining.fetch_sub(1, Ordering::SeqCst);
            }
            Err(err) => {
                record(format!("complete: {err}"));
                return;
            }
        }
    }
}

/// Checks the final state after a drain: everything COMPLETED, no lock left.
pub async fn check_drained(store: &Arc<dyn Store>, tasks: usize) -> Result<(), String> {
    let mut completed = 0;
    let mut offset = 0;
    loop {
        let page = store
            .list_tasks(&TaskQuery {
                limit: 100,
                offset,
                ..TaskQuery::default()
            })
            .await
            .map_err(|e: Error| e.to_string())?;
        completed += page
            .items
            .iter()
            .filter(|t| t.status == TaskStatus::Completed && t.attempt == 1)
            .count();
        if !page.has_more() {
            break;
        }
        offset += 100;
    }
    if completed != tasks {
        return Err(format!(
            "{completed} of {tasks} tasks completed on their first attempt"
        ));
    }
    let now = Timestamp::from(chrono::Utc::now());
    let locks = store
        .list_locks(
            &LockQuery {
                include_expired: true,
                ..LockQuery::default()
            },
            now,
        )
        .await
        .map_err(|e| e.to_string())?;
    if !locks.is_empty() {
        return Err(format!("{} locks left behind", locks.len()));
    }
    Ok(())
}
