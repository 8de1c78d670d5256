//! The in-memory store's [`EventStore`].

use async_trait::async_trait;
use tokio::sync::watch;

use super::InMemoryStore;
use crate::change;
use crate::error::Result;
use crate::model::Event;
use crate::store::EventStore;

#[async_trait]
impl EventStore for InMemoryStore {
    async fn last_event_seq(&self) -> Result<i64> {
        Ok(self.state().last_seq)
    }

    async fn events_since(&self, after: i64, limit: u32) -> Result<Vec<Event>> {
        change::check_events_limit(limit)?;
        let state = self.state();
        let start = state.events.partition_point(|e| e.seq <= after);
        Ok(state.events[start..]
            .iter()
            .take(limit as usize)
            .cloned()
            .collect())
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.committed.subscribe()
    }
}
