//! Where write transactions get their connection: a shared pool, or (SQLite) one
//! connection of the writer's own, and the count of its commits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use orchestrator_core::error::Result;
use sqlx::Pool;
use sqlx::pool::PoolConnection;
use tokio::sync::{Mutex, Notify, OwnedMutexGuard};

use crate::dialect::Dialect;
use crate::error::SqlxResultExt;

/// Where write transactions get their connection.
pub(crate) enum Writer<D: Dialect> {
    /// From the pool reads use too.
    Shared(Pool<D>),
    /// One connection of its own (SQLite's writer), taken from a pool of one and kept:
    /// writers queue for it in order (instead of polling the busy handler, and without
    /// waiting behind readers), and none waits for the pool's check of a returned
    /// connection (on SQLite a round trip to the connection's thread).
    Own {
        pool: Pool<D>,
        conn: Arc<Mutex<Option<PoolConnection<D>>>>,
        commits: Arc<Commits>,
    },
}

impl<D: Dialect> Clone for Writer<D> {
    fn clone(&self) -> Self {
        match self {
            Self::Shared(pool) => Self::Shared(pool.clone()),
            Self::Own {
                pool,
                conn,
                commits,
            } => Self::Own {
                pool: pool.clone(),
                conn: conn.clone(),
                commits: commits.clone(),
            },
        }
    }
}

impl<D: Dialect> Writer<D> {
    /// A writer with a connection of its own from `pool`, counting its commits in
    /// `commits`.
    pub(crate) fn own(pool: Pool<D>, commits: Arc<Commits>) -> Self {
        Self::Own {
            pool,
            conn: Arc::new(Mutex::new(None)),
            commits,
        }
    }

    /// The writer's connection, for this caller alone until the returned guard is
    /// dropped: write transactions wait meanwhile.
    pub(crate) async fn acquire(&self) -> Result<Held<D>> {
        match self {
            Self::Shared(pool) => Ok(Held::Pooled(pool.acquire().await.db()?)),
            Self::Own {
                pool,
                conn,
                commits,
            } => {
                let mut held = conn.clone().lock_owned().await;
                if held.is_none() {
                    *held = Some(pool.acquire().await.db()?);
                }
                Ok(Held::Own(held, commits.clone()))
            }
        }
    }
}

/// Counts a writer's commits and wakes one waiter on the first commit after a reset and
/// on every `wake_every`-th.
#[derive(Debug)]
pub(crate) struct Commits {
    since_reset: AtomicU64,
    wake_every: u64,
    wake: Notify,
}

impl Commits {
    pub(crate) fn new(wake_every: u64) -> Self {
        Self {
            since_reset: AtomicU64::new(0),
            wake_every: wake_every.max(1),
            wake: Notify::new(),
        }
    }

    fn record(&self) {
        let count = self.since_reset.fetch_add(1, Ordering::Relaxed) + 1;
        if count == 1 || count.is_multiple_of(self.wake_every) {
            self.wake.notify_one();
        }
    }

    /// Commits since the last [`reset`](Self::reset).
    pub(crate) fn since_reset(&self) -> u64 {
        self.since_reset.load(Ordering::Relaxed)
    }

    pub(crate) fn reset(&self) {
        self.since_reset.store(0, Ordering::Relaxed);
    }

    /// Waits for a wake-up (one that came while nobody waited is kept).
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }
}

/// The connection of a write transaction.
pub(crate) enum Held<D: Dialect> {
    Pooled(PoolConnection<D>),
    /// Never empty while held.
    Own(OwnedMutexGuard<Option<PoolConnection<D>>>, Arc<Commits>),
}

impl<D: Dialect> Held<D> {
    pub(crate) fn connection(&mut self) -> &mut D::Connection {
        match self {
            Self::Pooled(conn) => conn,
            Self::Own(held, _) => held.as_mut().expect("a held writer connection"),
        }
    }

    /// Makes sure the connection is closed, not reused, once released.
    pub(super) fn discard(&mut self) {
        match self {
            Self::Pooled(conn) => conn.close_on_drop(),
            Self::Own(held, _) => {
                if let Some(mut conn) = held.take() {
                    conn.close_on_drop();
                }
            }
        }
    }

    pub(super) fn committed(&self) {
        if let Self::Own(_, commits) = self {
            commits.record();
        }
    }
}
