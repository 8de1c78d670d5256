//! [`SlotReservations`]: the agent slots that claims of this process are filling, so that
//! two claims of one runner session at once take different slots instead of colliding
//! on the same one.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::error::Result;
use crate::ids::AgentId;

/// Slots claims of this process are filling.
#[derive(Debug, Default)]
pub struct SlotReservations {
    /// Held while a claim picks its slots (and may create new ones), so that two claims
    /// never pick the same.
    picking: tokio::sync::Mutex<()>,
    taken: Mutex<HashSet<AgentId>>,
}

/// Slots a claim holds until it is dropped.
#[derive(Debug)]
pub struct Reserved<'a> {
    reservations: &'a SlotReservations,
    pub slots: Vec<AgentId>,
}

impl SlotReservations {
    fn taken(&self) -> std::sync::MutexGuard<'_, HashSet<AgentId>> {
        self.taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves the slots `pick` chooses, given the slots other claims hold; one claim
    /// picks at a time.
    pub async fn reserve<F, Fut>(&self, pick: F) -> Result<Reserved<'_>>
    where
        F: FnOnce(HashSet<AgentId>) -> Fut,
        Fut: Future<Output = Result<Vec<AgentId>>>,
    {
        let _picking = self.picking.lock().await;
        let taken = self.taken().clone();
        let slots = pick(taken).await?;
        self.taken().extend(slots.iter().copied());
        Ok(Reserved {
            reservations: self,
            slots,
        })
    }

    /// Whether any slot is reserved now.
    pub fn any(&self) -> bool {
        !self.taken().is_empty()
    }
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let mut taken = self.reservations.taken();
        for slot in &self.slots {
            taken.remove(slot);
        }
    }
}
