//! The in-memory store's [`EvidenceStore`].

use async_trait::async_trait;

use super::InMemoryStore;
use crate::change::{self, LeaseRef};
use crate::error::{Error, Result};
use crate::ids::TaskId;
use crate::model::{
    AgentLog, AttemptChanges, LogPage, LogQuery, NewAgentLog, NewVerificationResult,
    VerificationResult,
};
use crate::store::EvidenceStore;
use crate::time::Timestamp;

#[async_trait]
impl EvidenceStore for InMemoryStore {
    async fn append_logs(&self, logs: Vec<NewAgentLog>, now: Timestamp) -> Result<u64> {
        let (stored, events) = change::plan_logs(logs, now)?;
        let mut state = self.state();
        for log in &stored {
            state.agent(log.agent_id)?;
            if let Some(task) = log.task_id {
                state.task(task)?;
            }
        }
        Ok(state.store_logs(stored, events, now))
    }

    async fn append_attempt_logs(
        &self,
        lease: LeaseRef,
        logs: Vec<NewAgentLog>,
        now: Timestamp,
    ) -> Result<u64> {
        let mut state = self.state();
        let task = state.task(lease.task_id)?;
        let (stored, events) = change::plan_attempt_logs(task, &lease, logs, now)?;
        Ok(state.store_logs(stored, events, now))
    }

    async fn list_logs(&self, query: &LogQuery) -> Result<LogPage> {
        query.validate()?;
        let state = self.state();
        if let Some(agent) = query.agent_id {
            state.agent(agent)?;
        }
        if let Some(task) = query.task_id {
            state.task(task)?;
        }
        let needle = query.search_needle();
        let mut matching: Vec<&AgentLog> = state
            .logs
            .iter()
            .filter(|(agent, _)| query.agent_id.is_none_or(|a| a == **agent))
            .flat_map(|(_, logs)| logs)
            .filter(|log| query.task_id.is_none_or(|t| log.task_id == Some(t)))
            .filter(|log| query.log_type.is_none_or(|t| log.log_type == t))
            .filter(|log| {
                needle
                    .as_deref()
                    .is_none_or(|n| log.content.to_ascii_lowercase().contains(n))
            })
            .collect();
        let total_count = matching.len() as u64;
        matching.sort_by_key(|log| query.key(log));
        if query.after.is_none() {
            matching.reverse();
        }
        let logs: Vec<AgentLog> = matching
            .into_iter()
            .filter(|log| query.between_cursors(log))
            .take(query.limit as usize + 1)
            .cloned()
            .collect();
        Ok(LogPage::from_fetched(logs, query.limit, total_count))
    }

    async fn record_verification(
        &self,
        task: TaskId,
        lease: Option<LeaseRef>,
        result: NewVerificationResult,
        now: Timestamp,
    ) -> Result<VerificationResult> {
        let mut state = self.state();
        let current = state.task(task)?.clone();
        let change = change::plan_verification(current, result, lease.as_ref(), now)?;
        let recorded = change.verification.clone();
        state.persist(change, now);
        recorded.ok_or_else(|| Error::backend("verification planned no result"))
    }

    async fn list_verification_results(
        &self,
        task: TaskId,
        limit: u32,
    ) -> Result<Vec<VerificationResult>> {
        change::check_verification_limit(limit)?;
        let state = self.state();
        state.task(task)?;
        let mut results = state.verifications.get(&task).cloned().unwrap_or_default();
        results.sort_by_key(|r| std::cmp::Reverse(r.attempt_number));
        results.truncate(limit as usize);
        Ok(results)
    }

    async fn attempt_changes(&self, task: TaskId) -> Result<Vec<AttemptChanges>> {
        let state = self.state();
        state.task(task)?;
        let mut changes = state
            .attempt_changes
            .get(&task)
            .cloned()
            .unwrap_or_default();
        changes.sort_by_key(|kept| kept.attempt_number);
        Ok(changes)
    }
}
