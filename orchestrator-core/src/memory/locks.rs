//! The in-memory store's locks: an index by normalized path, and the [`LockManager`].

use std::time::Duration;

use async_trait::async_trait;

use super::{InMemoryStore, State};
use crate::change;
use crate::coordination::check_lease_ttl;
use crate::error::{Error, Result};
use crate::ids::AgentId;
use crate::lock::{
    DescendantRange, ForcedRelease, LockConflict, LockManager, LockOutcome, LockPath, LockQuery,
    LockRequest, acquired_event, check_force_release, conflicts_among, force_release_exception,
    grants_for, parse_paths, released_event, renewed_event,
};
use crate::model::{FileLock, LockMode};
use crate::time::Timestamp;

impl State {
    /// Live locks of holders other than `holder` that stand in the way of `paths`, found
    /// through the path index (ancestors, the path itself, and the key range below it).
    pub(super) fn conflicts(
        &self,
        paths: &[LockPath],
        mode: LockMode,
        holder: Option<AgentId>,
        now: Timestamp,
    ) -> Result<Vec<LockConflict>> {
        let mut candidates = Vec::new();
        for path in paths {
            for key in path.covering_keys() {
                candidates.extend(self.locks_by_path.get(&key).into_iter().flatten());
            }
            match path.descendant_range() {
                DescendantRange::Everything => {
                    candidates.extend(self.locks_by_path.values().flatten());
                }
                DescendantRange::Keys { start, end } => {
                    candidates.extend(
                        self.locks_by_path
                            .range(start..end)
                            .flat_map(|(_, ids)| ids),
                    );
                }
            }
        }
        candidates.sort();
        candidates.dedup();
        let held: Vec<FileLock> = candidates
            .into_iter()
            .filter_map(|id| self.locks.get(id).cloned())
            .collect();
        conflicts_among(paths, mode, &held, holder, now)
    }

    /// Stores new grants, numbering them with fresh fencing tokens.
    pub(super) fn insert_locks(&mut self, grants: Vec<FileLock>) -> Vec<FileLock> {
        grants
            .into_iter()
            .map(|mut lock| {
                self.last_fencing_token += 1;
                lock.fencing_token = self.last_fencing_token;
                self.locks_by_path
                    .entry(lock.file_path.clone())
                    .or_default()
                    .insert(lock.id);
                self.locks.insert(lock.id, lock.clone());
                lock
            })
            .collect()
    }

    /// Removes the locks `select` picks and returns them.
    pub(super) fn remove_locks(&mut self, select: impl Fn(&FileLock) -> bool) -> Vec<FileLock> {
        let chosen: Vec<_> = self
            .locks
            .values()
            .filter(|l| select(l))
            .map(|l| l.id)
            .collect();
        let mut removed = Vec::with_capacity(chosen.len());
        for id in chosen {
            if let Some(lock) = self.locks.remove(&id) {
                if let Some(ids) = self.locks_by_path.get_mut(&lock.file_path) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.locks_by_path.remove(&lock.file_path);
                    }
                }
                removed.push(lock);
            }
        }
        removed
    }

    fn record_release(&mut self, released: &[FileLock], reason: &str, now: Timestamp) {
        self.append_events(Vec::from_iter(released_event(released, reason)), now);
    }
}

#[async_trait]
impl LockManager for InMemoryStore {
    async fn acquire(&self, request: LockRequest, now: Timestamp) -> Result<LockOutcome> {
        check_lease_ttl(request.ttl)?;
        let paths = parse_paths(&request.paths, "paths")?;
        if paths.is_empty() {
            return Err(Error::invalid("paths", "name at least one path"));
        }
        let mut state = self.state();
        state.agent(request.holder)?;
        if let Some(task) = request.task_id {
            state.task(task)?;
        }
        let conflicts = state.conflicts(&paths, request.mode, Some(request.holder), now)?;
        if !conflicts.is_empty() {
            return Ok(LockOutcome::Denied(conflicts));
        }
        let grants = grants_for(
            &paths,
            request.holder,
            request.task_id,
            request.mode,
            now.add(request.ttl),
            now,
        );
        let granted = state.insert_locks(grants);
        let event = acquired_event(&paths, request.holder, request.task_id);
        state.append_events(vec![event], now);
        Ok(LockOutcome::Granted(granted))
    }

    async fn renew(&self, holder: AgentId, ttl: Duration, now: Timestamp) -> Result<u64> {
        check_lease_ttl(ttl)?;
        let mut state = self.state();
        let mut renewed = 0;
        for lock in state.locks.values_mut() {
            if lock.agent_id == holder && lock.is_live(now) {
                lock.expires_at = now.add(ttl);
                renewed += 1;
            }
        }
        let event = renewed_event(holder, renewed, now.add(ttl));
        state.append_events(Vec::from_iter(event), now);
        Ok(renewed)
    }

    async fn release(
        &self,
        holder: AgentId,
        paths: Option<Vec<String>>,
        now: Timestamp,
    ) -> Result<u64> {
        let keys: Option<Vec<String>> = paths
            .map(|paths| parse_paths(&paths, "paths"))
            .transpose()?
            .map(|paths| paths.iter().map(LockPath::key).collect());
        let mut state = self.state();
        let released = state.remove_locks(|lock| {
            lock.agent_id == holder && keys.as_ref().is_none_or(|k| k.contains(&lock.file_path))
        });
        state.record_release(&released, "released", now);
        Ok(released.len() as u64)
    }

    async fn check(
        &self,
        paths: &[String],
        exclude: Option<AgentId>,
        now: Timestamp,
    ) -> Result<Vec<LockConflict>> {
        let paths = parse_paths(paths, "filePaths")?;
        self.state()
            .conflicts(&paths, LockMode::Exclusive, exclude, now)
    }

    async fn list_locks(&self, query: &LockQuery, now: Timestamp) -> Result<Vec<FileLock>> {
        query.validate()?;
        let state = self.state();
        let mut locks: Vec<FileLock> = state
            .locks
            .values()
            .filter(|l| query.agent_id.is_none_or(|a| l.agent_id == a))
            .filter(|l| query.task_id.is_none_or(|t| l.task_id == Some(t)))
            .filter(|l| query.include_expired || l.is_live(now))
            .cloned()
            .collect();
        locks.sort_by_key(|l| std::cmp::Reverse((l.acquired_at, l.fencing_token)));
        locks.truncate(query.limit as usize);
        Ok(locks)
    }

    async fn force_release(
        &self,
        path: &str,
        reason: Option<String>,
        now: Timestamp,
    ) -> Result<ForcedRelease> {
        let key = check_force_release(path, reason.as_deref())?;
        let mut state = self.state();
        let released = state.remove_locks(|lock| lock.file_path == key);
        if released.is_empty() {
            return Err(Error::not_found("fileLock", &key));
        }
        state.record_release(&released, "force_released", now);
        let new = force_release_exception(&key, &released, reason.as_deref());
        let unresolved = state.unresolved_exception(&new);
        let planned = change::plan_exception(new, unresolved, now)?;
        let exception = planned
            .exception
            .clone()
            .ok_or_else(|| Error::backend("force release planned no exception"))?;
        state.persist(planned, now);
        Ok(ForcedRelease {
            released,
            exception,
        })
    }

    async fn sweep_expired_locks(&self, now: Timestamp) -> Result<u64> {
        let mut state = self.state();
        let expired = state.remove_locks(|lock| !lock.is_live(now));
        state.record_release(&expired, "expired", now);
        Ok(expired.len() as u64)
    }
}
