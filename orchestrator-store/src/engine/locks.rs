//! The [`LockManager`] of the SQL stores.

use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::change;
use orchestrator_core::coordination::check_lease_ttl;
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::AgentId;
use orchestrator_core::lock::{
    ForcedRelease, LockConflict, LockManager, LockOutcome, LockPath, LockQuery, LockRequest,
    acquired_event, check_force_release, force_release_exception, grants_for, parse_paths,
    released_event, renewed_event,
};
use orchestrator_core::model::{FileLock, LockMode};

use super::{SqlStore, Tx, existing_task, found};
use crate::dialect::Dialect;
use crate::sql::locks as sql_locks;
use crate::sql::read::{self, Lock};
use crate::sql::write;

impl<D: Dialect> SqlStore<D> {
    /// Records a release in the event log and commits.
    async fn finish_release(
        &self,
        mut tx: Tx<D>,
        released: &[FileLock],
        reason: &str,
        now: Timestamp,
    ) -> Result<()> {
        write::append_events(
            tx.batch(),
            &Vec::from_iter(released_event(released, reason)),
            now,
        );
        self.commit(tx).await
    }
}

#[async_trait]
impl<D: Dialect> LockManager for SqlStore<D> {
    async fn acquire(&self, request: LockRequest, now: Timestamp) -> Result<LockOutcome> {
        check_lease_ttl(request.ttl)?;
        let paths = parse_paths(&request.paths, "paths")?;
        if paths.is_empty() {
            return Err(Error::invalid("paths", "name at least one path"));
        }
        let (mut tx, now) = self.begin_at(now).await?;
        let holder = request.holder;
        found(
            read::agent::<D>(&mut tx, holder, Lock::None).await?,
            "agent",
            holder,
        )?;
        if let Some(task) = request.task_id {
            existing_task::<D>(&mut tx, task).await?;
        }
        D::guard_lock_keys(&mut tx, &sql_locks::guard_keys(&paths), true).await?;
        let conflicts =
            sql_locks::conflicts::<D>(&mut tx, &paths, request.mode, Some(holder), now).await?;
        if !conflicts.is_empty() {
            return Ok(LockOutcome::Denied(conflicts));
        }
        let grants = grants_for(
            &paths,
            holder,
            request.task_id,
            request.mode,
            now.add(request.ttl),
            now,
        );
        let granted = sql_locks::number::<D>(&mut tx, &grants).await?;
        let event = acquired_event(&paths, holder, request.task_id);
        sql_locks::insert(tx.batch(), &granted);
        write::append_events(tx.batch(), &[event], now);
        self.commit(tx).await?;
        Ok(LockOutcome::Granted(granted))
    }

    async fn renew(&self, holder: AgentId, ttl: Duration, now: Timestamp) -> Result<u64> {
        check_lease_ttl(ttl)?;
        let (mut tx, now) = self.begin_at(now).await?;
        let expires = now.add(ttl);
        let renewed = sql_locks::renew_holder::<D>(&mut tx, holder, expires, now).await?;
        let event = renewed_event(holder, renewed, expires);
        write::append_events(tx.batch(), &Vec::from_iter(event), now);
        self.commit(tx).await?;
        Ok(renewed)
    }

    async fn release(
        &self,
        holder: AgentId,
        paths: Option<Vec<String>>,
        now: Timestamp,
    ) -> Result<u64> {
        let keys = paths
            .map(|paths| parse_paths(&paths, "paths"))
            .transpose()?
            .map(|paths| paths.iter().map(LockPath::key).collect());
        let (mut tx, now) = self.begin_at(now).await?;
        let released = sql_locks::release_holder::<D>(&mut tx, holder, keys).await?;
        self.finish_release(tx, &released, "released", now).await?;
        Ok(released.len() as u64)
    }

    async fn check(
        &self,
        paths: &[String],
        exclude: Option<AgentId>,
        now: Timestamp,
    ) -> Result<Vec<LockConflict>> {
        let paths = parse_paths(paths, "filePaths")?;
        let mut conn = self.read().await?;
        let now = self.now(&mut conn, now).await?;
        sql_locks::conflicts::<D>(&mut conn, &paths, LockMode::Exclusive, exclude, now).await
    }

    async fn list_locks(&self, query: &LockQuery, now: Timestamp) -> Result<Vec<FileLock>> {
        query.validate()?;
        let mut conn = self.read().await?;
        let now = self.now(&mut conn, now).await?;
        sql_locks::list::<D>(&mut conn, query, now).await
    }

    async fn force_release(
        &self,
        path: &str,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<ForcedRelease> {
        let key = check_force_release(path, reason.as_deref())?;
        let (mut tx, now) = self.begin_at(now).await?;
        let released = sql_locks::release_key::<D>(&mut tx, &key).await?;
        if released.is_empty() {
            return tx.refuse(Error::not_found("fileLock", &key)).await;
        }
        let new = force_release_exception(&key, &released, reason.as_deref());
        let unresolved = match new.task_id {
            Some(task) => {
                read::unresolved_exception::<D>(&mut tx, new.exception_type, task).await?
            }
            None => None,
        };
        let (tx, mut planned) = tx
            .check(change::plan_exception(new, unresolved, now))
            .await?;
        planned
            .events
            .extend(released_event(&released, "force_released"));
        let exception = planned
            .exception
            .clone()
            .ok_or_else(|| Error::backend("force release planned no exception"))?;
        self.persist(tx, &planned, now).await?;
        Ok(ForcedRelease {
            released,
            exception,
        })
    }

    async fn sweep_expired_locks(&self, now: Timestamp) -> Result<u64> {
        let (mut tx, now) = self.begin_at(now).await?;
        let expired = sql_locks::sweep::<D>(&mut tx, now).await?;
        // Releases take back the tasks set aside behind them; this also takes back any
        // left behind a path no live lock is on.
        crate::sql::hidden::reveal_unheld::<D>(&mut tx, now).await?;
        self.finish_release(tx, &expired, "expired", now).await?;
        Ok(expired.len() as u64)
    }
}
