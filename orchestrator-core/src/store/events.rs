//! [`EventStore`]: the event log every change appends to, and how readers follow it.

use std::fmt::Debug;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::Result;
use crate::model::Event;

/// Most events returned by one `events_since` call.
pub const MAX_EVENTS_PAGE: u32 = 1_000;

/// The event log: reading it in order, and waking when it grows.
#[async_trait]
pub trait EventStore: Send + Sync + Debug + 'static {
    /// The sequence number of the newest event (0 before any): where a reader that wants
    /// only what happens from now on starts.
    async fn last_event_seq(&self) -> Result<i64>;

    /// Events with `seq > after`, oldest first, at most `limit` (1 to [`MAX_EVENTS_PAGE`]).
    async fn events_since(&self, after: i64, limit: u32) -> Result<Vec<Event>>;

    /// A number that grows whenever events may have been committed: after every commit
    /// here that records events or prunes history and, on PostgreSQL, when another process
    /// commits events. Waiters (long polls, event streams) wake on it instead of polling,
    /// then read `events_since`; readers may also use it as the generation of what they
    /// cached (every change to tasks, agents, logs, locks or exceptions records an event).
    fn subscribe(&self) -> watch::Receiver<i64>;
}
