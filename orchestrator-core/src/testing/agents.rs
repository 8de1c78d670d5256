//! Agent slots.

use std::sync::Arc;

use super::helpers::*;
use crate::change::AgentAction;
use crate::ids::RunnerSessionId;
use crate::model::{
    AgentQuery, AgentSort, AgentStatus, NewAgent, NewRunnerSession, RunnerIdentity, SortOrder,
};
use crate::store::Store;
use crate::store::StoreExt;

/// Slots are listed newest first with filters, and move through their state machine.
pub async fn agent_slots_are_listed_and_transitioned(store: Arc<dyn Store>) {
    assert_not_found(
        store
            .create_agent(
                NewAgent {
                    runner_session_id: Some(RunnerSessionId::new()),
                    ..NewAgent::default()
                },
                at(0),
            )
            .await,
    );
    assert_invalid_input(
        store
            .create_agent(
                NewAgent {
                    name: Some("n".repeat(201)),
                    ..NewAgent::default()
                },
                at(0),
            )
            .await,
        "name",
    );
    let session = store
        .create_runner_session(
            NewRunnerSession {
                name: "laptop".into(),
                working_dir: "/work".into(),
                token_hash: "hash-a".into(),
                runner: RunnerIdentity::default(),
            },
            at(0),
        )
        .await
        .unwrap();
    let mut slots = Vec::new();
    for slot in 0..3 {
        slots.push(
            store
                .create_agent(
                    NewAgent {
                        name: Some(format!("laptop #{slot}")),
                        runner_session_id: Some(session.id),
                        slot: Some(slot),
                        is_local_runner: true,
                    },
                    at(i64::from(slot)),
                )
                .await
                .unwrap(),
        );
    }
    let loose = new_agent(&store, at(10)).await;
    assert_eq!(slots[1].status, AgentStatus::Idle);
    assert_eq!(store.get_agent(slots[1].id).await.unwrap(), slots[1]);

    let all = store.list_agents(&AgentQuery::default()).await.unwrap();
    assert_eq!(all.total_count, 4);
    assert_eq!(all.items[0].id, loose.id, "newest first");
    let of_session = store
        .list_agents(&AgentQuery {
            runner_session_id: Some(session.id),
            limit: 2,
            ..AgentQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(of_session.total_count, 3);
    assert_eq!(
        of_session.items.iter().map(|a| a.slot).collect::<Vec<_>>(),
        [Some(2), Some(1)]
    );
    assert!(of_session.has_more());
    let short: String = loose.id.to_string().chars().take(8).collect();
    let by_prefix = store
        .list_agents(&AgentQuery {
            id_prefix: Some(short.parse().unwrap()),
            ..AgentQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_prefix.items, std::slice::from_ref(&loose));
    assert_invalid_input(
        store
            .list_agents(&AgentQuery {
                limit: 0,
                ..AgentQuery::default()
            })
            .await,
        "limit",
    );

    let task = new_task(&store, "work", at(0)).await;
    assign(&store, &task, slots[0].id, at(20)).await;
    let paused = store
        .apply_agent_action(slots[0].id, AgentAction::Pause, at(21))
        .await
        .unwrap();
    assert_eq!(paused.status, AgentStatus::Paused);
    assert_eq!(
        paused.current_task_id,
        Some(task.id),
        "a paused slot keeps its task"
    );
    assert_invalid_transition(
        store
            .apply_agent_action(slots[0].id, AgentAction::Retire, at(22))
            .await,
        "PAUSED",
        "retire",
    );
    let resumed = store
        .apply_agent_action(slots[0].id, AgentAction::Resume, at(23))
        .await
        .unwrap();
    assert_eq!(resumed.status, AgentStatus::Working);
    let working = store
        .list_agents(&AgentQuery {
            status: Some(AgentStatus::Working),
            ..AgentQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(working.total_count, 1);

    let retired = store
        .apply_agent_action(slots[1].id, AgentAction::Retire, at(24))
        .await
        .unwrap();
    assert_eq!(retired.status, AgentStatus::Completed);
    assert_eq!(retired.completed_at, Some(at(24)));
    for action in [AgentAction::Resume, AgentAction::Recover, AgentAction::Fail] {
        assert!(
            store
                .apply_agent_action(slots[1].id, action, at(25))
                .await
                .is_err(),
            "{action:?} left a final state"
        );
    }
    assert_invalid_transition(
        store
            .apply_agent_action(slots[2].id, AgentAction::Recover, at(26))
            .await,
        "IDLE",
        "recover",
    );
    let broken = store
        .apply_agent_action(slots[2].id, AgentAction::Fail, at(27))
        .await
        .unwrap();
    assert_eq!(broken.status, AgentStatus::Failed);
}

/// Agents are found by a piece of their name, id or current task's title, whatever the
/// case of its ASCII letters, and sorted by creation, name (unnamed last) or status.
pub async fn agents_are_searched_and_sorted(store: Arc<dyn Store>) {
    let named = |name: Option<&str>, now| {
        let store = store.clone();
        let name = name.map(str::to_owned);
        async move {
            store
                .create_agent(
                    NewAgent {
                        name,
                        ..NewAgent::default()
                    },
                    at(now),
                )
                .await
                .unwrap()
        }
    };
    let bravo = named(Some("Bravo builder"), 0).await;
    let unnamed = named(None, 1).await;
    let alpha = named(Some("alpha reviewer"), 2).await;
    let task = new_task(&store, "Port the Parser", at(3)).await;
    assign(&store, &task, unnamed.id, at(4)).await;
    let list = |query: AgentQuery| {
        let store = store.clone();
        async move {
            let page = store.list_agents(&query).await.unwrap();
            (
                page.total_count,
                page.items.into_iter().map(|a| a.id).collect::<Vec<_>>(),
            )
        }
    };
    let search = |text: &str| AgentQuery {
        search: Some(text.to_owned()),
        ..AgentQuery::default()
    };
    assert_eq!(list(search("BUILDER")).await, (1, vec![bravo.id]));
    assert_eq!(
        list(search("  parser ")).await,
        (1, vec![unnamed.id]),
        "by task"
    );
    let piece: String = alpha.id.to_string().chars().skip(9).take(6).collect();
    assert_eq!(list(search(&piece)).await, (1, vec![alpha.id]), "by id");
    assert_eq!(list(search("nobody")).await, (0, vec![]));
    assert_eq!(
        list(AgentQuery {
            status: Some(AgentStatus::Idle),
            ..search("r")
        })
        .await,
        (2, vec![alpha.id, bravo.id]),
        "search and filter together, newest first"
    );

    let sorted = |sort_by: AgentSort, sort_order: SortOrder| AgentQuery {
        sort_by,
        sort_order,
        ..AgentQuery::default()
    };
    assert_eq!(
        list(sorted(AgentSort::CreatedAt, SortOrder::Asc)).await.1,
        [bravo.id, unnamed.id, alpha.id]
    );
    assert_eq!(
        list(sorted(AgentSort::Name, SortOrder::Asc)).await.1,
        [bravo.id, alpha.id, unnamed.id],
        "byte order: capitals first; unnamed last"
    );
    assert_eq!(
        list(sorted(AgentSort::Name, SortOrder::Desc)).await.1,
        [alpha.id, bravo.id, unnamed.id],
        "unnamed last either way"
    );
    assert_eq!(
        list(sorted(AgentSort::Status, SortOrder::Desc)).await.1,
        [unnamed.id, alpha.id, bravo.id],
        "WORKING before IDLE, then newest first"
    );
    assert_invalid_input(store.list_agents(&search(&"x".repeat(201))).await, "search");
}

/// What each agent's attempts cost is summed per agent; an agent without attempts costs
/// nothing.
pub async fn agent_costs_sum_their_attempts(store: Arc<dyn Store>) {
    let first = new_agent(&store, at(0)).await;
    let second = new_agent(&store, at(0)).await;
    let idle = new_agent(&store, at(0)).await;
    for (index, agent) in [first.id, first.id, second.id].into_iter().enumerate() {
        let offset = index as i64 * 100;
        let task = new_task(&store, "costly", at(offset)).await;
        let (_, lease) = assign(&store, &task, agent, at(offset + 10)).await;
        store
            .apply_task_action(task.id, complete(), Some(lease), at(offset + 20))
            .await
            .unwrap();
    }
    let costs = store
        .agent_costs(&[first.id, second.id, idle.id])
        .await
        .unwrap();
    let cost_of = |agent| {
        costs
            .iter()
            .find(|(id, _)| *id == agent)
            .map_or(0.0, |(_, cost)| *cost)
    };
    assert!((cost_of(first.id) - 0.025).abs() < 1e-9, "{costs:?}");
    assert!((cost_of(second.id) - 0.0125).abs() < 1e-9, "{costs:?}");
    assert_eq!(cost_of(idle.id), 0.0);
}
