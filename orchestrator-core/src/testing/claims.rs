//! Claims, heartbeats and lease expiry.

use std::sync::Arc;
use std::time::Duration;

use super::helpers::*;
use crate::change::{AgentAction, LeaseRef, TaskAction};
use crate::coordination::{ClaimRequest, ControlSignal};
use crate::ids::{AgentId, LeaseToken};
use crate::lock::{LockQuery, LockRequest};
use crate::model::{
    AgentStatus, EventKind, ExceptionQuery, ExceptionType, LockMode, NewTask, TaskStatus,
};
use crate::store::Store;
use crate::store::StoreExt;

pub(super) fn request(agents: &[AgentId]) -> ClaimRequest {
    ClaimRequest {
        agents: agents.to_vec(),
        runner_session_id: None,
        task_id: None,
        lease_ttl: LEASE,
    }
}

async fn task_with(
    store: &Arc<dyn Store>,
    title: &str,
    priority: u8,
    files: &[&str],
    now_ms: i64,
) -> crate::model::Task {
    let mut new = NewTask::new(title, "d");
    new.priority = priority;
    new.files_hint = files.iter().map(|f| (*f).to_owned()).collect();
    store.create_task(new, at(now_ms)).await.unwrap().value
}

/// The tasks of a batch share their creation instant, and are claimed in the order given
/// (first in, first out within a priority).
pub async fn a_batch_is_claimed_in_the_order_given(store: Arc<dyn Store>) {
    let batch: Vec<NewTask> = (0..12)
        .map(|n| {
            let mut new = NewTask::new(format!("batch {n}"), "d");
            new.priority = 1;
            new
        })
        .collect();
    store.create_tasks(batch, at(0)).await.unwrap();
    let slots = futures_agents(&store, 12).await;
    let claimed = store.claim(request(&slots), at(1)).await.unwrap();
    let titles: Vec<String> = claimed.iter().map(|c| c.task.title.clone()).collect();
    let given: Vec<String> = (0..12).map(|n| format!("batch {n}")).collect();
    assert_eq!(titles, given, "first in, first out within a priority");
}

/// A batch claim fills slots in queue order with leases and locks; an empty queue gives
/// nothing, not an error.
pub async fn claims_fill_slots_in_queue_order(store: Arc<dyn Store>) {
    let low = task_with(&store, "low", 3, &[], 0).await;
    let urgent = task_with(&store, "urgent", 0, &["src/auth/"], 1).await;
    task_with(&store, "normal old", 2, &[], 2).await;
    let normal_new = task_with(&store, "normal new", 2, &[], 3).await;
    let high = task_with(&store, "high", 1, &["src\\lib.rs"], 4).await;
    let agents: Vec<AgentId> = futures_agents(&store, 3).await;

    let claims = store.claim(request(&agents), at(10)).await.unwrap();
    let titles: Vec<_> = claims.iter().map(|c| c.task.title.as_str()).collect();
    assert_eq!(titles, ["urgent", "high", "normal old"]);
    for (claim, agent) in claims.iter().zip(&agents) {
        assert_eq!(claim.agent_id, *agent);
        assert_eq!(claim.task.status, TaskStatus::Assigned);
        assert_eq!(claim.task.assigned_agent_id, Some(*agent));
        assert_eq!(claim.lease.task_id, claim.task.id);
        assert_eq!(claim.lease.attempt, 1);
        let slot = store.get_agent(*agent).await.unwrap();
        assert_eq!(slot.status, AgentStatus::Working);
    }
    assert_eq!(claims[0].locks.len(), 1);
    assert_eq!(claims[0].locks[0].file_path, "src/auth/");
    assert_eq!(claims[1].locks[0].file_path, "src/lib.rs");
    assert!(claims[1].locks[0].fencing_token > claims[0].locks[0].fencing_token);
    assert_eq!(claims[0].locks[0].expires_at, at(10).add(LEASE));
    let held = store
        .list_locks(&LockQuery::default(), at(11))
        .await
        .unwrap();
    assert_eq!(held.len(), 2);

    let more = futures_agents(&store, 3).await;
    let rest = store.claim(request(&more), at(20)).await.unwrap();
    let ids: Vec<_> = rest.iter().map(|c| c.task.id).collect();
    assert_eq!(
        ids,
        [normal_new.id, low.id],
        "two tasks left for three slots"
    );
    let idle = futures_agents(&store, 1).await;
    assert!(
        store
            .claim(request(&idle), at(30))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.get_agent(idle[0]).await.unwrap().status,
        AgentStatus::Idle
    );
    let _ = (urgent, high);
}

pub(crate) async fn futures_agents(store: &Arc<dyn Store>, count: usize) -> Vec<AgentId> {
    let mut agents = Vec::with_capacity(count);
    for _ in 0..count {
        agents.push(new_agent(store, at(0)).await.id);
    }
    agents
}

/// Tasks that wait for a delay, a dependency or a locked file are passed over, and
/// become claimable once the obstacle is gone.
pub async fn claims_pass_over_tasks_that_are_not_ready(store: Arc<dyn Store>) {
    let mut delayed = NewTask::new("delayed", "d");
    delayed.priority = 0;
    delayed.not_before = Some(at(1_000));
    let delayed = store.create_task(delayed, at(0)).await.unwrap().value;
    let first = task_with(&store, "first", 1, &["src/"], 1).await;
    let mut after = NewTask::new("after first", "d");
    after.priority = 0;
    after.depends_on = vec![first.id];
    let after = store.create_task(after, at(2)).await.unwrap().value;
    let overlapping = task_with(&store, "overlapping", 1, &["src/a/b.rs"], 3).await;
    let free = task_with(&store, "free", 2, &["docs/"], 4).await;

    let agents = futures_agents(&store, 3).await;
    let claims = store.claim(request(&agents), at(10)).await.unwrap();
    let ids: Vec<_> = claims.iter().map(|c| c.task.id).collect();
    assert_eq!(
        ids,
        [first.id, free.id],
        "delayed, dependent and locked tasks wait"
    );

    let (lease, agent) = (claims[0].lease, claims[0].agent_id);
    store
        .apply_task_action(first.id, complete(), Some(lease), at(20))
        .await
        .unwrap();
    let locks = store
        .list_locks(
            &LockQuery {
                agent_id: Some(agent),
                ..LockQuery::default()
            },
            at(21),
        )
        .await
        .unwrap();
    assert!(locks.is_empty(), "completion releases the task's locks");
    let next = store
        .claim(request(&[agent, agents[2]]), at(30))
        .await
        .unwrap();
    let ids: Vec<_> = next.iter().map(|c| c.task.id).collect();
    assert_eq!(ids, [after.id, overlapping.id]);
    let spare = futures_agents(&store, 1).await;
    let delayed_claim = store.claim(request(&spare), at(1_000)).await.unwrap();
    assert_eq!(delayed_claim[0].task.id, delayed.id);
}

/// The store knows when time alone next makes work claimable: a delayed task comes due
/// (cancelled and undelayed tasks do not count) or a lock runs out.
pub async fn the_next_time_work_comes_due_is_known(store: Arc<dyn Store>) {
    assert_eq!(store.work_due_in(at(0)).await.unwrap(), None);
    for (title, due) in [("later", 20_000), ("sooner", 10_000), ("dropped", 5_000)] {
        let mut new = NewTask::new(title, "d");
        new.not_before = Some(at(due));
        let task = store.create_task(new, at(0)).await.unwrap().value;
        if title == "dropped" {
            store
                .apply_task_action(task.id, TaskAction::Cancel, None, at(0))
                .await
                .unwrap();
        }
    }
    new_task(&store, "now", at(0)).await;
    let due_in = |now| {
        let store = store.clone();
        async move { store.work_due_in(at(now)).await.unwrap() }
    };
    assert_eq!(due_in(1_000).await, Some(Duration::from_secs(9)));
    assert_eq!(due_in(15_000).await, Some(Duration::from_secs(5)));
    assert_eq!(due_in(20_000).await, None, "due is not waiting");

    let holder = futures_agents(&store, 1).await[0];
    let lock = LockRequest {
        holder,
        task_id: None,
        paths: vec!["src/".into()],
        mode: LockMode::Exclusive,
        ttl: Duration::from_secs(6),
    };
    store.acquire(lock, at(1_000)).await.unwrap();
    assert_eq!(
        due_in(2_000).await,
        Some(Duration::from_secs(5)),
        "the lock runs out before the next task comes due"
    );
    assert_eq!(
        due_in(7_000).await,
        Some(Duration::from_secs(3)),
        "a lock running out now is not waited for"
    );
    assert_eq!(
        due_in(8_000).await,
        Some(Duration::from_secs(2)),
        "a lock that ran out does not count"
    );
}

/// However many tasks wait behind a held lock at the head of the queue, and however many
/// paths they name, a claim finds the task behind them that can be had.
pub async fn claims_look_past_every_task_a_lock_holds_back(store: Arc<dyn Store>) {
    let holder = task_with(&store, "holder", 0, &["hot/"], 0).await;
    let agents = futures_agents(&store, 2).await;
    let held = store.claim(request(&agents[..1]), at(1)).await.unwrap();
    assert_eq!(held[0].task.id, holder.id);
    // 130 tasks of 200 paths each: looking up a round of them binds more values than a
    // database takes in one statement.
    let blocked: Vec<_> = (0..130)
        .map(|i| {
            let mut new = NewTask::new(format!("blocked {i}"), "d");
            new.priority = 1;
            new.files_hint = (0..200).map(|f| format!("hot/m{i}/d{f}/f.rs")).collect();
            new
        })
        .collect();
    for batch in blocked.chunks(crate::model::MAX_BATCH_SIZE) {
        store.create_tasks(batch.to_vec(), at(2)).await.unwrap();
    }
    let free = task_with(&store, "free", 1, &["cold/"], 3).await;

    let claims = store.claim(request(&agents[1..]), at(4)).await.unwrap();
    let ids: Vec<_> = claims.iter().map(|c| c.task.id).collect();
    assert_eq!(
        ids,
        [free.id],
        "the 130 tasks behind the lock on hot/ are passed over"
    );
}

/// A deep queue blocked both ways is passed over: tasks naming a path below a held lock
/// (`src/` held, `src/m7.rs` asked), and tasks naming a path that a held lock lies below
/// (`lib/deep/x.rs` held, `lib/` asked). An edit that moves a blocked task's files hint
/// out of the way makes it claimable; once the lock is let go, the blocked tasks come
/// back in queue order.
pub async fn claims_pass_over_deep_queues_blocked_either_way(store: Arc<dyn Store>) {
    let src = task_with(&store, "holds src/", 0, &["src/"], 0).await;
    let lib = task_with(&store, "holds lib/deep/x.rs", 0, &["lib/deep/x.rs"], 1).await;
    let agents = futures_agents(&store, 4).await;
    let held = store.claim(request(&agents[..2]), at(2)).await.unwrap();
    assert_eq!(
        held.iter().map(|c| c.task.id).collect::<Vec<_>>(),
        [src.id, lib.id]
    );
    let mut below = Vec::new();
    let mut above = Vec::new();
    for n in 0..150 {
        below.push(NewTask {
            priority: 1,
            files_hint: vec![format!("src/m{n}.rs")],
            ..NewTask::new(format!("below {n}"), "d")
        });
        above.push(NewTask {
            priority: 1,
            files_hint: vec!["lib/".to_owned(), format!("tests/t{n}.rs")],
            ..NewTask::new(format!("above {n}"), "d")
        });
    }
    let mut blocked = Vec::new();
    for batch in below.chunks(crate::model::MAX_BATCH_SIZE) {
        blocked.extend(store.create_tasks(batch.to_vec(), at(3)).await.unwrap());
    }
    for batch in above.chunks(crate::model::MAX_BATCH_SIZE) {
        store.create_tasks(batch.to_vec(), at(4)).await.unwrap();
    }
    let free = task_with(&store, "free", 2, &["docs/"], 5).await;

    let claims = store.claim(request(&agents[2..3]), at(6)).await.unwrap();
    assert_eq!(
        claims.iter().map(|c| c.task.id).collect::<Vec<_>>(),
        [free.id],
        "300 blocked tasks are passed over"
    );

    let moved = store
        .edit_task(
            blocked[7].id,
            crate::model::TaskEdit {
                files_hint: Some(vec!["other/".into()]),
                ..crate::model::TaskEdit::default()
            },
            at(7),
        )
        .await
        .unwrap();
    let claims = store.claim(request(&agents[3..4]), at(8)).await.unwrap();
    assert_eq!(
        claims.iter().map(|c| c.task.id).collect::<Vec<_>>(),
        [moved.id],
        "an edited files hint counts"
    );

    store
        .apply_task_action(src.id, TaskAction::Start, Some(held[0].lease), at(9))
        .await
        .unwrap();
    store
        .apply_task_action(
            src.id,
            TaskAction::Complete {
                commit_sha: None,
                usage: crate::model::Usage::default(),
            },
            Some(held[0].lease),
            at(10),
        )
        .await
        .unwrap();
    let first = blocked
        .iter()
        .filter(|task| task.id != moved.id)
        .map(|task| task.id)
        .min()
        .unwrap();
    let claims = store.claim(request(&agents[..1]), at(11)).await.unwrap();
    assert_eq!(
        claims.iter().map(|c| c.task.id).collect::<Vec<_>>(),
        [first],
        "with src/ free, its tasks come back in queue order"
    );
}

/// Claiming a named task is atomic too, and says precisely why it cannot happen.
pub async fn claiming_a_named_task_explains_refusals(store: Arc<dyn Store>) {
    let holder = task_with(&store, "holder", 2, &["src/"], 0).await;
    let wanting = task_with(&store, "wanting", 2, &["src/main.rs"], 1).await;
    let agents = futures_agents(&store, 3).await;
    let named = |task, agent| ClaimRequest {
        task_id: Some(task),
        ..request(&[agent])
    };
    let claimed = store
        .claim(named(holder.id, agents[0]), at(2))
        .await
        .unwrap();
    assert_eq!(claimed[0].task.id, holder.id);
    assert_conflict(store.claim(named(wanting.id, agents[1]), at(3)).await);
    assert_invalid_transition(
        store.claim(named(holder.id, agents[1]), at(4)).await,
        "ASSIGNED",
        "assign",
    );
    assert_invalid_transition(
        store.claim(named(wanting.id, agents[0]), at(5)).await,
        "WORKING",
        "assign",
    );
    assert_not_found(
        store
            .claim(named(crate::ids::TaskId::new(), agents[1]), at(6))
            .await,
    );
    assert_not_found(store.claim(request(&[AgentId::new()]), at(6)).await);

    assert_invalid_input(store.claim(request(&[]), at(7)).await, "max");
    let many: Vec<AgentId> = (0..33).map(|_| AgentId::new()).collect();
    assert_invalid_input(store.claim(request(&many), at(7)).await, "max");
    assert_invalid_input(
        store.claim(request(&[agents[1], agents[1]]), at(7)).await,
        "agents",
    );
    let two = ClaimRequest {
        task_id: Some(wanting.id),
        ..request(&[agents[1], agents[2]])
    };
    assert_invalid_input(store.claim(two, at(7)).await, "taskId");
    let short = ClaimRequest {
        lease_ttl: Duration::from_secs(1),
        ..request(&[agents[1]])
    };
    assert_invalid_input(store.claim(short, at(7)).await, "leaseTtl");
    assert_eq!(
        store.get_task(wanting.id).await.unwrap().status,
        TaskStatus::Queued
    );
}

/// Heartbeats extend the lease and the locks, and carry stop and pause to the runner; a
/// stale or expired lease is refused without side effects.
pub async fn heartbeats_extend_leases_and_carry_signals(store: Arc<dyn Store>) {
    let task = task_with(&store, "beating", 2, &["src/"], 0).await;
    let agents = futures_agents(&store, 1).await;
    let claim = store
        .claim(request(&agents), at(0))
        .await
        .unwrap()
        .remove(0);
    let lease = claim.lease;
    let before = last_seq(&store).await;
    let ack = store.heartbeat(lease, LEASE, at(30_000)).await.unwrap();
    assert_eq!(ack.signal, ControlSignal::Continue);
    assert_eq!(ack.lease_expires_at, at(30_000).add(LEASE));
    let recorded = store.events_since(before, 10).await.unwrap();
    assert_eq!(
        recorded.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::LeaseRenewed],
        "a renewal is recorded like any change"
    );
    assert_eq!(recorded[0].task_id, Some(task.id));
    assert_eq!(
        store.get_task(task.id).await.unwrap().lease_expires_at,
        Some(at(30_000).add(LEASE))
    );
    let attempts = store.list_attempts(task.id).await.unwrap();
    assert_eq!(attempts[0].lease_expires_at, at(30_000).add(LEASE));
    let locks = store
        .list_locks(&LockQuery::default(), at(30_000))
        .await
        .unwrap();
    assert_eq!(
        locks[0].expires_at,
        at(30_000).add(LEASE),
        "locks follow the lease"
    );

    store
        .apply_agent_action(agents[0], AgentAction::Pause, at(31_000))
        .await
        .unwrap();
    let paused = store.heartbeat(lease, LEASE, at(32_000)).await.unwrap();
    assert_eq!(paused.signal, ControlSignal::Pause);
    store
        .apply_agent_action(agents[0], AgentAction::Resume, at(33_000))
        .await
        .unwrap();
    store
        .apply_task_action(task.id, TaskAction::Cancel, None, at(34_000))
        .await
        .unwrap();
    let stop = store.heartbeat(lease, LEASE, at(35_000)).await.unwrap();
    assert_eq!(stop.signal, ControlSignal::Stop);

    let before = store.get_task(task.id).await.unwrap();
    let seq = last_seq(&store).await;
    let forged = LeaseRef {
        lease_token: LeaseToken::new(),
        ..lease
    };
    assert_conflict(store.heartbeat(forged, LEASE, at(36_000)).await);
    assert_conflict(store.heartbeat(lease, LEASE, at(35_000).add(LEASE)).await);
    assert_invalid_input(
        store
            .heartbeat(lease, Duration::from_secs(2), at(36_000))
            .await,
        "leaseTtl",
    );
    assert_eq!(store.get_task(task.id).await.unwrap(), before);
    assert_eq!(last_seq(&store).await, seq);
}

/// Expired leases send tasks back with their locks released and an AGENT_STUCK exception
/// raised once per task; late reports with the old lease change nothing.
pub async fn expired_leases_are_reaped_with_locks_and_exceptions(store: Arc<dyn Store>) {
    let task = task_with(&store, "reaped", 2, &["src/"], 0).await;
    let agents = futures_agents(&store, 2).await;
    let claim = store
        .claim(request(&agents[..1]), at(0))
        .await
        .unwrap()
        .remove(0);
    assert!(
        store
            .expire_leases(at(59_999), 100)
            .await
            .unwrap()
            .is_empty()
    );
    let reaped = store.expire_leases(at(60_000), 100).await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].status, TaskStatus::Queued);
    assert!(
        store
            .list_locks(
                &LockQuery {
                    include_expired: true,
                    ..LockQuery::default()
                },
                at(60_000)
            )
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.get_agent(agents[0]).await.unwrap().status,
        AgentStatus::Stuck
    );
    let stuck = store
        .list_exceptions(&ExceptionQuery {
            exception_type: Some(ExceptionType::AgentStuck),
            ..ExceptionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(stuck.total_count, 1);
    assert_eq!(stuck.items[0].task_id, Some(task.id));
    assert_eq!(stuck.items[0].agent_id, Some(agents[0]));

    let seq = last_seq(&store).await;
    assert_conflict(store.heartbeat(claim.lease, LEASE, at(60_001)).await);
    assert_conflict(
        store
            .apply_task_action(task.id, complete(), Some(claim.lease), at(60_001))
            .await,
    );
    assert_eq!(last_seq(&store).await, seq);

    let again = store
        .claim(request(&agents[1..]), at(61_000))
        .await
        .unwrap();
    assert_eq!(again[0].task.id, task.id);
    assert_eq!(again[0].task.attempt, 2);
    store.expire_leases(at(200_000), 100).await.unwrap();
    let stuck = store
        .list_exceptions(&ExceptionQuery {
            exception_type: Some(ExceptionType::AgentStuck),
            ..ExceptionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(stuck.total_count, 1, "one open exception per (type, task)");
    assert_eq!(stuck.items[0].occurrences, 2);
}
