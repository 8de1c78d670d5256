//! [`ExceptionStore`]: the inbox of what needs a human.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::change::ExceptionDecision;
use crate::error::Result;
use crate::ids::ExceptionId;
use crate::model::{Exception, ExceptionQuery, NewException, Page};
use crate::time::Timestamp;

/// Exceptions: raising (deduplicated), lookups, lists and a person's decisions.
#[async_trait]
pub trait ExceptionStore: Send + Sync + Debug + 'static {
    /// Opens an exception. While an unresolved exception of the same type exists for the
    /// same task, that one is returned with its occurrence count raised instead.
    async fn raise_exception(&self, new: NewException, now: Timestamp) -> Result<Exception>;

    /// One exception.
    async fn get_exception(&self, id: ExceptionId) -> Result<Exception>;

    /// A page of exceptions, most severe first, then newest, over the whole result.
    async fn list_exceptions(&self, query: &ExceptionQuery) -> Result<Page<Exception>>;

    /// Applies a person's decision (acknowledge, resolve, dismiss, reopen).
    async fn decide_exception(
        &self,
        id: ExceptionId,
        decision: ExceptionDecision,
        now: Timestamp,
    ) -> Result<Exception>;
}
