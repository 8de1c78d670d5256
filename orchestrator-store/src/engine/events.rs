//! The SQL stores' [`EventStore`].

use async_trait::async_trait;
use orchestrator_core::change::{self};
use orchestrator_core::error::Result;
use orchestrator_core::model::Event;
use orchestrator_core::store::EventStore;
use sqlx::QueryBuilder;
use tokio::sync::watch;

use super::SqlStore;
use crate::dialect::{Dialect, Exec};
use crate::sql::read::{self};

#[async_trait]
impl<D: Dialect> EventStore for SqlStore<D> {
    async fn last_event_seq(&self) -> Result<i64> {
        D::number_events(&self.pool).await?;
        let query = QueryBuilder::<D>::new("SELECT COALESCE(MAX(seq), 0) FROM events");
        let last = self.read().await?.fetch_count(query).await?;
        Ok(i64::try_from(last).unwrap_or(i64::MAX))
    }

    async fn events_since(&self, after: i64, limit: u32) -> Result<Vec<Event>> {
        change::check_events_limit(limit)?;
        D::number_events(&self.pool).await?;
        read::events_since::<D>(&mut self.read().await?, after, limit).await
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.committed.subscribe()
    }
}
