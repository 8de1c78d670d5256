//! [`QueueStore`]: handing queued tasks to agent slots, and keeping their leases.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;

use crate::change::LeaseRef;
use crate::coordination::{Claim, ClaimRequest, HeartbeatAck};
use crate::error::Result;
use crate::time::Timestamp;

/// Claims, heartbeats, and when waiting claims should look again.
#[async_trait]
pub trait QueueStore: Send + Sync + Debug + 'static {
    /// Fills idle agent slots with the next claimable tasks, atomically per slot: the task
    /// goes to ASSIGNED, a new attempt starts under a fresh lease, the slot is bound and the
    /// task's files hint is locked. Claimable means QUEUED, every dependency COMPLETED,
    /// `notBefore` passed and the files hint free; order is priority, creation time, id.
    /// Contention is never an error: fewer claims (or none) come back. With a specific
    /// `task_id`, that task is claimed or the reason it cannot be is the error.
    async fn claim(&self, request: ClaimRequest, now: Timestamp) -> Result<Vec<Claim>>;

    /// [`claim`](Self::claim), and whether the search may have left claimable tasks
    /// behind for other claims: waiting claims are handed the turn only then. A store that
    /// cannot tell says so whenever every slot was filled.
    async fn claim_looking_ahead(
        &self,
        request: ClaimRequest,
        now: Timestamp,
    ) -> Result<(Vec<Claim>, bool)> {
        let slots = request.agents.len();
        let claims = self.claim(request, now).await?;
        let maybe_more = claims.len() == slots;
        Ok((claims, maybe_more))
    }

    /// Extends the live attempt's lease and its locks to `now + ttl`; the answer tells the
    /// runner to continue, stop (cancellation) or pause. A stale lease is a `Conflict` that
    /// changes nothing.
    async fn heartbeat(
        &self,
        lease: LeaseRef,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<HeartbeatAck>;

    /// How long until time alone may make work claimable, by the store's clock: the next
    /// queued task's `notBefore` passes or the next live lock runs out (`None` while
    /// neither waits for its time). When a waiting claim looks again without a commit.
    async fn work_due_in(&self, now: Timestamp) -> Result<Option<Duration>>;
}
