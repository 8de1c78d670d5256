//! The in-memory store's [`AgentStore`].

use std::collections::HashSet;

use async_trait::async_trait;

use super::ordering::{agent_matches_search, compare_agents};
use super::{InMemoryStore, existing, page};
use crate::change::{self, AgentAction};
use crate::error::{Error, Result};
use crate::ids::AgentId;
use crate::model::{Agent, AgentActivityCounts, AgentQuery, NewAgent, Page};
use crate::store::{AgentStore, check_lookup_size};
use crate::time::Timestamp;

#[async_trait]
impl AgentStore for InMemoryStore {
    async fn create_agent(&self, new: NewAgent, now: Timestamp) -> Result<Agent> {
        new.validate()?;
        let mut state = self.state();
        if let Some(session) = new.runner_session_id {
            state.session(session)?;
        }
        let agent = new.into_agent(AgentId::new(), now);
        state.agents.insert(agent.id, agent.clone());
        state.append_events(vec![change::agent_created_event(&agent)], now);
        Ok(agent)
    }

    async fn get_agents(&self, ids: &[AgentId]) -> Result<Vec<Agent>> {
        check_lookup_size(ids)?;
        Ok(existing(&self.state().agents, ids))
    }

    async fn agent_costs(&self, ids: &[AgentId]) -> Result<Vec<(AgentId, f64)>> {
        check_lookup_size(ids)?;
        let state = self.state();
        let wanted: HashSet<&AgentId> = ids.iter().collect();
        let mut costs: std::collections::HashMap<AgentId, f64> = std::collections::HashMap::new();
        for attempt in state.attempts.values().flatten() {
            if wanted.contains(&attempt.agent_id) {
                *costs.entry(attempt.agent_id).or_default() += attempt.usage.cost_usd;
            }
        }
        Ok(costs.into_iter().collect())
    }

    async fn agent_activity_counts(&self, ids: &[AgentId]) -> Result<Vec<AgentActivityCounts>> {
        check_lookup_size(ids)?;
        let state = self.state();
        Ok(ids
            .iter()
            .collect::<HashSet<_>>()
            .into_iter()
            .filter(|id| state.agents.contains_key(id))
            .map(|id| AgentActivityCounts {
                agent_id: *id,
                logs: state.logs.get(id).map_or(0, Vec::len) as u64,
                file_locks: state.locks.values().filter(|l| l.agent_id == *id).count() as u64,
                exceptions: state
                    .exceptions
                    .values()
                    .filter(|e| e.agent_id == Some(*id))
                    .count() as u64,
            })
            .collect())
    }

    async fn list_agents(&self, query: &AgentQuery) -> Result<Page<Agent>> {
        query.validate()?;
        let state = self.state();
        let needle = query.search_needle();
        let mut agents: Vec<Agent> = state
            .agents
            .values()
            .filter(|a| query.status.is_none_or(|s| a.status == s))
            .filter(|a| query.id_prefix.as_ref().is_none_or(|p| p.matches(a.id)))
            .filter(|a| {
                query
                    .runner_session_id
                    .is_none_or(|s| a.runner_session_id == Some(s))
            })
            .filter(|a| {
                needle.as_deref().is_none_or(|needle| {
                    let task = a.current_task_id.and_then(|id| state.tasks.get(&id));
                    agent_matches_search(a, task, needle)
                })
            })
            .cloned()
            .collect();
        agents.sort_by(|a, b| compare_agents(a, b, query.sort_by, query.sort_order));
        Ok(page(agents, query.limit, query.offset))
    }

    async fn apply_agent_action(
        &self,
        id: AgentId,
        action: AgentAction,
        now: Timestamp,
    ) -> Result<Agent> {
        let mut state = self.state();
        let agent = state.agent(id)?.clone();
        let change = change::plan_agent_action(agent, action, now)?;
        let result = change.agent.clone();
        state.persist(change, now);
        result.ok_or_else(|| Error::backend("agent action planned no agent"))
    }
}
