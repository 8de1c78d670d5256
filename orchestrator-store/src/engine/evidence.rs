//! The SQL stores' [`EvidenceStore`].

use std::collections::BTreeSet;

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::change::{self, LeaseRef};
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::model::{
    AgentLog, AttemptChanges, LogPage, LogQuery, NewAgentLog, NewEvent, NewVerificationResult,
    VerificationResult,
};
use orchestrator_core::store::EvidenceStore;

use super::{SqlStore, Tx, existing_task, found, locked_task, planned};
use crate::dialect::Dialect;
use crate::sql::read::{self, Lock};
use crate::sql::write;

impl<D: Dialect> SqlStore<D> {
    /// Writes planned log entries, marks `agents` active, records the events, commits;
    /// returns how many entries were written.
    async fn store_logs(
        &self,
        mut tx: Tx<D>,
        stored: &[AgentLog],
        agents: &[AgentId],
        events: &[NewEvent],
        now: Timestamp,
    ) -> Result<u64> {
        let stored = write::number_logs::<D>(&mut tx, stored).await?;
        write::insert_logs(tx.batch(), &stored);
        write::touch_agents(tx.batch(), agents, now);
        write::append_events(tx.batch(), events, now);
        self.commit(tx).await?;
        Ok(stored.len() as u64)
    }
}

#[async_trait]
impl<D: Dialect> EvidenceStore for SqlStore<D> {
    async fn append_logs(&self, logs: Vec<NewAgentLog>, now: Timestamp) -> Result<u64> {
        let (stored, events) = change::plan_logs(logs, now)?;
        let agents: Vec<AgentId> = stored
            .iter()
            .map(|log| log.agent_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let tasks: Vec<TaskId> = stored
            .iter()
            .filter_map(|log| log.task_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (mut tx, now) = self.begin_at(now).await?;
        if let Some(agent) = read::missing::<D, _>(&mut tx, "agents", &agents)
            .await?
            .first()
        {
            return Err(Error::not_found("agent", agent));
        }
        if let Some(task) = read::missing::<D, _>(&mut tx, "tasks", &tasks)
            .await?
            .first()
        {
            return Err(Error::not_found("task", task));
        }
        self.store_logs(tx, &stored, &agents, &events, now).await
    }

    async fn append_attempt_logs(
        &self,
        lease: LeaseRef,
        logs: Vec<NewAgentLog>,
        now: Timestamp,
    ) -> Result<u64> {
        let (mut tx, now) = self.begin_at(now).await?;
        let task = locked_task(&mut tx, lease.task_id).await?;
        let planned_logs = change::plan_attempt_logs(&task, &lease, logs, now);
        let (tx, (stored, events)) = tx.check(planned_logs).await?;
        let agents: Vec<AgentId> = task.assigned_agent_id.into_iter().collect();
        self.store_logs(tx, &stored, &agents, &events, now).await
    }

    async fn list_logs(&self, query: &LogQuery) -> Result<LogPage> {
        query.validate()?;
        let mut conn = self.read().await?;
        if let Some(id) = query.agent_id {
            found(
                read::agent::<D>(&mut conn, id, Lock::None).await?,
                "agent",
                id,
            )?;
        }
        if let Some(id) = query.task_id {
            existing_task::<D>(&mut conn, id).await?;
        }
        read::logs::<D>(&mut conn, query).await
    }

    async fn record_verification(
        &self,
        task: TaskId,
        lease: Option<LeaseRef>,
        result: NewVerificationResult,
        now: Timestamp,
    ) -> Result<VerificationResult> {
        result.validate()?;
        let (mut tx, now) = self.begin_at(now).await?;
        let current = locked_task(&mut tx, task).await?;
        let planned_change = change::plan_verification(current, result, lease.as_ref(), now);
        let (tx, change) = tx.check(planned_change).await?;
        let recorded = planned(change.verification.clone(), "verification result")?;
        self.persist(tx, &change, now).await?;
        Ok(recorded)
    }

    async fn list_verification_results(
        &self,
        task: TaskId,
        limit: u32,
    ) -> Result<Vec<VerificationResult>> {
        change::check_verification_limit(limit)?;
        let mut conn = self.read().await?;
        existing_task::<D>(&mut conn, task).await?;
        read::verification_results::<D>(&mut conn, task, limit).await
    }

    async fn attempt_changes(&self, task: TaskId) -> Result<Vec<AttemptChanges>> {
        let mut conn = self.read().await?;
        existing_task::<D>(&mut conn, task).await?;
        read::attempt_changes::<D>(&mut conn, task).await
    }
}
