//! The orchestrator's core: everything that does not depend on a database, a web
//! framework, git or a parser.
//!
//! * [`model`] — the domain types, whose JSON is the API's wire format.
//! * [`state`] — one pure state machine per entity.
//! * [`change`] — what each operation writes (task, attempt, agent slot, events), decided
//!   once for every store.
//! * [`Store`] (the union of one small trait per aggregate, see [`store`]),
//!   [`LockManager`], [`Verifier`], [`AgentBackend`] and [`Clock`] — the seams, used as
//!   `Arc<dyn _>`.
//! * [`protocol`] — the runner protocol (claims, heartbeats, logs, locks, completions)
//!   over a store, with its messages, for every transport.
//! * [`InMemoryStore`] — the reference `Store`, for tests and for embedding without a
//!   database.
//! * `testing` (feature) — the conformance suite every `Store` must pass.

#[macro_use]
mod wire_enum;

pub mod attempts;
pub mod backend;
pub mod change;
pub mod coordination;
pub mod error;
pub mod fingerprint;
pub mod ids;
pub mod lock;
pub mod memory;
pub mod model;
pub mod protocol;
pub mod retry;
pub mod state;
pub mod store;
pub mod supervisor;
pub mod time;
pub mod verify;

#[cfg(feature = "testing")]
pub mod testing;

pub use backend::AgentBackend;
pub use error::{Error, InvalidTransition, Result};
pub use lock::LockManager;
pub use memory::InMemoryStore;
pub use store::Store;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use verify::Verifier;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The seams are used as `Arc<dyn _>`; this fails to compile if one stops being
    /// object safe.
    #[test]
    fn the_seams_are_object_safe() {
        let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let _unimplemented: [Option<Arc<dyn LockManager>>; 1] = [None];
        let _verifiers: Vec<Arc<dyn Verifier>> = Vec::new();
        let _backends: Vec<Arc<dyn AgentBackend>> = Vec::new();
        assert!(format!("{store:?}{clock:?}").contains("InMemoryStore"));
    }
}
