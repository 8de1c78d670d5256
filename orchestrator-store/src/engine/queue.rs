//! The SQL stores' [`QueueStore`]: claims, heartbeats, and when work next comes due.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::change::{self, LeaseRef, TaskAction, TaskContext};
use orchestrator_core::coordination::{Claim, ClaimRequest, HeartbeatAck};
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::TaskId;
use orchestrator_core::lock::{LockPath, parse_paths};
use orchestrator_core::model::{Agent, LockMode, Task};
use orchestrator_core::state::agent::{self as agent_state, AgentEvent};
use orchestrator_core::store::QueueStore;

use super::task_change::task_context;
use super::{SqlStore, Tx, found, locked_task, write_change};
use crate::dialect::{Dialect, Exec};
use crate::rows::{agent_from_row, task_from_row};
use crate::sql::locks as sql_locks;
use crate::sql::read::{self, Lock};

/// Candidates looked at in a claim's second round, per slot to fill (the first round looks
/// at one per slot: the head of the queue is usually free). Every later round looks at
/// twice as many as the one before, up to [`MAX_CANDIDATES_PER_ROUND`], until the slots
/// are filled or the queue runs out: however many tasks wait behind held locks, a task
/// that can be had is found.
const CANDIDATES_PER_SLOT: u32 = 4;

/// The most candidates one round reads.
const MAX_CANDIDATES_PER_ROUND: u32 = 512;

impl<D: Dialect> SqlStore<D> {
    /// Assigns `task` to `agent` inside `tx`; returns the claim. `None` when, for a queue
    /// claim (`named` false), another claimer is taking overlapping paths at this moment
    /// or someone holds them.
    async fn assign(
        tx: &mut Tx<D>,
        task: Task,
        slot: &Agent,
        request: &ClaimRequest,
        now: Timestamp,
        named: bool,
    ) -> Result<Option<Claim>> {
        let agent = slot.id;
        let paths = parse_paths(&task.files_hint, "filesHint")?;
        let mut lock_conflicts = Vec::new();
        if !paths.is_empty() {
            let guards = sql_locks::guard_keys(&paths);
            if !D::guard_lock_keys(tx, &guards, named).await? {
                return Ok(None);
            }
            lock_conflicts =
                sql_locks::conflicts::<D>(tx, &paths, LockMode::Exclusive, Some(agent), now)
                    .await?;
            if !lock_conflicts.is_empty() && !named {
                return Ok(None);
            }
        }
        let unfinished_dependencies = if named {
            read::unfinished_dependencies::<D>(tx, task.id).await?
        } else {
            Vec::new()
        };
        let context = TaskContext {
            task,
            agent: Some(slot.clone()),
            attempt: None,
            unfinished_dependencies,
            lock_conflicts,
        };
        let action = TaskAction::Assign {
            agent_id: agent,
            runner_session_id: request.runner_session_id,
            lease_ttl: request.lease_ttl,
        };
        let change = change::plan_task_action(context, action, None, now)?;
        let locks = write_change(tx, &change, now).await?;
        let assigned = change
            .task
            .ok_or_else(|| Error::backend("claim planned no task"))?;
        let lease = LeaseRef {
            task_id: assigned.id,
            attempt: assigned.attempt,
            lease_token: assigned
                .lease_token
                .ok_or_else(|| Error::backend("claim left no lease"))?,
        };
        let claim = Claim {
            task: assigned,
            agent_id: agent,
            lease,
            locks,
        };
        Ok(Some(claim))
    }

    /// The claims of `request` made in `tx`, not committed yet. `prefetched` holds the
    /// candidates a read outside the transaction found (where the dialect looks before it
    /// writes), which are taken if they are still claimable; without it, the first
    /// candidates are read here.
    async fn claim_in(
        tx: &mut Tx<D>,
        request: &ClaimRequest,
        now: Timestamp,
        prefetched: Option<Vec<TaskId>>,
    ) -> Result<(Vec<Claim>, bool)> {
        let slots_wanted = request.agents.len() as u32;
        // The slots in one locked read (sorted, so concurrent claimers lock in one order),
        // and for a queue claim the first round of candidates (one per slot and one more,
        // which tells whether work is left for others: the head of the queue is usually
        // free), in one script.
        let mut script = vec![read::agents_by_id_part::<D>(
            &request.agents,
            Lock::ForUpdate,
        )];
        let mut per_round = slots_wanted + 1;
        if request.task_id.is_none() {
            script.push(match &prefetched {
                Some(ids) => {
                    per_round = u32::try_from(ids.len()).unwrap_or(u32::MAX);
                    read::claimable_among_part::<D>(now, &request.agents, ids)
                }
                None => read::claimable_part::<D>(now, &request.agents, per_round),
            });
        }
        let mut sets = tx.fetch_script(script).await?.into_iter();
        let slots = read::decode_all(&sets.next().unwrap_or_default(), agent_from_row)?;
        let mut candidates = read::decode_all(&sets.next().unwrap_or_default(), task_from_row)?;
        let idle = idle_slots(slots, request)?;
        if let Some(id) = request.task_id {
            let task = locked_task(tx, id).await?;
            let assigned = Self::assign(tx, task, &idle[0], request, now, true).await?;
            let claim = assigned.ok_or_else(|| Error::backend("a named claim was passed over"))?;
            return Ok((vec![claim], false));
        }

        let mut claims = Vec::new();
        // Candidates seen and not taken: claimable by other claims unless this one's
        // grants now stand in their way.
        let mut left = Vec::new();
        let mut slots = idle.iter().peekable();
        for round in 1.. {
            // A prefetched first round counts as full: the queue may hold more than the
            // read outside the transaction saw.
            let prefetched_round = round == 1 && prefetched.is_some();
            let exhausted = !prefetched_round && candidates.len() < per_round as usize;
            let after = candidates.last().cloned();
            // The database passed over tasks a live lock stands in the way of; `assign`
            // checks each candidate's paths again for its slot, against this round's
            // grants too.
            let mut round_candidates = candidates.into_iter();
            while let Some(task) = round_candidates.next() {
                let Some(slot) = slots.peek().copied() else {
                    left.push(task);
                    left.extend(round_candidates);
                    break;
                };
                let task = match round {
                    // The first round locked its rows, or was read again in this
                    // transaction; where a write transaction excludes every other writer,
                    // nothing read since can have changed.
                    1 => task,
                    _ if !D::LOCKS_ROWS => task,
                    // Read without row locks: take the row now, if it is still to be had.
                    _ => match read::claimable_task::<D>(tx, now, task.id).await? {
                        Some(task) => task,
                        None => continue,
                    },
                };
                match Self::assign(tx, task.clone(), slot, request, now, false).await? {
                    Some(claim) => {
                        claims.push(claim);
                        slots.next();
                    }
                    None => left.push(task),
                }
            }
            if exhausted || slots.peek().is_none() {
                break;
            }
            per_round = match round {
                1 => CANDIDATES_PER_SLOT * slots_wanted,
                _ => (per_round * 2).min(MAX_CANDIDATES_PER_ROUND),
            };
            candidates = read::claimable::<D>(tx, now, &request.agents, after, per_round).await?;
        }
        let maybe_more = any_free_of(&left, &claims)?;
        Ok((claims, maybe_more))
    }
}

/// Whether one of `tasks` is free of the locks `claims` took. Tasks a read did not reach
/// count as taken: a claim that leaves only tasks its own grants block hands the turn to
/// no one, and work further down the queue waits for the next commit that may free work
/// (or a waiting claim's next look).
fn any_free_of(tasks: &[Task], claims: &[Claim]) -> Result<bool> {
    let granted = claims
        .iter()
        .flat_map(|claim| &claim.locks)
        .map(|lock| LockPath::parse(&lock.file_path))
        .collect::<Result<Vec<_>>>()?;
    for task in tasks {
        let paths = parse_paths(&task.files_hint, "filesHint")?;
        if !paths
            .iter()
            .any(|path| granted.iter().any(|held| held.overlaps(path)))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

impl<D: Dialect> SqlStore<D> {
    /// The ids of the first claimable tasks for `request`'s slots (a few per slot, a
    /// margin for claims racing for them), read outside any write transaction; `None`
    /// when nothing is claimable, once the slots are known to be able to take work.
    async fn claimable_now(
        &self,
        request: &ClaimRequest,
        now: Timestamp,
    ) -> Result<Option<Vec<TaskId>>> {
        let mut conn = self.read().await?;
        let now = self.now(&mut conn, now).await?;
        let limit = CANDIDATES_PER_SLOT * request.agents.len() as u32;
        let found = read::claimable::<D>(&mut conn, now, &request.agents, None, limit).await?;
        if found.is_empty() {
            let slots = read::agents_by_id::<D>(&mut conn, &request.agents, Lock::None).await?;
            idle_slots(slots, request)?;
            return Ok(None);
        }
        Ok(Some(found.into_iter().map(|task| task.id).collect()))
    }
}

/// The request's slots, in the order it gave them, each able to take a task; `NotFound`
/// for one that does not exist, `InvalidTransition` for one that is busy.
fn idle_slots(mut slots: Vec<Agent>, request: &ClaimRequest) -> Result<Vec<Agent>> {
    let mut idle = Vec::with_capacity(request.agents.len());
    for agent in &request.agents {
        let position = slots.iter().position(|slot| slot.id == *agent);
        let slot = found(position.map(|i| slots.swap_remove(i)), "agent", agent)?;
        agent_state::transition(slot.status, AgentEvent::Assign)?;
        idle.push(slot);
    }
    Ok(idle)
}

#[async_trait]
impl<D: Dialect> QueueStore for SqlStore<D> {
    async fn claim(&self, request: ClaimRequest, now: Timestamp) -> Result<Vec<Claim>> {
        Ok(self.claim_looking_ahead(request, now).await?.0)
    }

    async fn claim_looking_ahead(
        &self,
        request: ClaimRequest,
        now: Timestamp,
    ) -> Result<(Vec<Claim>, bool)> {
        request.validate()?;
        let settings = match request.task_id {
            None => D::QUEUE_CLAIM_SETTINGS,
            Some(_) => "",
        };
        let started = Instant::now();
        if request.task_id.is_none() {
            self.reveal_for(&request, now).await?;
        }
        // Where one writer excludes the others (SQLite), the queue is searched on a read
        // connection first, so that other writes (completions, heartbeats) do not wait
        // behind the search; with nothing to claim, the writer is not taken at all.
        let prefetched = match request.task_id {
            None if !D::LOCKS_ROWS => match self.claimable_now(&request, now).await? {
                Some(ids) => Some(ids),
                None => {
                    self.hide_after_slow_claim(started.elapsed(), now).await;
                    return Ok((Vec::new(), false));
                }
            },
            _ => None,
        };
        let (mut tx, now) = self.begin_with(settings, now).await?;
        let outcome = Self::claim_in(&mut tx, &request, now, prefetched).await;
        // A slot that cannot take work, or a named task that cannot be had, is found after
        // candidates were locked: they are free again when the caller hears.
        let (tx, (claims, maybe_more)) = tx.check(outcome).await?;
        self.commit(tx).await?;
        if request.task_id.is_none() {
            self.hide_after_slow_claim(started.elapsed(), now).await;
        }
        Ok((claims, maybe_more))
    }

    async fn heartbeat(
        &self,
        lease: LeaseRef,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<HeartbeatAck> {
        let id = lease.task_id;
        if D::LOCKS_ROWS {
            let plan = |context, now| change::plan_heartbeat(context, &lease, ttl, now);
            if let Some(ack) = self.write_unlocked(id, now, plan).await? {
                return Ok(ack);
            }
        }
        let (mut tx, now) = self.begin_at(now).await?;
        let context = task_context::<D>(&mut tx, id, &TaskAction::Start, now).await?;
        let context = found(context, "task", id)?;
        let (tx, (change, ack)) = tx
            .check(change::plan_heartbeat(context, &lease, ttl, now))
            .await?;
        self.persist(tx, &change, now).await?;
        Ok(ack)
    }

    async fn work_due_in(&self, now: Timestamp) -> Result<Option<Duration>> {
        let mut conn = self.read().await?;
        let now = self.now(&mut conn, now).await?;
        let due = read::next_due::<D>(&mut conn, now).await?;
        Ok(due.map(|at| at.since(now)))
    }
}
