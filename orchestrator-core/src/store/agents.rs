//! [`AgentStore`]: the agent slots runners fill with work.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::change::AgentAction;
use crate::error::Result;
use crate::ids::AgentId;
use crate::model::{Agent, AgentActivityCounts, AgentQuery, NewAgent, Page};
use crate::time::Timestamp;

/// Agent slots: registration, lookups, lists and their actions.
#[async_trait]
pub trait AgentStore: Send + Sync + Debug + 'static {
    /// Registers an IDLE agent slot. Its runner session, if named, must exist.
    async fn create_agent(&self, new: NewAgent, now: Timestamp) -> Result<Agent>;

    /// The agents among `ids` that exist, in no particular order.
    async fn get_agents(&self, ids: &[AgentId]) -> Result<Vec<Agent>>;

    /// Log entries, held locks and exceptions recorded about each agent of `ids` that
    /// exists (agents with none recorded may be left out).
    async fn agent_activity_counts(&self, ids: &[AgentId]) -> Result<Vec<AgentActivityCounts>>;

    /// A page of agents, newest first.
    async fn list_agents(&self, query: &AgentQuery) -> Result<Page<Agent>>;

    /// The estimated cost in US dollars of every attempt each agent of `ids` ran (agents
    /// without one may be left out).
    async fn agent_costs(&self, ids: &[AgentId]) -> Result<Vec<(AgentId, f64)>>;

    /// Applies an action to an agent slot (pause, resume, recover, retire, fail).
    async fn apply_agent_action(
        &self,
        id: AgentId,
        action: AgentAction,
        now: Timestamp,
    ) -> Result<Agent>;
}
