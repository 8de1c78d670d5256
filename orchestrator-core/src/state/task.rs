//! The task state machine.
//!
//! ```text
//!             Assign            Start              BeginVerification
//!   QUEUED ─────────▶ ASSIGNED ───────▶ IN_PROGRESS ─────────────────▶ VERIFYING
//!     ▲  │               │ │                 │ │                          │ │
//!     │  │ Cancel        │ └── Complete ─────┼─┴──────── Complete ────────┘ │──▶ COMPLETED (final)
//!     │  ▼               └──── Fail ─────────┴────────── Fail ──────────────┴──▶ FAILED
//!     │ CANCELLED ◀── Cancel (acknowledged stop) ── any running state
//!     ├── Reopen ── CANCELLED
//!     ├── Retry ─── FAILED
//!     └── Requeue ─ any running state (lease lost, attempts left)
//! ```
//!
//! ASSIGNED means "claimed, lease running, the agent has not reported progress yet", and
//! VERIFYING means "the agent has finished and its change is being checked".
//! `RequestCancel` leaves a running task in its state and flags it, so that the runner is
//! told to stop at its next heartbeat.

use super::state_machine;
use crate::model::TaskStatus;

wire_enum!(
    /// What can happen to a task's status.
    TaskEvent, "event" {
        /// A runner claims it (QUEUED → ASSIGNED).
        Assign = "assign",
        /// The agent reports progress (ASSIGNED → IN_PROGRESS).
        Start = "start",
        /// The agent finished; verification begins (IN_PROGRESS → VERIFYING).
        BeginVerification = "begin_verification",
        /// The attempt succeeded (running → COMPLETED).
        Complete = "complete",
        /// The attempt failed (running → FAILED).
        Fail = "fail",
        /// The lease was lost with attempts left (running → QUEUED).
        Requeue = "requeue",
        /// Withdraw it (QUEUED, or running once the runner has stopped → CANCELLED).
        Cancel = "cancel",
        /// Ask the runner of a running task to stop (no status change).
        RequestCancel = "request_cancel",
        /// Put a failed task back in the queue (FAILED → QUEUED).
        Retry = "retry",
        /// Put a cancelled task back in the queue (CANCELLED → QUEUED).
        Reopen = "reopen",
    }
);

fn accepts(state: TaskStatus, event: TaskEvent) -> Option<TaskStatus> {
    use TaskEvent as E;
    use TaskStatus as S;
    match (state, event) {
        (S::Queued, E::Assign) => Some(S::Assigned),
        (S::Assigned, E::Start) => Some(S::InProgress),
        (S::InProgress, E::BeginVerification) => Some(S::Verifying),
        (S::Assigned | S::InProgress | S::Verifying, E::Complete) => Some(S::Completed),
        (S::Assigned | S::InProgress | S::Verifying, E::Fail) => Some(S::Failed),
        (S::Assigned | S::InProgress | S::Verifying, E::Requeue) => Some(S::Queued),
        (S::Queued | S::Assigned | S::InProgress | S::Verifying, E::Cancel) => Some(S::Cancelled),
        (running @ (S::Assigned | S::InProgress | S::Verifying), E::RequestCancel) => Some(running),
        (S::Failed, E::Retry) => Some(S::Queued),
        (S::Cancelled, E::Reopen) => Some(S::Queued),
        _ => None,
    }
}

state_machine!(
    TaskMachine,
    "task",
    TaskStatus,
    TaskEvent,
    initial = TaskStatus::Queued,
    accepts = accepts
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::properties::{Edge, check_machine};
    use TaskEvent as E;
    use TaskStatus as S;

    /// The transition table written out edge by edge, independently of `accepts`.
    const EDGES: &[Edge<TaskStatus, TaskEvent>] = &[
        (S::Queued, E::Assign, S::Assigned),
        (S::Queued, E::Cancel, S::Cancelled),
        (S::Assigned, E::Start, S::InProgress),
        (S::Assigned, E::Complete, S::Completed),
        (S::Assigned, E::Fail, S::Failed),
        (S::Assigned, E::Requeue, S::Queued),
        (S::Assigned, E::Cancel, S::Cancelled),
        (S::Assigned, E::RequestCancel, S::Assigned),
        (S::InProgress, E::BeginVerification, S::Verifying),
        (S::InProgress, E::Complete, S::Completed),
        (S::InProgress, E::Fail, S::Failed),
        (S::InProgress, E::Requeue, S::Queued),
        (S::InProgress, E::Cancel, S::Cancelled),
        (S::InProgress, E::RequestCancel, S::InProgress),
        (S::Verifying, E::Complete, S::Completed),
        (S::Verifying, E::Fail, S::Failed),
        (S::Verifying, E::Requeue, S::Queued),
        (S::Verifying, E::Cancel, S::Cancelled),
        (S::Verifying, E::RequestCancel, S::Verifying),
        (S::Failed, E::Retry, S::Queued),
        (S::Cancelled, E::Reopen, S::Queued),
    ];

    check_machine!(TaskMachine, EDGES, terminal = [S::Completed]);

    #[test]
    fn patch_cancels_queued_and_requeues_failed_or_cancelled_tasks() {
        assert_eq!(transition(S::Queued, E::Cancel), Ok(S::Cancelled));
        assert_eq!(transition(S::Failed, E::Retry), Ok(S::Queued));
        assert_eq!(transition(S::Cancelled, E::Reopen), Ok(S::Queued));
    }

    #[test]
    fn a_rejection_names_state_event_and_alternatives() {
        let err = transition(S::Completed, E::Retry).unwrap_err();
        assert_eq!(err.from, "COMPLETED");
        assert_eq!(err.to.as_deref(), Some("QUEUED"));
        assert_eq!(err.event, "retry");
        assert_eq!(
            err.to_string(),
            "invalid task transition: cannot retry from COMPLETED to QUEUED (it is a final state)"
        );
        let err = transition(S::Queued, E::RequestCancel).unwrap_err();
        assert_eq!(
            err.to, None,
            "a request to cancel keeps whatever state it is in"
        );
        let err = transition(S::Failed, E::Cancel).unwrap_err();
        assert_eq!(err.allowed, vec!["retry".to_owned()]);
    }
}
