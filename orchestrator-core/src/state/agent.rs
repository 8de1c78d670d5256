//! The agent slot state machine.
//!
//! An agent is a reusable worker slot of a runner session: IDLE → WORKING on a claim,
//! back to IDLE when the attempt ends, whatever its outcome. PAUSED keeps the task and
//! its locks. STUCK means the attempt's lease ran out without a heartbeat; the slot may
//! `Recover` when its runner calls in again. COMPLETED (retired) and FAILED (broken) are
//! final, and only a slot that runs nothing can reach them, so no task is ever left bound
//! to a dead slot.

use super::state_machine;
use crate::model::AgentStatus;

wire_enum!(
    /// What can happen to an agent slot.
    AgentEvent, "event" {
        /// It takes a task (IDLE → WORKING).
        Assign = "assign",
        /// Its attempt ended (WORKING or PAUSED → IDLE).
        Release = "release",
        /// Pause the work (WORKING → PAUSED).
        Pause = "pause",
        /// Resume the work (PAUSED → WORKING).
        Resume = "resume",
        /// Its lease ran out (WORKING or PAUSED → STUCK).
        MarkStuck = "mark_stuck",
        /// Its runner called in again (STUCK → IDLE).
        Recover = "recover",
        /// Retire a slot that runs nothing (IDLE or STUCK → COMPLETED).
        Retire = "retire",
        /// The slot broke (IDLE or STUCK → FAILED).
        Fail = "fail",
    }
);

fn accepts(state: AgentStatus, event: AgentEvent) -> Option<AgentStatus> {
    use AgentEvent as E;
    use AgentStatus as S;
    match (state, event) {
        (S::Idle, E::Assign) => Some(S::Working),
        (S::Working | S::Paused, E::Release) => Some(S::Idle),
        (S::Working, E::Pause) => Some(S::Paused),
        (S::Paused, E::Resume) => Some(S::Working),
        (S::Working | S::Paused, E::MarkStuck) => Some(S::Stuck),
        (S::Stuck, E::Recover) => Some(S::Idle),
        (S::Idle | S::Stuck, E::Retire) => Some(S::Completed),
        (S::Idle | S::Stuck, E::Fail) => Some(S::Failed),
        _ => None,
    }
}

state_machine!(
    AgentMachine,
    "agent",
    AgentStatus,
    AgentEvent,
    initial = AgentStatus::Idle,
    accepts = accepts
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::properties::{Edge, check_machine};
    use AgentEvent as E;
    use AgentStatus as S;

    const EDGES: &[Edge<AgentStatus, AgentEvent>] = &[
        (S::Idle, E::Assign, S::Working),
        (S::Idle, E::Retire, S::Completed),
        (S::Idle, E::Fail, S::Failed),
        (S::Working, E::Release, S::Idle),
        (S::Working, E::Pause, S::Paused),
        (S::Working, E::MarkStuck, S::Stuck),
        (S::Paused, E::Release, S::Idle),
        (S::Paused, E::Resume, S::Working),
        (S::Paused, E::MarkStuck, S::Stuck),
        (S::Stuck, E::Recover, S::Idle),
        (S::Stuck, E::Retire, S::Completed),
        (S::Stuck, E::Fail, S::Failed),
    ];

    check_machine!(AgentMachine, EDGES, terminal = [S::Completed, S::Failed]);
}
