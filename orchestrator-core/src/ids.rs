//! Typed identifiers: a `TaskId` can never be passed where an `AgentId` is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Error;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $entity:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random (version 4) identifier.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// The kind of entity this identifies, as used in error messages.
            pub const ENTITY: &'static str = $entity;
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| {
                    Error::invalid(
                        concat!($entity, "Id"),
                        format!("{s:?} is not a valid {} id (expected a UUID)", $entity),
                    )
                })
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

uuid_id!(
    /// Identifies a [`Task`](crate::model::Task).
    TaskId,
    "task"
);
uuid_id!(
    /// Identifies an [`Agent`](crate::model::Agent) slot.
    AgentId,
    "agent"
);
uuid_id!(
    /// Identifies a [`RunnerSession`](crate::model::RunnerSession).
    RunnerSessionId,
    "runnerSession"
);
uuid_id!(
    /// Identifies a [`FileLock`](crate::model::FileLock).
    FileLockId,
    "fileLock"
);
uuid_id!(
    /// Identifies a [`VerificationResult`](crate::model::VerificationResult).
    VerificationResultId,
    "verificationResult"
);
uuid_id!(
    /// Identifies an [`AgentLog`](crate::model::AgentLog) entry.
    AgentLogId,
    "agentLog"
);
uuid_id!(
    /// Identifies an [`Exception`](crate::model::Exception).
    ExceptionId,
    "exception"
);
uuid_id!(
    /// Identifies a [`TaskAttempt`](crate::model::TaskAttempt).
    AttemptId,
    "attempt"
);
uuid_id!(
    /// The secret handed to the holder of a task attempt. Every runner mutation carries it;
    /// a stale or unknown token is a conflict.
    LeaseToken,
    "leaseToken"
);
