//! The exception inbox.

use std::sync::Arc;

use super::helpers::*;
use crate::change::ExceptionDecision;
use crate::model::{
    ExceptionQuery, ExceptionSeverity, ExceptionStatus, ExceptionType, NewException,
};
use crate::store::Store;

fn raised(kind: ExceptionType, severity: ExceptionSeverity, title: &str) -> NewException {
    NewException::new(kind, severity, title)
}

fn decision(status: ExceptionStatus) -> ExceptionDecision {
    ExceptionDecision {
        status,
        resolved_by: None,
        resolution_notes: None,
    }
}

/// The same condition on the same task is one exception counted twice; lists put the
/// most severe first across pages and filter by status (or all), severity and type.
pub async fn exceptions_deduplicate_and_sort_by_urgency(store: Arc<dyn Store>) {
    let task = new_task(&store, "t", at(0)).await;
    let agent = new_agent(&store, at(0)).await;
    let mut stuck = raised(
        ExceptionType::AgentStuck,
        ExceptionSeverity::Error,
        "Agent stuck",
    );
    stuck.task_id = Some(task.id);
    stuck.agent_id = Some(agent.id);
    stuck.description = Some("inactive for 10 minutes".into());
    let first = store.raise_exception(stuck.clone(), at(1)).await.unwrap();
    let again = store.raise_exception(stuck.clone(), at(2)).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.occurrences, 2);
    assert_eq!(again.last_occurred_at, at(2));
    assert_eq!(again.created_at, at(1));

    let severities = [
        ExceptionSeverity::Info,
        ExceptionSeverity::Critical,
        ExceptionSeverity::Warning,
        ExceptionSeverity::Critical,
    ];
    for (i, severity) in severities.into_iter().enumerate() {
        store
            .raise_exception(
                raised(ExceptionType::UnknownError, severity, &format!("e{i}")),
                at(10 + i as i64),
            )
            .await
            .unwrap();
    }
    let mut order = Vec::new();
    for offset in [0, 2, 4] {
        let page = store
            .list_exceptions(&ExceptionQuery {
                limit: 2,
                offset,
                ..ExceptionQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(page.total_count, 5);
        order.extend(page.items.into_iter().map(|e| e.title));
    }
    assert_eq!(order, ["e3", "e1", "Agent stuck", "e2", "e0"]);

    store
        .decide_exception(first.id, decision(ExceptionStatus::Resolved), at(30))
        .await
        .unwrap();
    let open = store
        .list_exceptions(&ExceptionQuery::default())
        .await
        .unwrap();
    assert_eq!(open.total_count, 4, "OPEN is the default filter");
    let all = store
        .list_exceptions(&ExceptionQuery {
            status: None,
            ..ExceptionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.total_count, 5);
    let critical = store
        .list_exceptions(&ExceptionQuery {
            severity: Some(ExceptionSeverity::Critical),
            ..ExceptionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(critical.total_count, 2);
    let of_type = store
        .list_exceptions(&ExceptionQuery {
            status: None,
            exception_type: Some(ExceptionType::AgentStuck),
            task_id: Some(task.id),
            agent_id: Some(agent.id),
            ..ExceptionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(of_type.items.len(), 1);
    assert_eq!(of_type.items[0].status, ExceptionStatus::Resolved);

    // Once resolved, the same condition opens a new exception.
    let fresh = store.raise_exception(stuck, at(40)).await.unwrap();
    assert_ne!(fresh.id, first.id);
    assert_eq!(fresh.occurrences, 1);
    assert_invalid_input(
        store
            .raise_exception(
                raised(ExceptionType::UnknownError, ExceptionSeverity::Info, ""),
                at(41),
            )
            .await,
        "title",
    );
    assert_invalid_input(
        store
            .list_exceptions(&ExceptionQuery {
                limit: 101,
                ..ExceptionQuery::default()
            })
            .await,
        "limit",
    );
}

/// Decisions follow the machine: RESOLVED is final, dismissed ones can be reopened, and
/// the free-text fields keep their length limits.
pub async fn exception_decisions_follow_the_state_machine(store: Arc<dyn Store>) {
    let exception = store
        .raise_exception(
            raised(
                ExceptionType::ConflictDetected,
                ExceptionSeverity::Info,
                "Lock force released",
            ),
            at(0),
        )
        .await
        .unwrap();
    let acknowledged = store
        .decide_exception(exception.id, decision(ExceptionStatus::Acknowledged), at(1))
        .await
        .unwrap();
    assert_eq!(acknowledged.status, ExceptionStatus::Acknowledged);
    assert_eq!(acknowledged.resolved_at, None);
    let dismissed = store
        .decide_exception(
            exception.id,
            ExceptionDecision {
                status: ExceptionStatus::Dismissed,
                resolved_by: Some("ana".into()),
                resolution_notes: Some("expected during the migration".into()),
            },
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(dismissed.resolved_by.as_deref(), Some("ana"));
    assert_invalid_transition(
        store
            .decide_exception(exception.id, decision(ExceptionStatus::Acknowledged), at(3))
            .await,
        "DISMISSED",
        "acknowledge",
    );
    let reopened = store
        .decide_exception(exception.id, decision(ExceptionStatus::Open), at(4))
        .await
        .unwrap();
    assert_eq!(reopened.status, ExceptionStatus::Open);
    assert_invalid_input(
        store
            .decide_exception(
                exception.id,
                ExceptionDecision {
                    status: ExceptionStatus::Resolved,
                    resolved_by: Some("x".repeat(256)),
                    resolution_notes: None,
                },
                at(5),
            )
            .await,
        "resolvedBy",
    );
    let resolved = store
        .decide_exception(
            exception.id,
            ExceptionDecision {
                status: ExceptionStatus::Resolved,
                resolved_by: None,
                resolution_notes: Some("n".repeat(5_000)),
            },
            at(6),
        )
        .await
        .unwrap();
    assert_eq!(resolved.resolved_at, Some(at(6)));
    assert_eq!(
        resolved.resolved_by.as_deref(),
        Some("ana"),
        "kept from before"
    );
    for status in ExceptionStatus::ALL {
        assert!(
            store
                .decide_exception(exception.id, decision(*status), at(7))
                .await
                .is_err(),
            "RESOLVED accepted {status}"
        );
    }
    assert_eq!(store.get_exception(exception.id).await.unwrap(), resolved);
}
