//! [`SlotReservations`]: the agent slots that claims of this process are filling, per
//! runner session, so that two claims of one session at once take different slots
//! instead of colliding on the same one. Claims of different sessions never wait for
//! each other here.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::Result;
use crate::ids::{AgentId, RunnerSessionId};

/// Slots claims of this process are filling, by session.
#[derive(Debug, Default)]
pub struct SlotReservations {
    sessions: Mutex<HashMap<RunnerSessionId, Arc<SessionSlots>>>,
}

/// One session's reservations.
#[derive(Debug, Default)]
struct SessionSlots {
    /// Held while a claim of the session picks its slots (and may create new ones), so
    /// that two never pick the same.
    picking: tokio::sync::Mutex<()>,
    taken: Mutex<HashSet<AgentId>>,
}

/// Slots a claim holds until it is dropped.
#[derive(Debug)]
pub struct Reserved<'a> {
    reservations: &'a SlotReservations,
    session: RunnerSessionId,
    entry: Arc<SessionSlots>,
    pub slots: Vec<AgentId>,
    /// Other claims of the session held slots when these were picked.
    pub others_claiming: bool,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SlotReservations {
    /// Reserves for a claim of `session` the slots `pick` chooses, given the slots the
    /// session's other claims hold; one claim of a session picks at a time.
    pub async fn reserve<F, Fut>(&self, session: RunnerSessionId, pick: F) -> Result<Reserved<'_>>
    where
        F: FnOnce(HashSet<AgentId>) -> Fut,
        Fut: Future<Output = Result<Vec<AgentId>>>,
    {
        let entry = locked(&self.sessions).entry(session).or_default().clone();
        let mut reserved = Reserved {
            reservations: self,
            session,
            entry: entry.clone(),
            slots: Vec::new(),
            others_claiming: false,
        };
        let _picking = entry.picking.lock().await;
        let taken = locked(&entry.taken).clone();
        reserved.others_claiming = !taken.is_empty();
        reserved.slots = pick(taken).await?;
        locked(&entry.taken).extend(reserved.slots.iter().copied());
        Ok(reserved)
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let mut taken = locked(&self.entry.taken);
        for slot in &self.slots {
            taken.remove(slot);
        }
        let idle = taken.is_empty();
        drop(taken);
        // The session's entry goes once no claim holds or waits on it (the map's and
        // this claim's are the only references left).
        let mut sessions = locked(&self.reservations.sessions);
        if idle && Arc::strong_count(&self.entry) == 2 {
            sessions.remove(&self.session);
        }
    }
}
