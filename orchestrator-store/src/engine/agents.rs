//! The SQL stores' [`AgentStore`].

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::change::{self, AgentAction};
use orchestrator_core::error::Result;
use orchestrator_core::ids::AgentId;
use orchestrator_core::model::{Agent, AgentActivityCounts, AgentQuery, NewAgent, Page};
use orchestrator_core::store::{AgentStore, check_lookup_size};

use super::{SqlStore, found, planned};
use crate::dialect::Dialect;
use crate::sql::read::{self, Lock};
use crate::sql::write;

#[async_trait]
impl<D: Dialect> AgentStore for SqlStore<D> {
    async fn create_agent(&self, new: NewAgent, now: Timestamp) -> Result<Agent> {
        new.validate()?;
        let (mut tx, now) = self.begin_at(now).await?;
        if let Some(session) = new.runner_session_id {
            let row = read::runner_session::<D>(&mut tx, session, Lock::None).await?;
            found(row, "runnerSession", session)?;
        }
        let agent = new.into_agent(AgentId::new(), now);
        write::insert_agent(tx.batch(), &agent);
        write::append_events(tx.batch(), &[change::agent_created_event(&agent)], now);
        self.commit(tx).await?;
        Ok(agent)
    }

    async fn get_agents(&self, ids: &[AgentId]) -> Result<Vec<Agent>> {
        check_lookup_size(ids)?;
        read::agents_by_id::<D>(&mut self.read().await?, ids, Lock::None).await
    }

    async fn agent_activity_counts(&self, ids: &[AgentId]) -> Result<Vec<AgentActivityCounts>> {
        check_lookup_size(ids)?;
        read::agent_activity_counts::<D>(&mut self.read().await?, ids).await
    }

    async fn agent_costs(&self, ids: &[AgentId]) -> Result<Vec<(AgentId, f64)>> {
        check_lookup_size(ids)?;
        read::agent_costs::<D>(&mut self.read().await?, ids).await
    }

    async fn list_agents(&self, query: &AgentQuery) -> Result<Page<Agent>> {
        query.validate()?;
        read::agents::<D>(&mut self.read().await?, query).await
    }

    async fn apply_agent_action(
        &self,
        id: AgentId,
        action: AgentAction,
        now: Timestamp,
    ) -> Result<Agent> {
        let (mut tx, now) = self.begin_at(now).await?;
        let agent = found(
            read::agent::<D>(&mut tx, id, Lock::ForUpdate).await?,
            "agent",
            id,
        )?;
        let (tx, change) = tx
            .check(change::plan_agent_action(agent, action, now))
            .await?;
        let agent = planned(change.agent.clone(), "agent")?;
        self.persist(tx, &change, now).await?;
        Ok(agent)
    }
}
