//! Setting queued tasks aside behind long-held locks, and taking them back, around claims
//! (the SQL is in [`crate::sql::hidden`]).
//!
//! A lock held for a while (an agent's long task, an operator's lock on a directory) can
//! stand in the way of thousands of queued tasks; a claim would pass over each of them on
//! every search. When a search turns out slow, the store sets aside the tasks behind
//! every lock held longer than [`HIDE_AFTER`], at most once per [`HIDE_EVERY`], so the
//! next searches walk only the tasks that may be free. Locks held briefly (tasks sharing a
//! README, each holding it for one short attempt) never set anything aside: the work
//! would cost more than the searches it saves.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use orchestrator_core::Timestamp;
use orchestrator_core::coordination::ClaimRequest;
use orchestrator_core::error::Result;

use super::SqlStore;
use crate::dialect::Dialect;
use crate::sql::hidden;

/// How long a lock must have been held before the tasks behind it are set aside.
const HIDE_AFTER: Duration = Duration::from_secs(1);
/// The shortest time between two passes that set tasks aside, per store.
const HIDE_EVERY: Duration = Duration::from_secs(1);
/// A claim that took this long may have passed over many blocked tasks.
pub(super) const SLOW_CLAIM: Duration = Duration::from_millis(5);
/// Tasks set aside per lock per pass.
const HIDE_BATCH: u32 = 5_000;

/// When the store last set tasks aside.
#[derive(Debug, Default)]
pub(crate) struct HidingPasses {
    last: Mutex<Option<Instant>>,
}

impl HidingPasses {
    /// Whether a pass is due now; if so, the next is not due for [`HIDE_EVERY`].
    fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| at.elapsed() < HIDE_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Takes back, before `request`'s search, the tasks set aside behind locks that have
    /// expired or that its own slots hold: the claim must see them.
    pub(super) async fn reveal_for(&self, request: &ClaimRequest, now: Timestamp) -> Result<()> {
        let mut conn = self.read().await?;
        let now = self.now(&mut conn, now).await?;
        let paths = hidden::paths_to_reveal::<D>(&mut conn, now, &request.agents).await?;
        drop(conn);
        if paths.is_empty() {
            return Ok(());
        }
        let (mut tx, _) = self.begin_at(now).await?;
        hidden::reveal::<D>(&mut tx, &paths).await?;
        tx.commit().await?;
        Ok(())
    }

    /// After a claim that took `took`: sets tasks aside if the claim was slow and no pass
    /// ran lately. A failure is logged, not returned: the claim has been made, and setting
    /// aside only saves later searches work.
    pub(super) async fn hide_after_slow_claim(&self, took: Duration, now: Timestamp) {
        if took < SLOW_CLAIM || !self.hiding.due() {
            return;
        }
        if let Err(err) = self.hide_tasks_behind_held_locks(now).await {
            tracing::warn!(error = %err, "setting aside tasks behind held locks failed");
        }
    }

    /// Sets aside the queued tasks behind every lock held longer than [`HIDE_AFTER`] (see
    /// the module documentation); returns how many. Claims do this by themselves when
    /// their searches turn slow; a tool that fills a queue behind a held lock may call it
    /// to spare the first claims the walk.
    pub async fn hide_tasks_behind_held_locks(&self, now: Timestamp) -> Result<u64> {
        let mut conn = self.read().await?;
        let now = self.now(&mut conn, now).await?;
        let held_since = now.sub(HIDE_AFTER);
        let mut behind = Vec::new();
        for path in hidden::long_held_paths::<D>(&mut conn, now, held_since).await? {
            let ids = hidden::tasks_behind::<D>(&mut conn, &path, HIDE_BATCH).await?;
            if !ids.is_empty() {
                behind.push((path, ids));
            }
        }
        drop(conn);
        if behind.is_empty() {
            return Ok(0);
        }
        let (mut tx, _) = self.begin_at(now).await?;
        let mut hidden_count = 0;
        for (path, ids) in &behind {
            hidden_count += hidden::hide::<D>(&mut tx, path, ids, now, held_since).await?;
        }
        tx.commit().await?;
        Ok(hidden_count)
    }
}
