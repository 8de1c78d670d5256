//! The runner session state machine.
//!
//! ACTIVE while the runner calls in; INACTIVE when the supervisor has not seen it for a
//! while (it becomes ACTIVE again on its next call); REVOKED — final — when an
//! administrator or `disconnect` withdraws its token.

use super::state_machine;
use crate::model::RunnerSessionStatus;

wire_enum!(
    /// What can happen to a runner session.
    RunnerSessionEvent, "event" {
        /// The runner called in (ACTIVE or INACTIVE → ACTIVE).
        Seen = "seen",
        /// Not seen for too long (ACTIVE → INACTIVE).
        MarkInactive = "mark_inactive",
        /// Withdraw its token (→ REVOKED).
        Revoke = "revoke",
    }
);

fn accepts(state: RunnerSessionStatus, event: RunnerSessionEvent) -> Option<RunnerSessionStatus> {
    use RunnerSessionEvent as E;
    use RunnerSessionStatus as S;
    match (state, event) {
        (S::Active | S::Inactive, E::Seen) => Some(S::Active),
        (S::Active, E::MarkInactive) => Some(S::Inactive),
        (S::Active | S::Inactive, E::Revoke) => Some(S::Revoked),
        _ => None,
    }
}

state_machine!(
    RunnerSessionMachine,
    "runnerSession",
    RunnerSessionStatus,
    RunnerSessionEvent,
    initial = RunnerSessionStatus::Active,
    accepts = accepts
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::properties::{Edge, check_machine};
    use RunnerSessionEvent as E;
    use RunnerSessionStatus as S;

    const EDGES: &[Edge<RunnerSessionStatus, RunnerSessionEvent>] = &[
        (S::Active, E::Seen, S::Active),
        (S::Active, E::MarkInactive, S::Inactive),
        (S::Active, E::Revoke, S::Revoked),
        (S::Inactive, E::Seen, S::Active),
        (S::Inactive, E::Revoke, S::Revoked),
    ];

    check_machine!(RunnerSessionMachine, EDGES, terminal = [S::Revoked]);
}
