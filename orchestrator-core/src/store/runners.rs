//! [`RunnerStore`]: runner sessions and the tokens that open the server.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::ids::RunnerSessionId;
use crate::model::{NewRunnerSession, RunnerIdentity, RunnerSession, RunnerSessionStatus};
use crate::state::runner_session::RunnerSessionEvent;
use crate::time::Timestamp;

/// Most runner sessions one call lists.
pub const MAX_RUNNER_SESSION_PAGE: u32 = 500;

/// Runner sessions, the admin token's hash and single-use setup tokens.
#[async_trait]
pub trait RunnerStore: Send + Sync + Debug + 'static {
    /// Creates an ACTIVE runner session. The token hash must be unique (`Conflict`).
    async fn create_runner_session(
        &self,
        new: NewRunnerSession,
        now: Timestamp,
    ) -> Result<RunnerSession>;

    /// One runner session.
    async fn get_runner_session(&self, id: RunnerSessionId) -> Result<RunnerSession>;

    /// The session whose token hashes to `token_hash`, revoked or not.
    async fn find_runner_session(&self, token_hash: &str) -> Result<Option<RunnerSession>>;

    /// The newest `limit` runner sessions (at most [`MAX_RUNNER_SESSION_PAGE`]), newest
    /// first; only those in `status` when given.
    async fn list_runner_sessions(
        &self,
        status: Option<RunnerSessionStatus>,
        limit: u32,
    ) -> Result<Vec<RunnerSession>>;

    /// Keeps `identity` as what the runner of session `id` states about itself, replacing
    /// what it stated before (see [`crate::change::plan_runner_identity`]); returns the
    /// session. `NotFound` for an unknown session, `Conflict` for a revoked one.
    async fn update_runner_identity(
        &self,
        id: RunnerSessionId,
        identity: RunnerIdentity,
        now: Timestamp,
    ) -> Result<RunnerSession>;

    /// Applies a runner session event (seen, mark inactive, revoke).
    async fn apply_runner_session_event(
        &self,
        id: RunnerSessionId,
        event: RunnerSessionEvent,
        now: Timestamp,
    ) -> Result<RunnerSession>;

    /// The admin token hash a server saved at its first start, if any.
    async fn admin_token_hash(&self) -> Result<Option<String>>;

    /// Saves `hash` as the admin token hash unless one is saved already, and returns the
    /// saved one: servers starting together on one database all end up with the same.
    async fn save_admin_token_hash(&self, hash: &str, now: Timestamp) -> Result<String>;

    /// Keeps a setup token's hash until `expires_at`; it can be redeemed once.
    async fn create_setup_token(
        &self,
        token_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()>;

    /// Spends a setup token: true exactly once for a hash that was created and has not
    /// expired by `now`; false for an unknown, spent or expired one.
    async fn redeem_setup_token(&self, token_hash: &str, now: Timestamp) -> Result<bool>;
}

/// Checks the page size of a [`RunnerStore::list_runner_sessions`] call.
pub fn check_runner_session_page(limit: u32) -> Result<()> {
    if limit == 0 || limit > MAX_RUNNER_SESSION_PAGE {
        return Err(crate::error::Error::invalid(
            "limit",
            format!("list 1 to {MAX_RUNNER_SESSION_PAGE} runner sessions at once"),
        ));
    }
    Ok(())
}
