//! The error taxonomy shared by every layer.
//!
//! Each variant is something a caller can act on: retry later (`Unavailable`), fix the
//! request (`InvalidInput`), refresh and try again (`Conflict`), act only on what is
//! one's own (`Forbidden`), or give up (`NotFound`).
//! Backend failures that are none of these stay opaque (`Backend`) so that internal text
//! never has to reach a client.

use std::fmt;

/// Result alias used across the orchestrator crates.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named entity does not exist.
    #[error("{entity} {id} not found")]
    NotFound {
        /// Kind of entity, e.g. "task".
        entity: &'static str,
        /// The identifier that was looked up.
        id: String,
    },
    /// The caller may not act on this entity (a runner naming another runner's agent
    /// slot).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request is well-formed but clashes with the current state (a stale lease, a
    /// duplicate, a lock held by someone else, a concurrent modification).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request itself is wrong; the message names the field and what is expected.
    #[error("invalid input: {field}: {message}")]
    InvalidInput {
        /// The offending field, in the API's (camelCase) spelling.
        field: String,
        /// What is wrong and what would be accepted.
        message: String,
    },
    /// The entity's state machine does not allow this event in its current state.
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    /// A dependency (database, network) is temporarily unavailable; retrying may help.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Any other backend failure. The message is for logs, not for clients.
    #[error("backend error: {0}")]
    Backend(String),
}

impl Error {
    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(entity: &'static str, id: impl fmt::Display) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }

    /// Shorthand for [`Error::Backend`].
    pub fn backend(message: impl fmt::Display) -> Self {
        Self::Backend(message.to_string())
    }
}

/// An event that the entity's state machine rejects in its current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {entity} transition: cannot {event} from {from}{}{}",
    describe_target(.to),
    describe_allowed(.allowed)
)]
pub struct InvalidTransition {
    /// Kind of entity, e.g. "task".
    pub entity: &'static str,
    /// The state the entity was in.
    pub from: String,
    /// The state the event leads to (`None` for an event whose target depends on where it
    /// starts, like a request that keeps the state).
    pub to: Option<String>,
    /// The event that was rejected.
    pub event: String,
    /// The events the entity would accept in `from` (empty for a terminal state).
    pub allowed: Vec<String>,
}

fn describe_target(to: &Option<String>) -> String {
    to.as_deref()
        .map(|to| format!(" to {to}"))
        .unwrap_or_default()
}

fn describe_allowed(allowed: &[String]) -> String {
    if allowed.is_empty() {
        " (it is a final state)".to_owned()
    } else {
        format!(" (allowed: {})", allowed.join(", "))
    }
}
