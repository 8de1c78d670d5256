//! The store seam: durable state of the orchestrator, cut by aggregate.
//!
//! Each aggregate has a small trait of its own: [`TaskStore`], [`AgentStore`],
//! [`RunnerStore`] (runner sessions and tokens), [`EvidenceStore`] (logs and verification
//! results), [`ExceptionStore`], [`EventStore`], [`QueueStore`] (claims and leases),
//! [`HousekeepingStore`] (the supervisor's passes) and [`LockManager`]. [`Store`] is their
//! union, implemented for every type that implements them all, and is what the server,
//! the runners and the supervisor hold as `Arc<dyn Store>`. Conveniences written over
//! these methods are in [`StoreExt`].
//!
//! Implementations: [`InMemoryStore`](crate::memory::InMemoryStore) here (the reference),
//! and `SqliteStore` / `PostgresStore` in `orchestrator-store`. All three pass the same
//! conformance suite (`crate::testing`).
//!
//! # Contract
//!
//! * Every mutating method is atomic: all of its rows and its events are written, or none.
//! * Rules live in [`crate::change`]; a store loads, asks the matching `plan_*` function,
//!   and persists the result with each updated row guarded by its previous revision. A
//!   guard that fails (a concurrent writer won) is retried on fresh rows or reported as
//!   [`Error::Conflict`]; an update is never lost.
//! * Every state change appends [`Event`](crate::model::Event)s in the same transaction.
//!   Their `seq` numbers strictly increase, and an event never becomes visible with a
//!   number below one a reader has already seen, so `events_since` never skips an event.
//! * Errors: unknown ids are `NotFound`, rejected input is `InvalidInput` naming the
//!   field, an illegal transition is `InvalidTransition`, a stale lease or a clash with
//!   current state is `Conflict`. Nothing panics on bad input.
//! * `now` comes from the caller's [`Clock`](crate::Clock); stores do not read the time.

mod agents;
mod events;
mod evidence;
mod exceptions;
mod housekeeping;
mod queue;
mod runners;
mod tasks;

pub use agents::AgentStore;
pub use events::{EventStore, MAX_EVENTS_PAGE};
pub use evidence::{EvidenceStore, MAX_LOG_BATCH, MAX_VERIFICATION_PAGE};
pub use exceptions::ExceptionStore;
pub use housekeeping::HousekeepingStore;
pub use queue::QueueStore;
pub use runners::{MAX_RUNNER_SESSION_PAGE, RunnerStore, check_runner_session_page};
pub use tasks::TaskStore;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::ids::{AgentId, TaskId};
use crate::lock::LockManager;
use crate::model::{Agent, Task};

/// A created row, or the existing one an idempotency key pointed at.
#[derive(Debug, Clone, PartialEq)]
pub struct Created<T> {
    pub value: T,
    /// False when an earlier creation with the same idempotency key was returned.
    pub created: bool,
}

/// Most ids one lookup of several rows (`get_agents`, `task_activity_counts`) accepts.
pub const MAX_LOOKUP_IDS: usize = 1000;

/// Refuses a lookup of more than [`MAX_LOOKUP_IDS`] ids.
pub fn check_lookup_size<T>(ids: &[T]) -> Result<()> {
    if ids.len() > MAX_LOOKUP_IDS {
        return Err(Error::invalid(
            "ids",
            format!("at most {MAX_LOOKUP_IDS} ids per lookup, got {}", ids.len()),
        ));
    }
    Ok(())
}

/// Refuses a token hash that is blank or longer than a hex SHA-512.
pub fn check_token_hash(hash: &str) -> Result<()> {
    if hash.trim().is_empty() || hash.len() > 128 {
        return Err(Error::invalid(
            "tokenHash",
            "must be a token's digest (1 to 128 characters)",
        ));
    }
    Ok(())
}

/// Durable state of the orchestrator: every aggregate's store at once. See the module
/// documentation for the contract. Every store is also the [`LockManager`] of its data,
/// so that claims take their locks in the same transaction.
pub trait Store:
    TaskStore
    + AgentStore
    + RunnerStore
    + EvidenceStore
    + ExceptionStore
    + EventStore
    + QueueStore
    + HousekeepingStore
    + LockManager
{
}

impl<T> Store for T where
    T: TaskStore
        + AgentStore
        + RunnerStore
        + EvidenceStore
        + ExceptionStore
        + EventStore
        + QueueStore
        + HousekeepingStore
        + LockManager
        + ?Sized
{
}

/// Single-row lookups written over the stores' lookups of several rows.
#[async_trait]
pub trait StoreExt: TaskStore + AgentStore {
    /// One task; `NotFound` if there is none.
    async fn get_task(&self, id: TaskId) -> Result<Task> {
        self.get_tasks(&[id])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found("task", id))
    }

    /// One agent; `NotFound` if there is none.
    async fn get_agent(&self, id: AgentId) -> Result<Agent> {
        self.get_agents(&[id])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found("agent", id))
    }
}

impl<T: TaskStore + AgentStore + ?Sized> StoreExt for T {}
