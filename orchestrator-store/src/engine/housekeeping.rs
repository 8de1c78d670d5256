//! The SQL stores' [`HousekeepingStore`]: the supervisor's passes, health and counts.

use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::change::{self, TaskAction};
use orchestrator_core::coordination::{PruneReport, RetentionPolicy};
use orchestrator_core::error::Result;
use orchestrator_core::ids::TaskId;
use orchestrator_core::model::{
    Activity, ExceptionType, RunnerSession, SystemStats, Task, TaskStatus,
};
use orchestrator_core::state::runner_session::RunnerSessionEvent;
use orchestrator_core::store::HousekeepingStore;

use super::SqlStore;
use super::task_change::task_context;
use crate::dialect::Dialect;
use crate::sql::read::{self, Lock};
use crate::sql::write;

#[async_trait]
impl<D: Dialect> HousekeepingStore for SqlStore<D> {
    async fn ping(&self) -> Result<()> {
        read::events_since::<D>(&mut self.read().await?, i64::MAX, 1).await?;
        Ok(())
    }

    async fn stats(&self, since: Timestamp) -> Result<SystemStats> {
        read::stats::<D>(&mut self.read().await?, since).await
    }

    async fn activity(&self, now: Timestamp, hours: u32) -> Result<Activity> {
        Activity::check_hours(hours)?;
        read::activity::<D>(&mut self.read().await?, now, hours).await
    }

    async fn expire_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<Task>> {
        let mut conn = self.read().await?;
        let now = self.now(&mut conn, now).await?;
        let due = read::expired_leases::<D>(&mut conn, now, limit).await?;
        drop(conn);
        let mut expired = Vec::with_capacity(due.len());
        for id in due {
            let (mut tx, _) = self.begin_at(now).await?;
            let context = task_context::<D>(&mut tx, id, &TaskAction::ExpireLease, now).await?;
            let Some(context) = context else {
                tx.rollback().await;
                continue;
            };
            let task = &context.task;
            if !task.status.is_running() || task.lease_expires_at.is_none_or(|at| at > now) {
                // Renewed or finished since it was listed.
                tx.rollback().await;
                continue;
            }
            let unresolved =
                read::unresolved_exception::<D>(&mut tx, ExceptionType::AgentStuck, id).await?;
            let planned_change = change::plan_lease_expiry(context, unresolved, now);
            let (tx, change) = tx.check(planned_change).await?;
            let task = change.task.clone();
            self.persist(tx, &change, now).await?;
            expired.extend(task);
        }
        Ok(expired)
    }

    async fn mark_inactive_runners(
        &self,
        seen_before: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<RunnerSession>> {
        let quiet = read::quiet_runners::<D>(&mut self.read().await?, seen_before).await?;
        let mut marked = Vec::with_capacity(quiet.len());
        for id in quiet {
            let (mut tx, now) = self.begin_at(now).await?;
            let Some(session) = read::runner_session::<D>(&mut tx, id, Lock::ForUpdate).await?
            else {
                tx.rollback().await;
                continue;
            };
            if session.last_seen_at >= seen_before {
                tx.rollback().await;
                continue;
            }
            let planned_change =
                change::plan_runner_session_event(session, RunnerSessionEvent::MarkInactive, now);
            let (tx, change) = tx.check(planned_change).await?;
            marked.extend(change.runner_session.clone());
            self.persist(tx, &change, now).await?;
        }
        Ok(marked)
    }

    async fn stalled_tasks(&self, quiet_since: Timestamp, now: Timestamp) -> Result<Vec<Task>> {
        let mut conn = self.read().await?;
        let now = self.now(&mut conn, now).await?;
        read::stalled::<D>(&mut conn, quiet_since, now).await
    }

    async fn blocked_tasks(&self, limit: u32) -> Result<Vec<(Task, TaskId, TaskStatus)>> {
        read::blocked::<D>(&mut self.read().await?, limit).await
    }

    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool> {
        let (mut tx, now) = self.begin_at(now).await?;
        let taken = write::take_named_lease::<D>(&mut tx, name, holder, now.add(ttl), now).await?;
        tx.commit().await?;
        Ok(taken)
    }

    async fn prune(&self, policy: &RetentionPolicy, now: Timestamp) -> Result<PruneReport> {
        let (mut tx, now) = self.begin_at(now).await?;
        let logs_deleted = write::prune_table::<D>(
            &mut tx,
            "agent_logs",
            now.sub(policy.log_max_age),
            policy.log_max_count,
            "created_at, id",
            "created_at DESC, id DESC",
        )
        .await?;
        let events_deleted = write::prune_table::<D>(
            &mut tx,
            "events",
            now.sub(policy.event_max_age),
            policy.event_max_count,
            "seq",
            "seq DESC",
        )
        .await?;
        tx.commit().await?;
        if logs_deleted + events_deleted > 0 {
            self.announce_commit();
        }
        Ok(PruneReport {
            logs_deleted,
            events_deleted,
        })
    }
}
