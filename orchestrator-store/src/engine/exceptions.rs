//! The SQL stores' [`ExceptionStore`].

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::change::{self, ExceptionDecision};
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::ExceptionId;
use orchestrator_core::model::{Exception, ExceptionQuery, ExceptionStatus, NewException, Page};
use orchestrator_core::store::ExceptionStore;

use super::{SqlStore, existing_task, found, planned, retry_on_race};
use crate::dialect::Dialect;
use crate::sql::read::{self, Lock};

impl<D: Dialect> SqlStore<D> {
    async fn raise_once(&self, new: NewException, now: Timestamp) -> Result<Exception> {
        let (mut tx, now) = self.begin_at(now).await?;
        if let Some(agent) = new.agent_id {
            found(
                read::agent::<D>(&mut tx, agent, Lock::None).await?,
                "agent",
                agent,
            )?;
        }
        let unresolved = match new.task_id {
            Some(task) => {
                existing_task::<D>(&mut tx, task).await?;
                read::unresolved_exception::<D>(&mut tx, new.exception_type, task).await?
            }
            None => None,
        };
        let (tx, change) = tx
            .check(change::plan_exception(new, unresolved, now))
            .await?;
        let exception = planned(change.exception.clone(), "exception")?;
        self.persist(tx, &change, now).await?;
        Ok(exception)
    }
}

#[async_trait]
impl<D: Dialect> ExceptionStore for SqlStore<D> {
    async fn raise_exception(&self, new: NewException, now: Timestamp) -> Result<Exception> {
        new.validate()?;
        retry_on_race(|| self.raise_once(new.clone(), now)).await
    }

    async fn get_exception(&self, id: ExceptionId) -> Result<Exception> {
        let row = read::exception::<D>(&mut self.read().await?, id, Lock::None).await?;
        found(row, "exception", id)
    }

    async fn list_exceptions(&self, query: &ExceptionQuery) -> Result<Page<Exception>> {
        query.validate()?;
        read::exceptions::<D>(&mut self.read().await?, query).await
    }

    async fn decide_exception(
        &self,
        id: ExceptionId,
        decision: ExceptionDecision,
        now: Timestamp,
    ) -> Result<Exception> {
        decision.validate()?;
        let (mut tx, now) = self.begin_at(now).await?;
        let exception = read::exception::<D>(&mut tx, id, Lock::ForUpdate).await?;
        let exception = found(exception, "exception", id)?;
        if decision.status == ExceptionStatus::Open
            && let Some(task) = exception.task_id
            && let Some(other) =
                read::unresolved_exception::<D>(&mut tx, exception.exception_type, task).await?
            && other.id != id
        {
            let refusal = Error::conflict(format!(
                "exception {} of this type is already unresolved for the task",
                other.id
            ));
            return tx.refuse(refusal).await;
        }
        let planned_change = change::plan_exception_decision(exception, decision, now);
        let (tx, change) = tx.check(planned_change).await?;
        let exception = planned(change.exception.clone(), "exception")?;
        self.persist(tx, &change, now).await?;
        Ok(exception)
    }
}
