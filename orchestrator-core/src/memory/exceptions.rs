//! The in-memory store's [`ExceptionStore`].

use async_trait::async_trait;

use super::{InMemoryStore, ordering, page};
use crate::change::{self, ExceptionDecision};
use crate::error::{Error, Result};
use crate::ids::ExceptionId;
use crate::model::{Exception, ExceptionQuery, ExceptionStatus, NewException, Page};
use crate::store::ExceptionStore;
use crate::time::Timestamp;

#[async_trait]
impl ExceptionStore for InMemoryStore {
    async fn raise_exception(&self, new: NewException, now: Timestamp) -> Result<Exception> {
        new.validate()?;
        let mut state = self.state();
        if let Some(agent) = new.agent_id {
            state.agent(agent)?;
        }
        if let Some(task) = new.task_id {
            state.task(task)?;
        }
        let unresolved = state.unresolved_exception(&new);
        let change = change::plan_exception(new, unresolved, now)?;
        let result = change.exception.clone();
        state.persist(change, now);
        result.ok_or_else(|| Error::backend("exception planned no row"))
    }

    async fn get_exception(&self, id: ExceptionId) -> Result<Exception> {
        self.state().exception(id).cloned()
    }

    async fn list_exceptions(&self, query: &ExceptionQuery) -> Result<Page<Exception>> {
        query.validate()?;
        let state = self.state();
        let mut exceptions: Vec<Exception> = state
            .exceptions
            .values()
            .filter(|e| query.status.is_none_or(|s| e.status == s))
            .filter(|e| query.severity.is_none_or(|s| e.severity == s))
            .filter(|e| query.exception_type.is_none_or(|t| e.exception_type == t))
            .filter(|e| query.task_id.is_none_or(|t| e.task_id == Some(t)))
            .filter(|e| query.agent_id.is_none_or(|a| e.agent_id == Some(a)))
            .cloned()
            .collect();
        exceptions.sort_by(ordering::compare_exceptions);
        Ok(page(exceptions, query.limit, query.offset))
    }

    async fn decide_exception(
        &self,
        id: ExceptionId,
        decision: ExceptionDecision,
        now: Timestamp,
    ) -> Result<Exception> {
        let mut state = self.state();
        let exception = state.exception(id)?.clone();
        if decision.status == ExceptionStatus::Open
            && let Some(task) = exception.task_id
            && state.exceptions.values().any(|e| {
                e.id != id
                    && e.task_id == Some(task)
                    && e.exception_type == exception.exception_type
                    && e.status.is_unresolved()
            })
        {
            return Err(Error::conflict(
                "another unresolved exception of this type is open for the task",
            ));
        }
        let change = change::plan_exception_decision(exception, decision, now)?;
        let result = change.exception.clone();
        state.persist(change, now);
        result.ok_or_else(|| Error::backend("decision planned no exception"))
    }
}
