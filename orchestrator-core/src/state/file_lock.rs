//! The file lock state machine.
//!
//! A lock is HELD from its grant until its holder releases it, its time runs out, or an
//! administrator takes it away; all three ends are final (a new grant is a new lock with a
//! new fencing token). Renewal keeps it HELD and pushes the expiry out.

use super::state_machine;
use crate::model::FileLockStatus;

wire_enum!(
    /// What can happen to a file lock.
    FileLockEvent, "event" {
        /// Extend its time (HELD → HELD).
        Renew = "renew",
        /// Its holder gives it back (HELD → RELEASED).
        Release = "release",
        /// Its time ran out (HELD → EXPIRED).
        Expire = "expire",
        /// An administrator takes it away (HELD → FORCE_RELEASED).
        ForceRelease = "force_release",
    }
);

fn accepts(state: FileLockStatus, event: FileLockEvent) -> Option<FileLockStatus> {
    use FileLockEvent as E;
    use FileLockStatus as S;
    match (state, event) {
        (S::Held, E::Renew) => Some(S::Held),
        (S::Held, E::Release) => Some(S::Released),
        (S::Held, E::Expire) => Some(S::Expired),
        (S::Held, E::ForceRelease) => Some(S::ForceReleased),
        _ => None,
    }
}

state_machine!(
    FileLockMachine,
    "fileLock",
    FileLockStatus,
    FileLockEvent,
    initial = FileLockStatus::Held,
    accepts = accepts
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::properties::{Edge, check_machine};
    use FileLockEvent as E;
    use FileLockStatus as S;

    const EDGES: &[Edge<FileLockStatus, FileLockEvent>] = &[
        (S::Held, E::Renew, S::Held),
        (S::Held, E::Release, S::Released),
        (S::Held, E::Expire, S::Expired),
        (S::Held, E::ForceRelease, S::ForceReleased),
    ];

    check_machine!(
        FileLockMachine,
        EDGES,
        terminal = [S::Released, S::Expired, S::ForceReleased]
    );
}
