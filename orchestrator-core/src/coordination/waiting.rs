//! [`ClaimRoom`]: the claims of one process that wait for work, taking turns.
//!
//! A commit that may have made work claimable wakes one waiting claim, not all of them.
//! If it takes work and its search saw more, it wakes the next one, and so on while work
//! is left: a hand-off, so that a commit never sends every waiter to search the queue at
//! once, where all but one would find nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{Claim, ClaimRequest, SlotReservations, may_free_work};
use crate::error::Result;
use crate::store::Store;
use crate::time::Clock;

/// Events the room reads per commit; a full page counts as a reason to wake a claim.
const WAKE_EVENTS_PAGE: u32 = 500;

/// Where the waiting claims of one process over one store take turns. One task follows
/// the store's commits and, while claims wait, reads each commit's events once; a commit
/// with an event that may free work (see [`may_free_work`]) gives the next waiting claim
/// its turn.
#[derive(Debug)]
pub struct ClaimRoom {
    store: Arc<dyn Store>,
    turns: Arc<Turns>,
    follower: JoinHandle<()>,
    /// The slots the claims in the room are filling.
    pub slots: SlotReservations,
}

/// The turns of the waiting claims.
#[derive(Debug, Default)]
struct Turns {
    /// One permit per turn: a waiting claim is woken by one, and a turn given while none
    /// waits is kept for the next.
    turn: Notify,
    /// Claims in line (looking or waiting).
    waiting: AtomicUsize,
    /// The newest event whose commit was weighed; `None` while no claim is in line.
    seen: Mutex<Option<i64>>,
}

/// A claim's place in line, given up when dropped.
struct InLine<'a>(&'a Turns);

impl<'a> InLine<'a> {
    /// Joins the line. The first in line reads where the event log stands, so that the
    /// commits after it are weighed for it; those before it, its own look at the queue
    /// sees.
    async fn join(turns: &'a Turns, store: &dyn Store) -> Result<InLine<'a>> {
        let in_line = Self(turns);
        turns.waiting.fetch_add(1, Ordering::SeqCst);
        if turns
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
        {
            let newest = store.last_event_seq().await?;
            turns
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(newest);
        }
        Ok(in_line)
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for ClaimRoom {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl ClaimRoom {
    /// A room over `store`, following its commits from now on. Needs a tokio runtime.
    pub fn new(store: Arc<dyn Store>) -> Self {
        let turns = Arc::new(Turns::default());
        let follower = tokio::spawn(follow_commits(store.clone(), turns.clone()));
        Self {
            store,
            turns,
            follower,
            slots: SlotReservations::default(),
        }
    }

    /// Claims like [`QueueStore::claim`](crate::store::QueueStore::claim), but when
    /// nothing is claimable waits up to `wait` for its turn: a commit that may have made
    /// work claimable (a new task, a released lock, a finished dependency, another claim
    /// taking work), a delayed task coming due, or a lock running out (before the
    /// supervisor sweeps it). Returns an empty list when `wait` passes without work.
    pub async fn claim_waiting(
        &self,
        clock: &dyn Clock,
        request: ClaimRequest,
        wait: Duration,
    ) -> Result<Vec<Claim>> {
        let deadline = tokio::time::Instant::now() + wait;
        let _in_line = InLine::join(&self.turns, self.store.as_ref()).await?;
        loop {
            // In line for a turn before looking, so that a commit while this claim looks
            // still wakes it.
            let turn = self.turns.turn.notified();
            tokio::pin!(turn);
            turn.as_mut().enable();
            let (claims, maybe_more) = self
                .store
                .claim_looking_ahead(request.clone(), clock.now())
                .await?;
            if !claims.is_empty() {
                // The next claim in line gets the turn only if this one's search saw work
                // it left: otherwise it would only search in vain.
                if maybe_more {
                    self.turns.turn.notify_one();
                }
                return Ok(claims);
            }
            let due = self.store.work_due_in(clock.now()).await?;
            let look_again = due.map_or(deadline, |due| {
                deadline.min(tokio::time::Instant::now() + due)
            });
            match tokio::time::timeout_at(look_again, turn).await {
                Ok(()) => {}
                // A delayed task came due, or a lock ran out.
                Err(_) if look_again < deadline => {}
                Err(_) => return Ok(Vec::new()),
            }
        }
    }
}

/// Follows the store's commits and gives a turn for each that may have freed work. Events
/// are read (once, for every claim in line) only while claims are in line.
async fn follow_commits(store: Arc<dyn Store>, turns: Arc<Turns>) {
    let mut commits = store.subscribe();
    commits.borrow_and_update();
    while commits.changed().await.is_ok() {
        commits.borrow_and_update();
        if turns.waiting.load(Ordering::SeqCst) == 0 {
            *turns.seen.lock().unwrap_or_else(|e| e.into_inner()) = None;
            continue;
        }
        let Some(after) = *turns.seen.lock().unwrap_or_else(|e| e.into_inner()) else {
            // The first claim in line is still reading where the log stands: this commit
            // may be one its look at the queue misses.
            turns.turn.notify_one();
            continue;
        };
        let events = match store.events_since(after, WAKE_EVENTS_PAGE).await {
            Ok(events) => events,
            Err(_) => {
                turns.turn.notify_one();
                continue;
            }
        };
        let Some(last) = events.last() else {
            // Pruning commits without events, and may have taken the events of the commit
            // that came before: a claim looks again.
            turns.turn.notify_one();
            continue;
        };
        {
            let mut seen = turns.seen.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(seen) = seen.as_mut() {
                *seen = (*seen).max(last.seq);
            }
        }
        if events.len() == WAKE_EVENTS_PAGE as usize || events.iter().any(may_free_work) {
            turns.turn.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::InMemoryStore;
    use crate::ids::AgentId;
    use crate::model::{NewAgent, NewTask, Task};
    use crate::time::{ManualClock, SystemClock, Timestamp};

    /// An in-memory store with one agent slot.
    async fn store_with_slot(clock: &dyn Clock) -> (Arc<dyn Store>, crate::model::Agent) {
        let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
        let agent = store
            .create_agent(NewAgent::default(), clock.now())
            .await
            .unwrap();
        (store, agent)
    }

    /// A queue claim for `agent`'s slot.
    fn one_slot(agent: AgentId) -> ClaimRequest {
        ClaimRequest {
            agents: vec![agent],
            runner_session_id: None,
            task_id: None,
            lease_ttl: Duration::from_secs(60),
        }
    }

    /// A holder's lock on `src/` for `ttl` and a queued task that needs `src/main.rs`;
    /// returns the holder and the task.
    async fn task_behind_a_lock(
        store: &Arc<dyn Store>,
        clock: &dyn Clock,
        ttl: Duration,
    ) -> (crate::model::Agent, Task) {
        use crate::lock::LockRequest;
        use crate::model::LockMode;

        let holder = store
            .create_agent(NewAgent::default(), clock.now())
            .await
            .unwrap();
        let lock = LockRequest {
            holder: holder.id,
            task_id: None,
            paths: vec!["src/".into()],
            mode: LockMode::Exclusive,
            ttl,
        };
        store.acquire(lock, clock.now()).await.unwrap();
        let mut new = NewTask::new("needs src", "d");
        new.files_hint = vec!["src/main.rs".into()];
        let task = store.create_task(new, clock.now()).await.unwrap().value;
        (holder, task)
    }

    /// A claim for `slot` waiting up to a minute on `clock`, in a task of its own.
    fn spawn_waiter(
        room: &Arc<ClaimRoom>,
        clock: &Arc<ManualClock>,
        slot: AgentId,
    ) -> JoinHandle<Result<Vec<Claim>>> {
        let (room, clock) = (room.clone(), clock.clone());
        tokio::spawn(async move {
            room.claim_waiting(&*clock, one_slot(slot), Duration::from_secs(60))
                .await
        })
    }

    #[tokio::test]
    async fn a_waiting_claim_wakes_when_a_task_arrives() {
        let clock = SystemClock;
        let (store, agent) = store_with_slot(&clock).await;
        let room = Arc::new(ClaimRoom::new(store.clone()));
        let request = one_slot(agent.id);
        let empty = room
            .claim_waiting(&clock, request.clone(), Duration::from_millis(20))
            .await
            .unwrap();
        assert!(empty.is_empty(), "nothing to claim, and the wait ends");

        let waiter = {
            let room = room.clone();
            let request = request.clone();
            tokio::spawn(async move {
                room.claim_waiting(&SystemClock, request, Duration::from_secs(30))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "it waits instead of returning");
        let task = store
            .create_task(NewTask::new("late", "d"), clock.now())
            .await
            .unwrap()
            .value;
        let claims = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the commit")
            .unwrap()
            .unwrap();
        assert_eq!(claims[0].task.id, task.id);
    }

    #[tokio::test]
    async fn a_waiting_claim_sleeps_through_logs_and_wakes_when_a_lock_is_released() {
        use crate::model::{LogType, NewAgentLog};

        // The waiter's clock moves only when the test moves it.
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000).unwrap()));
        let (store, slot) = store_with_slot(&*clock).await;
        let (holder, task) = task_behind_a_lock(&store, &*clock, Duration::from_secs(600)).await;
        let room = Arc::new(ClaimRoom::new(store.clone()));
        let waiter = spawn_waiter(&room, &clock, slot.id);
        // A task that comes due while the waiter sleeps, with no commit to say so: a
        // waiter that claimed again on any commit would take it at the log entry below.
        let mut soon = NewTask::new("soon", "d");
        soon.not_before = Some(clock.now().add(Duration::from_secs(10)));
        let later = clock.now().add(Duration::from_millis(1));
        store.create_task(soon, later).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "nothing was claimable yet");
        clock.advance(Duration::from_secs(20));
        let log = NewAgentLog {
            agent_id: holder.id,
            task_id: None,
            log_type: LogType::Info,
            content: "still editing".into(),
            metadata: None,
        };
        store.append_logs(vec![log], clock.now()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a log entry frees nothing");
        store.release(holder.id, None, clock.now()).await.unwrap();
        let claims = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the release")
            .unwrap()
            .unwrap();
        assert_eq!(claims[0].task.id, task.id, "the older task comes first");
    }

    #[tokio::test]
    async fn a_waiting_claim_looks_again_when_a_delayed_task_comes_due() {
        let clock = SystemClock;
        let (store, agent) = store_with_slot(&clock).await;
        let mut delayed = NewTask::new("retry later", "d");
        delayed.not_before = Some(clock.now().add(Duration::from_millis(300)));
        let task = store.create_task(delayed, clock.now()).await.unwrap().value;
        let request = one_slot(agent.id);
        let room = ClaimRoom::new(store.clone());
        let waiting = room.claim_waiting(&clock, request, Duration::from_secs(60));
        let claims = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("claimed when it came due, without a commit to wake it")
            .unwrap();
        assert_eq!(claims[0].task.id, task.id);
    }

    #[tokio::test]
    async fn a_waiting_claim_looks_again_when_a_lock_runs_out() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_millis(1_000_000).unwrap()));
        let (store, slot) = store_with_slot(&*clock).await;
        let (_, task) = task_behind_a_lock(&store, &*clock, Duration::from_secs(5)).await;
        // The lock runs out 300 ms after the waiter starts; the store's clock then passes
        // that instant while the waiter sleeps, with no commit to say so.
        clock.advance(Duration::from_millis(4_700));
        let room = Arc::new(ClaimRoom::new(store.clone()));
        let waiter = spawn_waiter(&room, &clock, slot.id);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the lock still holds the task back");
        clock.advance(Duration::from_secs(1));
        let claims = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("claimed when the lock ran out")
            .unwrap()
            .unwrap();
        assert_eq!(claims[0].task.id, task.id);
    }
}
