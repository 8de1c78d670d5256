//! [`Tx`]: a write transaction whose writes travel in batches.

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::error::{Error, Result};
use sqlx::QueryBuilder;

use super::Held;
use crate::dialect::{Batch, Dialect, Exec, Part, prefixed};

/// A write transaction, begun and ended by hand rather than through sqlx's transaction
/// type. Writes wait in [`Tx::batch`] and go out as one query before the next statement
/// or with the commit. Where the dialect takes several statements in one call (SQLite),
/// the BEGIN also travels in front of the first statement and the COMMIT behind the last
/// writes: on SQLite every call is a hand-off to the connection's own thread, the largest
/// cost of a small transaction. Dropped before its commit, the transaction rolls back.
pub(crate) struct Tx<D: Dialect> {
    /// Taken when the transaction is dropped.
    conn: Option<Held<D>>,
    /// A BEGIN not sent yet.
    begin: Option<&'static str>,
    /// Whether a BEGIN went out and no COMMIT has succeeded since.
    open: bool,
    /// Writes not sent yet.
    batch: Batch<D>,
    /// Whether the transaction appended events.
    appends_events: bool,
    /// Whether there is no explicit transaction: each statement commits by itself.
    implicit: bool,
}

impl<D: Dialect> Tx<D> {
    /// Opens a write transaction on `conn`; with `read_clock`, also returns the database
    /// clock.
    pub(super) async fn begin(
        conn: Held<D>,
        settings: &'static str,
        read_clock: bool,
    ) -> Result<(Self, Option<Timestamp>)> {
        let mut tx = Self {
            conn: Some(conn),
            begin: D::SCRIPTS.then_some(D::BEGIN),
            open: !D::SCRIPTS,
            batch: Batch::new(),
            appends_events: false,
            implicit: false,
        };
        let clock = D::begin(tx.connection(), settings, read_clock).await?;
        Ok((tx, clock))
    }

    /// Statements on `conn` without an explicit transaction, each committed by itself: for
    /// a change whose writes go out as one statement after unlocked reads. Only for a
    /// dialect that sends a batch as one statement, not as a script.
    pub(super) fn implicit(conn: Held<D>) -> Self {
        debug_assert!(
            !D::SCRIPTS,
            "a script outside a transaction commits piecemeal"
        );
        Self {
            conn: Some(conn),
            begin: None,
            open: false,
            batch: Batch::new(),
            appends_events: false,
            implicit: true,
        }
    }

    pub(super) fn connection(&mut self) -> &mut D::Connection {
        self.conn
            .as_mut()
            .expect("a transaction keeps its connection until dropped")
            .connection()
    }

    /// Where writes go: they are sent with the transaction's next statement or commit.
    pub(super) fn batch(&mut self) -> &mut Batch<D> {
        &mut self.batch
    }

    /// Sends the writes waiting in the batch (and a BEGIN not sent yet), then a COMMIT if
    /// `commit`.
    pub(super) async fn send(&mut self, commit: bool) -> Result<()> {
        let batch = std::mem::replace(&mut self.batch, Batch::new());
        self.appends_events |= batch.appends_events();
        let begin = self.begin.take();
        self.open |= begin.is_some();
        D::run_batch(self.connection(), begin, batch, commit).await
    }

    /// `query` ready to send: waiting writes go out first (it may read what they wrote),
    /// a BEGIN not sent yet goes in front of it.
    pub(super) async fn lead(&mut self, query: QueryBuilder<D>) -> Result<QueryBuilder<D>> {
        if !self.batch.is_empty() {
            self.send(false).await?;
        }
        match self.begin.take() {
            Some(begin) => {
                self.open = true;
                prefixed(begin, query)
            }
            None => Ok(query),
        }
    }

    /// Rolls back at once, not in the background as a drop does: the rows it locked (on
    /// SQLite, the writer) are free when the caller goes on.
    pub(super) async fn rollback(mut self) {
        if self.open {
            self.open = false;
            let rollback = QueryBuilder::new("ROLLBACK");
            if D::execute(self.connection(), rollback).await.is_err()
                && let Some(conn) = self.conn.as_mut()
            {
                conn.discard();
            }
        }
    }

    /// Rolls back at once and returns `refusal`.
    pub(super) async fn refuse<T>(self, refusal: Error) -> Result<T> {
        self.rollback().await;
        Err(refusal)
    }

    /// The transaction and `outcome`'s value (a plan, a check) to go on with; a refusal
    /// rolls back at once and is returned.
    pub(super) async fn check<T>(self, outcome: Result<T>) -> Result<(Self, T)> {
        match outcome {
            Ok(value) => Ok((self, value)),
            Err(refusal) => self.refuse(refusal).await,
        }
    }

    /// Sends what is left and commits; returns whether the transaction appended events.
    pub(super) async fn commit(mut self) -> Result<bool> {
        if self.open || !self.batch.is_empty() {
            let commit = !self.implicit;
            self.send(commit).await?;
            if let Some(conn) = &self.conn {
                conn.committed();
            }
        }
        self.open = false;
        Ok(self.appends_events)
    }
}

impl<D: Dialect> Drop for Tx<D> {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if !self.open {
            return;
        }
        // Rolled back before the connection is released (the next writer waits for it);
        // if that fails, or there is no runtime to do it on, closing the connection ends
        // the transaction instead.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let rollback = QueryBuilder::new("ROLLBACK");
                    if D::execute(conn.connection(), rollback).await.is_err() {
                        conn.discard();
                    }
                });
            }
            Err(_) => conn.discard(),
        }
    }
}

#[async_trait]
impl<D: Dialect> Exec<D> for Tx<D> {
    async fn fetch_all(&mut self, query: QueryBuilder<D>) -> Result<Vec<D::Row>> {
        let query = self.lead(query).await?;
        D::fetch_all(self.connection(), query).await
    }

    async fn fetch_optional(&mut self, query: QueryBuilder<D>) -> Result<Option<D::Row>> {
        let query = self.lead(query).await?;
        D::fetch_optional(self.connection(), query).await
    }

    async fn fetch_count(&mut self, query: QueryBuilder<D>) -> Result<u64> {
        let query = self.lead(query).await?;
        D::fetch_count(self.connection(), query).await
    }

    async fn execute(&mut self, query: QueryBuilder<D>) -> Result<u64> {
        let query = self.lead(query).await?;
        D::execute(self.connection(), query).await
    }

    async fn fetch_script(&mut self, parts: Vec<Part<D>>) -> Result<Vec<Vec<D::Row>>> {
        if !self.batch.is_empty() {
            self.send(false).await?;
        }
        let begin = self.begin.take();
        self.open |= begin.is_some();
        D::fetch_script(self.connection(), begin, parts).await
    }
}
