//! [`InMemoryStore`]: the reference [`Store`], holding everything in one mutex-guarded
//! state. Every operation runs under the lock, so each is atomic and serialized.

mod coordination;
mod locks;
mod ordering;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::change::{
    self, AgentAction, AttemptEnd, Change, ExceptionDecision, LeaseRef, TaskAction, TaskContext,
};
use crate::coordination::{Claim, ClaimRequest, HeartbeatAck, PruneReport, RetentionPolicy};
use crate::error::{Error, Result};
use crate::ids::{AgentId, ExceptionId, FileLockId, RunnerSessionId, TaskId};
use crate::model::{
    Agent, AgentActivityCounts, AgentLog, AgentQuery, COMPLETION_SAMPLE, Event, Exception,
    ExceptionQuery, ExceptionStatus, ExceptionType, FileLock, LogPage, LogQuery, NewAgent,
    NewAgentLog, NewEvent, NewException, NewRunnerSession, NewTask, NewVerificationResult, Page,
    RunnerSession, SystemStats, Task, TaskActivityCounts, TaskAttempt, TaskEdit, TaskQuery,
    TaskStatus, VerificationResult,
};
use crate::state::runner_session::RunnerSessionEvent;
use crate::store::{Created, Store, check_lookup_size, check_token_hash};
use crate::time::Timestamp;

/// The reference [`Store`]: all state in memory, nothing survives the process.
#[derive(Debug)]
pub struct InMemoryStore {
    state: Mutex<State>,
    committed: tokio::sync::watch::Sender<i64>,
}

impl Default for InMemoryStore {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            committed: tokio::sync::watch::Sender::new(0),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    tasks: HashMap<TaskId, Task>,
    idempotency_keys: HashMap<String, TaskId>,
    attempts: HashMap<TaskId, Vec<TaskAttempt>>,
    agents: HashMap<AgentId, Agent>,
    sessions: HashMap<RunnerSessionId, RunnerSession>,
    logs: HashMap<AgentId, Vec<AgentLog>>,
    verifications: HashMap<TaskId, Vec<VerificationResult>>,
    exceptions: HashMap<ExceptionId, Exception>,
    events: Vec<Event>,
    locks: HashMap<FileLockId, FileLock>,
    /// Lock ids by normalized path: the index every conflict lookup goes through.
    locks_by_path: BTreeMap<String, BTreeSet<FileLockId>>,
    last_fencing_token: u64,
    /// Named leases: holder and expiry.
    leases: HashMap<String, (String, Timestamp)>,
    /// The last sequence number handed out; pruning never makes it go back.
    last_seq: i64,
    admin_token_hash: Option<String>,
    /// Unspent setup tokens: hash to expiry.
    setup_tokens: HashMap<String, Timestamp>,
}

/// The values of `rows` under the distinct keys of `ids` that are present.
fn existing<K: Eq + std::hash::Hash, V: Clone>(rows: &HashMap<K, V>, ids: &[K]) -> Vec<V> {
    ids.iter()
        .collect::<HashSet<_>>()
        .into_iter()
        .filter_map(|id| rows.get(id).cloned())
        .collect()
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> StateGuard<'_> {
        // A panic while holding the lock cannot leave a half-applied change: every
        // mutation validates first and writes last.
        StateGuard {
            state: self
                .state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            committed: &self.committed,
        }
    }
}

/// The locked state; on release it tells subscribers how far the event log now reaches.
struct StateGuard<'a> {
    state: MutexGuard<'a, State>,
    committed: &'a tokio::sync::watch::Sender<i64>,
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        let last = self.state.last_seq;
        self.committed.send_if_modified(|seen| {
            let newer = last > *seen;
            if newer {
                *seen = last;
            }
            newer
        });
    }
}

impl State {
    fn task(&self, id: TaskId) -> Result<&Task> {
        self.tasks
            .get(&id)
            .ok_or_else(|| Error::not_found("task", id))
    }

    fn agent(&self, id: AgentId) -> Result<&Agent> {
        self.agents
            .get(&id)
            .ok_or_else(|| Error::not_found("agent", id))
    }

    fn session(&self, id: RunnerSessionId) -> Result<&RunnerSession> {
        self.sessions
            .get(&id)
            .ok_or_else(|| Error::not_found("runnerSession", id))
    }

    fn exception(&self, id: ExceptionId) -> Result<&Exception> {
        self.exceptions
            .get(&id)
            .ok_or_else(|| Error::not_found("exception", id))
    }

    /// Keeps planned log entries, marks their agents active, and records the events;
    /// returns how many entries were kept.
    fn store_logs(&mut self, stored: Vec<AgentLog>, events: Vec<NewEvent>, now: Timestamp) -> u64 {
        let count = stored.len() as u64;
        for log in stored {
            if let Some(agent) = self.agents.get_mut(&log.agent_id) {
                agent.last_activity_at = Some(now);
            }
            self.logs.entry(log.agent_id).or_default().push(log);
        }
        self.append_events(events, now);
        count
    }

    fn append_events(&mut self, events: Vec<NewEvent>, now: Timestamp) {
        for event in events {
            self.last_seq += 1;
            self.events.push(event.into_event(self.last_seq, now));
        }
    }

    /// Writes a planned change and returns the locks it granted. Called with every
    /// precondition already checked.
    fn persist(&mut self, change: Change, now: Timestamp) -> Vec<FileLock> {
        if change.noop {
            return Vec::new();
        }
        if let Some(task) = change.release_task_locks {
            self.remove_locks(|lock| lock.task_id == Some(task));
        }
        if let Some((task, expires)) = change.renew_task_locks {
            for lock in self.locks.values_mut().filter(|l| l.task_id == Some(task)) {
                lock.expires_at = expires;
            }
        }
        let granted = self.insert_locks(change.lock_grants);
        if let Some(task) = change.task {
            self.tasks.insert(task.id, task);
        }
        if let Some(agent) = change.agent {
            self.agents.insert(agent.id, agent);
        }
        if let Some(attempt) = change.attempt {
            let attempts = self.attempts.entry(attempt.task_id).or_default();
            match attempts.iter_mut().find(|a| a.id == attempt.id) {
                Some(existing) => *existing = attempt,
                None => attempts.push(attempt),
            }
        }
        if let Some(exception) = change.exception {
            self.exceptions.insert(exception.id, exception);
        }
        if let Some(session) = change.runner_session {
            self.sessions.insert(session.id, session);
        }
        if let Some(result) = change.verification {
            self.verifications
                .entry(result.task_id)
                .or_default()
                .push(result);
        }
        for log in change.logs {
            self.logs.entry(log.agent_id).or_default().push(log);
        }
        self.append_events(change.events, now);
        granted
    }

    /// The unresolved exception that raising `new` would count again, if any.
    fn unresolved_exception(&self, new: &NewException) -> Option<Exception> {
        self.open_exception(new.exception_type, new.task_id?)
            .cloned()
    }

    /// The unresolved exception of `kind` about `task`, if any (there is at most one).
    fn open_exception(&self, kind: ExceptionType, task: TaskId) -> Option<&Exception> {
        self.exceptions.values().find(|e| {
            e.task_id == Some(task) && e.exception_type == kind && e.status.is_unresolved()
        })
    }

    fn check_new_task(&self, new: &NewTask, batch_ids: &[TaskId]) -> Result<()> {
        for dependency in &new.depends_on {
            if !self.tasks.contains_key(dependency) && !batch_ids.contains(dependency) {
                return Err(Error::invalid(
                    "dependsOn",
                    format!("task {dependency} does not exist"),
                ));
            }
        }
        Ok(())
    }

    fn existing_by_key(&self, new: &NewTask) -> Option<Task> {
        let key = new.idempotency_key.as_ref()?;
        let id = self.idempotency_keys.get(key)?;
        self.tasks.get(id).cloned()
    }

    fn insert_task(&mut self, new: NewTask, now: Timestamp) -> Task {
        let task = new.into_task(TaskId::new(), now);
        if let Some(key) = &task.idempotency_key {
            self.idempotency_keys.insert(key.clone(), task.id);
        }
        self.tasks.insert(task.id, task.clone());
        self.append_events(vec![change::task_created_event(&task)], now);
        task
    }

    fn task_context(&self, task: Task, action: &TaskAction, now: Timestamp) -> Result<TaskContext> {
        let agent_id = match action {
            TaskAction::Assign { agent_id, .. } => Some(*agent_id),
            _ => task.assigned_agent_id,
        };
        let agent = match agent_id {
            Some(id) => self.agents.get(&id).cloned(),
            None => None,
        };
        let attempt = self
            .attempts
            .get(&task.id)
            .and_then(|attempts| attempts.iter().find(|a| a.attempt_number == task.attempt))
            .cloned();
        let unfinished_dependencies = task
            .depends_on
            .iter()
            .filter_map(|id| self.tasks.get(id))
            .filter(|dependency| dependency.status != TaskStatus::Completed)
            .map(|dependency| (dependency.id, dependency.status))
            .collect();
        let lock_conflicts = match action {
            TaskAction::Assign { agent_id, .. } => {
                let paths = crate::lock::parse_paths(&task.files_hint, "filesHint")?;
                self.conflicts(
                    &paths,
                    crate::model::LockMode::Exclusive,
                    Some(*agent_id),
                    now,
                )?
            }
            _ => Vec::new(),
        };
        Ok(TaskContext {
            task,
            agent,
            attempt,
            unfinished_dependencies,
            lock_conflicts,
        })
    }
}

fn page<T: Clone>(items: Vec<T>, limit: u32, offset: u64) -> Page<T> {
    let total_count = items.len() as u64;
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    Page {
        items: items.into_iter().skip(start).take(limit as usize).collect(),
        total_count,
        limit,
        offset,
    }
}

#[async_trait]
impl Store for InMemoryStore {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn create_task(&self, new: NewTask, now: Timestamp) -> Result<Created<Task>> {
        new.validate()?;
        let mut state = self.state();
        if let Some(existing) = state.existing_by_key(&new) {
            return Ok(Created {
                value: existing,
                created: false,
            });
        }
        state.check_new_task(&new, &[])?;
        Ok(Created {
            value: state.insert_task(new, now),
            created: true,
        })
    }

    async fn create_tasks(&self, batch: Vec<NewTask>, now: Timestamp) -> Result<Vec<Task>> {
        change::validate_task_batch(&batch)?;
        let mut state = self.state();
        for (index, new) in batch.iter().enumerate() {
            state.check_new_task(new, &[]).map_err(|err| match err {
                Error::InvalidInput { field, message } => {
                    Error::invalid(format!("tasks[{index}].{field}"), message)
                }
                other => other,
            })?;
        }
        Ok(batch
            .into_iter()
            .map(|new| match state.existing_by_key(&new) {
                Some(existing) => existing,
                None => state.insert_task(new, now),
            })
            .collect())
    }

    async fn get_task(&self, id: TaskId) -> Result<Task> {
        self.state().task(id).cloned()
    }

    async fn get_tasks(&self, ids: &[TaskId]) -> Result<Vec<Task>> {
        check_lookup_size(ids)?;
        Ok(existing(&self.state().tasks, ids))
    }

    async fn task_activity_counts(&self, ids: &[TaskId]) -> Result<Vec<TaskActivityCounts>> {
        check_lookup_size(ids)?;
        let state = self.state();
        let mut counts: HashMap<TaskId, TaskActivityCounts> = ids
            .iter()
            .filter(|id| state.tasks.contains_key(id))
            .map(|id| (*id, TaskActivityCounts::none(*id)))
            .collect();
        for (task, results) in &state.verifications {
            if let Some(entry) = counts.get_mut(task) {
                entry.verification_results = results.len() as u64;
            }
        }
        for log in state.logs.values().flatten() {
            if let Some(entry) = log.task_id.and_then(|task| counts.get_mut(&task)) {
                entry.logs += 1;
            }
        }
        for exception in state.exceptions.values() {
            if let Some(entry) = exception.task_id.and_then(|task| counts.get_mut(&task)) {
                entry.exceptions += 1;
            }
        }
        Ok(counts.into_values().collect())
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Page<Task>> {
        query.validate()?;
        let state = self.state();
        let needle = query.search_needle();
        let mut tasks: Vec<Task> = state
            .tasks
            .values()
            .filter(|t| query.status.is_none_or(|s| t.status == s))
            .filter(|t| query.priority.is_none_or(|p| t.priority == p))
            .filter(|t| {
                needle
                    .as_deref()
                    .is_none_or(|n| ordering::matches_search(t, n))
            })
            .cloned()
            .collect();
        tasks.sort_by(|a, b| ordering::compare_tasks(a, b, query.sort_by, query.sort_order));
        Ok(page(tasks, query.limit, query.offset))
    }

    async fn edit_task(&self, id: TaskId, edit: TaskEdit, now: Timestamp) -> Result<Task> {
        let mut state = self.state();
        let task = state.task(id)?.clone();
        let change = change::plan_task_edit(task, edit, now)?;
        let result = change.task.clone();
        state.persist(change, now);
        result.ok_or_else(|| Error::backend("edit planned no task"))
    }

    async fn apply_task_action(
        &self,
        id: TaskId,
        action: TaskAction,
        lease: Option<LeaseRef>,
        now: Timestamp,
    ) -> Result<Task> {
        let mut state = self.state();
        let task = state.task(id)?.clone();
        let context = state.task_context(task, &action, now)?;
        let change = change::plan_task_action(context, action, lease.as_ref(), now)?;
        let result = change.task.clone();
        state.persist(change, now);
        result.ok_or_else(|| Error::backend("task action planned no task"))
    }

    async fn end_attempt(&self, lease: LeaseRef, end: AttemptEnd, now: Timestamp) -> Result<Task> {
        end.validate()?;
        let mut state = self.state();
        let task = state.task(lease.task_id)?.clone();
        let unresolved = end
            .follow_up_exception()
            .and_then(|kind| state.open_exception(kind, task.id).cloned());
        let context = state.task_context(task, &end.action, now)?;
        let change = change::plan_attempt_end(context, end, unresolved, &lease, now)?;
        let result = change.task.clone();
        state.persist(change, now);
        result.ok_or_else(|| Error::backend("an attempt's end planned no task"))
    }

    async fn delete_task(&self, id: TaskId, now: Timestamp) -> Result<()> {
        let mut state = self.state();
        let task = state.task(id)?.clone();
        let dependents: Vec<TaskId> = state
            .tasks
            .values()
            .filter(|t| t.depends_on.contains(&id))
            .map(|t| t.id)
            .collect();
        let event = change::check_deletable(&task, &dependents)?;
        state.tasks.remove(&id);
        if let Some(key) = &task.idempotency_key {
            state.idempotency_keys.remove(key);
        }
        state.attempts.remove(&id);
        state.verifications.remove(&id);
        state.exceptions.retain(|_, e| e.task_id != Some(id));
        for logs in state.logs.values_mut() {
            logs.retain(|log| log.task_id != Some(id));
        }
        state.append_events(vec![event], now);
        Ok(())
    }

    async fn list_attempts(&self, task: TaskId) -> Result<Vec<TaskAttempt>> {
        let state = self.state();
        state.task(task)?;
        let mut attempts = state.attempts.get(&task).cloned().unwrap_or_default();
        attempts.sort_by_key(|a| a.attempt_number);
        Ok(attempts)
    }

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

    async fn get_agent(&self, id: AgentId) -> Result<Agent> {
        self.state().agent(id).cloned()
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

    async fn get_agents(&self, ids: &[AgentId]) -> Result<Vec<Agent>> {
        check_lookup_size(ids)?;
        Ok(existing(&self.state().agents, ids))
    }

    async fn list_agents(&self, query: &AgentQuery) -> Result<Page<Agent>> {
        query.validate()?;
        let state = self.state();
        let mut agents: Vec<Agent> = state
            .agents
            .values()
            .filter(|a| query.status.is_none_or(|s| a.status == s))
            .filter(|a| {
                query
                    .runner_session_id
                    .is_none_or(|s| a.runner_session_id == Some(s))
            })
            .cloned()
            .collect();
        agents.sort_by_key(|a| std::cmp::Reverse((a.created_at, a.id)));
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

    async fn create_runner_session(
        &self,
        new: NewRunnerSession,
        now: Timestamp,
    ) -> Result<RunnerSession> {
        new.validate()?;
        let mut state = self.state();
        if state
            .sessions
            .values()
            .any(|s| s.token_hash == new.token_hash)
        {
            return Err(Error::conflict(
                "a runner session with this token already exists",
            ));
        }
        let session = new.into_session(RunnerSessionId::new(), now);
        state.sessions.insert(session.id, session.clone());
        state.append_events(vec![change::runner_connected_event(&session)], now);
        Ok(session)
    }

    async fn admin_token_hash(&self) -> Result<Option<String>> {
        Ok(self.state().admin_token_hash.clone())
    }

    async fn save_admin_token_hash(&self, hash: &str, _now: Timestamp) -> Result<String> {
        check_token_hash(hash)?;
        Ok(self
            .state()
            .admin_token_hash
            .get_or_insert_with(|| hash.to_owned())
            .clone())
    }

    async fn create_setup_token(
        &self,
        token_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        check_token_hash(token_hash)?;
        let mut state = self.state();
        state.setup_tokens.retain(|_, expiry| *expiry > now);
        if state.setup_tokens.contains_key(token_hash) {
            return Err(Error::conflict("a setup token with this hash exists"));
        }
        state.setup_tokens.insert(token_hash.to_owned(), expires_at);
        Ok(())
    }

    async fn redeem_setup_token(&self, token_hash: &str, now: Timestamp) -> Result<bool> {
        Ok(self
            .state()
            .setup_tokens
            .remove(token_hash)
            .is_some_and(|expiry| expiry > now))
    }

    async fn get_runner_session(&self, id: RunnerSessionId) -> Result<RunnerSession> {
        self.state().session(id).cloned()
    }

    async fn find_runner_session(&self, token_hash: &str) -> Result<Option<RunnerSession>> {
        Ok(self
            .state()
            .sessions
            .values()
            .find(|s| s.token_hash == token_hash)
            .cloned())
    }

    async fn list_runner_sessions(&self) -> Result<Vec<RunnerSession>> {
        let mut sessions: Vec<_> = self.state().sessions.values().cloned().collect();
        sessions.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
        Ok(sessions)
    }

    async fn apply_runner_session_event(
        &self,
        id: RunnerSessionId,
        event: RunnerSessionEvent,
        now: Timestamp,
    ) -> Result<RunnerSession> {
        let mut state = self.state();
        let session = state.session(id)?.clone();
        let change = change::plan_runner_session_event(session, event, now)?;
        let result = change.runner_session.clone();
        state.persist(change, now);
        result.ok_or_else(|| Error::backend("runner event planned no session"))
    }

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
        let mut matching: Vec<&AgentLog> = state
            .logs
            .iter()
            .filter(|(agent, _)| query.agent_id.is_none_or(|a| a == **agent))
            .flat_map(|(_, logs)| logs)
            .filter(|log| query.task_id.is_none_or(|t| log.task_id == Some(t)))
            .filter(|log| query.log_type.is_none_or(|t| log.log_type == t))
            .collect();
        let total_count = matching.len() as u64;
        matching.sort_by_key(|log| std::cmp::Reverse((log.created_at, log.id)));
        let logs: Vec<AgentLog> = matching
            .into_iter()
            .filter(|log| {
                query
                    .before
                    .is_none_or(|c| (log.created_at, log.id) < (c.created_at, c.id))
            })
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

    async fn stats(&self, since: Timestamp) -> Result<SystemStats> {
        let state = self.state();
        let mut stats = SystemStats::default();
        for task in state.tasks.values() {
            *stats.tasks_by_status.entry(task.status).or_default() += 1;
            match task.status {
                TaskStatus::Completed if task.completed_at.is_some_and(|at| at >= since) => {
                    stats.completed_since += 1;
                }
                TaskStatus::Failed if task.updated_at >= since => stats.failed_since += 1,
                _ => {}
            }
        }
        for agent in state.agents.values() {
            *stats.agents_by_status.entry(agent.status).or_default() += 1;
        }
        for exception in state.exceptions.values() {
            stats.exceptions_total += 1;
            if exception.status == ExceptionStatus::Open {
                *stats
                    .open_exceptions_by_severity
                    .entry(exception.severity)
                    .or_default() += 1;
            }
        }
        let mut finished: Vec<(Timestamp, Timestamp)> = state
            .tasks
            .values()
            .filter(|task| task.status == TaskStatus::Completed)
            .filter_map(|task| Some((task.completed_at?, task.assigned_at?)))
            .collect();
        finished.sort_by_key(|(completed, _)| std::cmp::Reverse(*completed));
        let durations: Vec<i64> = finished
            .iter()
            .take(COMPLETION_SAMPLE as usize)
            .map(|(completed, assigned)| completed.as_millis() - assigned.as_millis())
            .collect();
        stats.mean_completion_ms = SystemStats::mean(&durations);
        Ok(stats)
    }

    async fn last_event_seq(&self) -> Result<i64> {
        Ok(self.state().last_seq)
    }

    async fn events_since(&self, after: i64, limit: u32) -> Result<Vec<Event>> {
        change::check_events_limit(limit)?;
        let state = self.state();
        let start = state.events.partition_point(|e| e.seq <= after);
        Ok(state.events[start..]
            .iter()
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn claim(&self, request: ClaimRequest, now: Timestamp) -> Result<Vec<Claim>> {
        self.claim_work(request, now)
    }

    async fn heartbeat(
        &self,
        lease: LeaseRef,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<HeartbeatAck> {
        self.heartbeat_lease(lease, ttl, now)
    }

    async fn expire_leases(&self, now: Timestamp, limit: u32) -> Result<Vec<Task>> {
        self.expire(now, limit)
    }

    async fn mark_inactive_runners(
        &self,
        seen_before: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<RunnerSession>> {
        self.inactive_runners(seen_before, now)
    }

    async fn stalled_tasks(&self, quiet_since: Timestamp, now: Timestamp) -> Result<Vec<Task>> {
        Ok(self.stalled(quiet_since, now))
    }

    async fn work_due_in(&self, now: Timestamp) -> Result<Option<Duration>> {
        let state = self.state();
        let task_due = state
            .tasks
            .values()
            .filter(|t| t.status == TaskStatus::Queued)
            .filter_map(|t| t.not_before);
        let lock_due = state.locks.values().map(|lock| lock.expires_at);
        let due = task_due.chain(lock_due).filter(|at| *at > now).min();
        Ok(due.map(|at| at.since(now)))
    }

    async fn blocked_tasks(&self, limit: u32) -> Result<Vec<(Task, TaskId, TaskStatus)>> {
        Ok(self.blocked(limit))
    }

    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool> {
        Ok(self.take_lease(name, holder, ttl, now))
    }

    async fn prune(&self, policy: &RetentionPolicy, now: Timestamp) -> Result<PruneReport> {
        Ok(self.prune_history(policy, now))
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.committed.subscribe()
    }
}
