//! The exception state machine.
//!
//! OPEN → ACKNOWLEDGED → RESOLVED, or DISMISSED along the way. RESOLVED is final (409 on
//! any change). An acknowledged or dismissed exception can be reopened, and a dismissed
//! one cannot be "acknowledged" backwards.

use super::state_machine;
use crate::model::ExceptionStatus;

wire_enum!(
    /// What can happen to an exception.
    ExceptionEvent, "event" {
        /// Someone is on it (OPEN → ACKNOWLEDGED).
        Acknowledge = "acknowledge",
        /// Dealt with (OPEN, ACKNOWLEDGED or DISMISSED → RESOLVED).
        Resolve = "resolve",
        /// Not worth acting on (OPEN or ACKNOWLEDGED → DISMISSED).
        Dismiss = "dismiss",
        /// Needs a human again (ACKNOWLEDGED or DISMISSED → OPEN).
        Reopen = "reopen",
    }
);

impl ExceptionEvent {
    /// The event that moves an exception to `target`, the status a PATCH asks for.
    pub fn toward(target: ExceptionStatus) -> Self {
        match target {
            ExceptionStatus::Open => Self::Reopen,
            ExceptionStatus::Acknowledged => Self::Acknowledge,
            ExceptionStatus::Resolved => Self::Resolve,
            ExceptionStatus::Dismissed => Self::Dismiss,
        }
    }
}

fn accepts(state: ExceptionStatus, event: ExceptionEvent) -> Option<ExceptionStatus> {
    use ExceptionEvent as E;
    use ExceptionStatus as S;
    match (state, event) {
        (S::Open, E::Acknowledge) => Some(S::Acknowledged),
        (S::Open | S::Acknowledged | S::Dismissed, E::Resolve) => Some(S::Resolved),
        (S::Open | S::Acknowledged, E::Dismiss) => Some(S::Dismissed),
        (S::Acknowledged | S::Dismissed, E::Reopen) => Some(S::Open),
        _ => None,
    }
}

state_machine!(
    ExceptionMachine,
    "exception",
    ExceptionStatus,
    ExceptionEvent,
    initial = ExceptionStatus::Open,
    accepts = accepts
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::properties::{Edge, check_machine};
    use ExceptionEvent as E;
    use ExceptionStatus as S;

    const EDGES: &[Edge<ExceptionStatus, ExceptionEvent>] = &[
        (S::Open, E::Acknowledge, S::Acknowledged),
        (S::Open, E::Resolve, S::Resolved),
        (S::Open, E::Dismiss, S::Dismissed),
        (S::Acknowledged, E::Resolve, S::Resolved),
        (S::Acknowledged, E::Dismiss, S::Dismissed),
        (S::Acknowledged, E::Reopen, S::Open),
        (S::Dismissed, E::Resolve, S::Resolved),
        (S::Dismissed, E::Reopen, S::Open),
    ];

    check_machine!(ExceptionMachine, EDGES, terminal = [S::Resolved]);

    #[test]
    fn toward_maps_each_target_to_the_event_reaching_it() {
        for target in ExceptionStatus::ALL {
            let event = ExceptionEvent::toward(*target);
            assert!(
                ExceptionStatus::ALL
                    .iter()
                    .any(|from| transition(*from, event) == Ok(*target)),
                "{target:?}"
            );
        }
    }
}
