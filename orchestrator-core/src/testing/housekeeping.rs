//! What the supervisor relies on: inactive runners, stalled and blocked tasks, named
//! leases, retention, and commit notifications.

use std::sync::Arc;
use std::time::Duration;

use super::claims::futures_agents;
use super::helpers::*;
use crate::change::{self, AgentAction};
use crate::coordination::{ClaimRequest, RetentionPolicy};
use crate::model::{
    ExceptionType, LogQuery, LogType, NewAgentLog, NewRunnerSession, NewTask, RunnerIdentity,
    RunnerSessionStatus, TaskStatus,
};
use crate::store::Store;

/// Runner sessions go inactive when unseen; tasks stall when their agent goes quiet (unless
/// a human paused it); a
/// queued task whose dependency failed is reported as blocked.
pub async fn quiet_runners_stalled_and_blocked_tasks_are_found(store: Arc<dyn Store>) {
    let seen = store
        .create_runner_session(
            NewRunnerSession {
                name: "busy".into(),
                working_dir: "/w".into(),
                token_hash: "h1".into(),
                runner: RunnerIdentity::default(),
            },
            at(0),
        )
        .await
        .unwrap();
    let quiet = store
        .create_runner_session(
            NewRunnerSession {
                name: "quiet".into(),
                working_dir: "/w".into(),
                token_hash: "h2".into(),
                runner: RunnerIdentity::default(),
            },
            at(0),
        )
        .await
        .unwrap();
    store
        .apply_runner_session_event(
            seen.id,
            crate::state::runner_session::RunnerSessionEvent::Seen,
            at(500_000),
        )
        .await
        .unwrap();
    let marked = store
        .mark_inactive_runners(at(300_000), at(600_000))
        .await
        .unwrap();
    assert_eq!(marked.iter().map(|s| s.id).collect::<Vec<_>>(), [quiet.id]);
    assert_eq!(
        store.get_runner_session(quiet.id).await.unwrap().status,
        RunnerSessionStatus::Inactive
    );
    assert!(
        store
            .mark_inactive_runners(at(300_000), at(600_001))
            .await
            .unwrap()
            .is_empty()
    );

    let agents = futures_agents(&store, 2).await;
    let working = new_task(&store, "working", at(0)).await;
    let silent = new_task(&store, "silent", at(1)).await;
    let claims = store
        .claim(
            ClaimRequest {
                agents: agents.clone(),
                runner_session_id: None,
                task_id: None,
                lease_ttl: Duration::from_secs(600),
            },
            at(10_000),
        )
        .await
        .unwrap();
    assert_eq!(claims.len(), 2);
    store
        .append_logs(
            vec![NewAgentLog {
                agent_id: claims[0].agent_id,
                task_id: Some(working.id),
                log_type: LogType::Thinking,
                content: "still going".into(),
                metadata: None,
            }],
            at(200_000),
        )
        .await
        .unwrap();
    let stalled = store.stalled_tasks(at(100_000), at(250_000)).await.unwrap();
    assert_eq!(
        stalled.iter().map(|t| t.id).collect::<Vec<_>>(),
        [silent.id]
    );
    // A human paused the silent one: holding still is not stalling.
    store
        .apply_agent_action(claims[1].agent_id, AgentAction::Pause, at(250_000))
        .await
        .unwrap();
    assert!(
        store
            .stalled_tasks(at(100_000), at(250_001))
            .await
            .unwrap()
            .is_empty(),
        "a paused agent is not reported as stalled"
    );
    store
        .apply_agent_action(claims[1].agent_id, AgentAction::Resume, at(250_002))
        .await
        .unwrap();
    assert!(
        store
            .stalled_tasks(at(100_000), at(250_003))
            .await
            .unwrap()
            .is_empty(),
        "resuming is activity: an agent is not stalled the moment it resumes"
    );

    let (_, lease) = (claims[1].task.clone(), claims[1].lease);
    store
        .apply_task_action(silent.id, fail("gave up"), Some(lease), at(260_000))
        .await
        .unwrap();
    let mut waiting = NewTask::new("waiting", "after silent");
    waiting.depends_on = vec![silent.id];
    let waiting = store.create_task(waiting, at(270_000)).await.unwrap().value;
    let mut chained = NewTask::new("chained", "after waiting");
    chained.depends_on = vec![waiting.id];
    let chained = store.create_task(chained, at(280_000)).await.unwrap().value;
    let blocked = store.blocked_tasks(10).await.unwrap();
    let found: Vec<_> = blocked
        .iter()
        .map(|(t, by, status)| (t.id, *by, *status))
        .collect();
    assert_eq!(
        found,
        [
            (waiting.id, silent.id, TaskStatus::Failed),
            (chained.id, silent.id, TaskStatus::Failed),
        ],
        "a task waiting through a queued one for a failed task is blocked too"
    );
    let report = change::blocked_exception(
        &blocked[0].0,
        silent.id,
        TaskStatus::Failed,
        Some(&silent.title),
    );
    assert_eq!(report.exception_type, ExceptionType::DependencyFailed);
    assert!(
        report
            .description
            .as_deref()
            .is_some_and(|d| d.contains(&silent.id.to_string()) && d.contains(&silent.title)),
        "the report names the dependency: {report:?}"
    );
    let raised = store.raise_exception(report, at(290_000)).await.unwrap();
    assert_eq!(raised.exception_type, ExceptionType::DependencyFailed);
    let next = store.blocked_tasks(1).await.unwrap();
    assert_eq!(
        next.iter().map(|b| b.0.id).collect::<Vec<_>>(),
        [chained.id],
        "a reported task gives way to the next"
    );
    let indirect = change::blocked_exception(&next[0].0, silent.id, TaskStatus::Failed, None);
    assert!(
        indirect
            .description
            .is_some_and(|d| d.contains("through the queued tasks")),
        "the report says the failed task is not a direct dependency"
    );
}

/// A named lease belongs to one holder until it expires; its holder may renew it.
pub async fn named_leases_take_turns(store: Arc<dyn Store>) {
    let ttl = Duration::from_secs(30);
    assert!(
        store
            .try_acquire_lease("supervisor", "replica-a", ttl, at(0))
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_acquire_lease("supervisor", "replica-b", ttl, at(1_000))
            .await
            .unwrap()
    );
    assert!(
        store
            .try_acquire_lease("supervisor", "replica-a", ttl, at(20_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_acquire_lease("supervisor", "replica-b", ttl, at(49_999))
            .await
            .unwrap()
    );
    assert!(
        store
            .try_acquire_lease("supervisor", "replica-b", ttl, at(50_000))
            .await
            .unwrap()
    );
    assert!(
        store
            .try_acquire_lease("other", "replica-a", ttl, at(50_000))
            .await
            .unwrap()
    );
}

/// Retention deletes old and surplus history and never reuses sequence numbers.
pub async fn retention_prunes_logs_and_events(store: Arc<dyn Store>) {
    let agent = new_agent(&store, at(0)).await;
    for day in 0..4 {
        store
            .append_logs(
                vec![
                    NewAgentLog {
                        agent_id: agent.id,
                        task_id: None,
                        log_type: LogType::Info,
                        content: format!("day {day}"),
                        metadata: None,
                    };
                    3
                ],
                at(day * 86_400_000),
            )
            .await
            .unwrap();
    }
    let before = last_seq(&store).await;
    let policy = RetentionPolicy {
        log_max_age: Duration::from_secs(2 * 86_400),
        log_max_count: 5,
        event_max_age: Duration::from_secs(86_400),
        event_max_count: 1_000,
    };
    let report = store.prune(&policy, at(3 * 86_400_000 + 1)).await.unwrap();
    assert_eq!(
        report.logs_deleted, 7,
        "two days aged out, then the count cap"
    );
    let kept = store
        .list_logs(&LogQuery::new(agent.id, 100))
        .await
        .unwrap();
    assert_eq!(kept.total_count, 5);
    assert!(kept.logs.iter().all(|l| l.created_at >= at(2 * 86_400_000)));
    assert!(report.events_deleted >= 3);
    let remaining = store.events_since(0, 1_000).await.unwrap();
    assert!(
        remaining
            .iter()
            .all(|e| e.created_at >= at(2 * 86_400_000 + 1))
    );
    new_task(&store, "after pruning", at(4 * 86_400_000)).await;
    assert!(
        last_seq(&store).await > before,
        "sequence numbers keep growing"
    );

    let newest = last_seq(&store).await;
    let a_year = Duration::from_secs(365 * 86_400);
    let newest_only = RetentionPolicy {
        log_max_age: a_year,
        log_max_count: 100,
        event_max_age: a_year,
        event_max_count: 1,
    };
    let report = store
        .prune(&newest_only, at(4 * 86_400_000 + 1))
        .await
        .unwrap();
    assert!(report.events_deleted >= 1, "events beyond the count cap go");
    let remaining: Vec<_> = store
        .events_since(0, 1_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(remaining, [newest], "the newest event is the one kept");
}

/// Subscribers learn of every commit without polling.
pub async fn subscribers_wake_on_commits(store: Arc<dyn Store>) {
    let mut watcher = store.subscribe();
    let start = *watcher.borrow_and_update();
    let waiter = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(10), watcher.changed())
            .await
            .expect("woken within 10 s")
            .expect("sender alive");
        *watcher.borrow()
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    new_task(&store, "wake up", at(0)).await;
    let seen = waiter.await.unwrap();
    assert!(seen > start);
    assert!(
        last_seq(&store).await > 0,
        "the commit's event is readable once woken"
    );
}
