//! [`InMemoryStore`]: the reference [`Store`](crate::Store), holding everything in one
//! mutex-guarded state. Every operation runs under the lock, so each is atomic and
//! serialized. The state and what every aggregate shares are here; each aggregate's
//! trait is implemented in a module of its own.

mod agents;
mod events;
mod evidence;
mod exceptions;
mod housekeeping;
mod locks;
mod ordering;
mod queue;
mod runners;
mod tasks;
mod usage;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use crate::change::{Change, TaskAction, TaskContext};
use crate::error::{Error, Result};
use crate::ids::{AgentId, ExceptionId, FileLockId, RunnerSessionId, TaskId};
use crate::model::{
    Agent, AgentLog, AttemptChanges, Event, Exception, ExceptionType, FileLock, NewEvent,
    NewException, Page, RunnerSession, Task, TaskAttempt, TaskStatus, VerificationResult,
};
use crate::time::Timestamp;

/// The reference [`Store`](crate::Store): all state in memory, nothing survives the process.
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
    /// The task created with each idempotency key, and what its creation asked for.
    idempotency_keys: HashMap<String, (TaskId, String)>,
    attempts: HashMap<TaskId, Vec<TaskAttempt>>,
    agents: HashMap<AgentId, Agent>,
    sessions: HashMap<RunnerSessionId, RunnerSession>,
    logs: HashMap<AgentId, Vec<AgentLog>>,
    /// The last number given to an entry of each agent's log.
    log_sequences: HashMap<AgentId, u64>,
    verifications: HashMap<TaskId, Vec<VerificationResult>>,
    attempt_changes: HashMap<TaskId, Vec<AttemptChanges>>,
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
            self.keep_log(log);
        }
        self.append_events(events, now);
        count
    }

    /// Keeps `log` at the end of its agent's log, numbered (see [`AgentLog::sequence`]),
    /// with its task's current attempt if it does not say which.
    fn keep_log(&mut self, mut log: AgentLog) {
        let last = self.log_sequences.entry(log.agent_id).or_default();
        *last += 1;
        log.sequence = *last;
        if log.attempt.is_none()
            && let Some(task) = log.task_id.and_then(|id| self.tasks.get(&id))
        {
            log.attempt = Some(task.attempt);
        }
        self.logs.entry(log.agent_id).or_default().push(log);
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
        if let Some(changes) = change.attempt_changes {
            self.attempt_changes
                .entry(changes.task_id)
                .or_default()
                .push(changes);
        }
        for log in change.logs {
            self.keep_log(log);
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

impl State {
    /// The context of `action` on task `id`, read from the state.
    fn context_for(&self, id: TaskId, action: &TaskAction, now: Timestamp) -> Result<TaskContext> {
        let task = self.task(id)?.clone();
        self.task_context(task, action, now)
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
