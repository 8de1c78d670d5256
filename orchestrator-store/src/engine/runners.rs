//! The SQL stores' [`RunnerStore`].

use async_trait::async_trait;
use orchestrator_core::Timestamp;
use orchestrator_core::change::{self};
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::RunnerSessionId;
use orchestrator_core::model::{
    NewRunnerSession, RunnerIdentity, RunnerSession, RunnerSessionStatus,
};
use orchestrator_core::state::runner_session::RunnerSessionEvent;
use orchestrator_core::store::{RunnerStore, check_runner_session_page, check_token_hash};

use super::{SqlStore, found, planned};
use crate::dialect::Dialect;
use crate::sql::read::{self, Lock};
use crate::sql::write;

/// The `server_settings` row that holds the admin token's hash.
const ADMIN_TOKEN_SETTING: &str = "admin_token_hash";

#[async_trait]
impl<D: Dialect> RunnerStore for SqlStore<D> {
    async fn create_runner_session(
        &self,
        new: NewRunnerSession,
        now: Timestamp,
    ) -> Result<RunnerSession> {
        new.validate()?;
        let (mut tx, now) = self.begin_at(now).await?;
        let session = new.into_session(RunnerSessionId::new(), now);
        write::insert_runner_session(tx.batch(), &session)?;
        write::append_events(tx.batch(), &[change::runner_connected_event(&session)], now);
        self.commit(tx).await.map_err(|err| match err {
            Error::Conflict(_) => {
                Error::conflict("a runner session with this token already exists")
            }
            other => other,
        })?;
        Ok(session)
    }

    async fn get_runner_session(&self, id: RunnerSessionId) -> Result<RunnerSession> {
        let row = read::runner_session::<D>(&mut self.read().await?, id, Lock::None).await?;
        found(row, "runnerSession", id)
    }

    async fn find_runner_session(&self, token_hash: &str) -> Result<Option<RunnerSession>> {
        read::runner_session_by_token::<D>(&mut self.read().await?, token_hash).await
    }

    async fn list_runner_sessions(
        &self,
        status: Option<RunnerSessionStatus>,
        limit: u32,
    ) -> Result<Vec<RunnerSession>> {
        check_runner_session_page(limit)?;
        read::runner_sessions::<D>(&mut self.read().await?, status, limit).await
    }

    async fn update_runner_identity(
        &self,
        id: RunnerSessionId,
        identity: RunnerIdentity,
        now: Timestamp,
    ) -> Result<RunnerSession> {
        identity.validate()?;
        let (mut tx, now) = self.begin_at(now).await?;
        let session = read::runner_session::<D>(&mut tx, id, Lock::ForUpdate).await?;
        let session = found(session, "runnerSession", id)?;
        let planned_change = change::plan_runner_identity(session, identity, now);
        let (tx, change) = tx.check(planned_change).await?;
        let session = planned(change.runner_session.clone(), "runner session")?;
        self.persist(tx, &change, now).await?;
        Ok(session)
    }

    async fn apply_runner_session_event(
        &self,
        id: RunnerSessionId,
        event: RunnerSessionEvent,
        now: Timestamp,
    ) -> Result<RunnerSession> {
        let (mut tx, now) = self.begin_at(now).await?;
        let session = read::runner_session::<D>(&mut tx, id, Lock::ForUpdate).await?;
        let session = found(session, "runnerSession", id)?;
        let planned_change = change::plan_runner_session_event(session, event, now);
        let (tx, change) = tx.check(planned_change).await?;
        let session = planned(change.runner_session.clone(), "runner session")?;
        self.persist(tx, &change, now).await?;
        Ok(session)
    }

    async fn admin_token_hash(&self) -> Result<Option<String>> {
        read::setting::<D>(&mut self.read().await?, ADMIN_TOKEN_SETTING).await
    }

    async fn save_admin_token_hash(&self, hash: &str, now: Timestamp) -> Result<String> {
        check_token_hash(hash)?;
        let (mut tx, now) = self.begin_at(now).await?;
        write::insert_setting_if_absent::<D>(&mut tx, ADMIN_TOKEN_SETTING, hash, now).await?;
        let saved = read::setting::<D>(&mut tx, ADMIN_TOKEN_SETTING).await?;
        tx.commit().await?;
        saved.ok_or_else(|| Error::backend("the admin token hash was not saved"))
    }

    async fn create_setup_token(
        &self,
        token_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        check_token_hash(token_hash)?;
        let (mut tx, now) = self.begin_at(now).await?;
        write::delete_expired_setup_tokens::<D>(&mut tx, now).await?;
        write::insert_setup_token::<D>(&mut tx, token_hash, expires_at, now)
            .await
            .map_err(|err| match err {
                Error::Conflict(_) => Error::conflict("a setup token with this hash exists"),
                other => other,
            })?;
        tx.commit().await?;
        Ok(())
    }

    async fn redeem_setup_token(&self, token_hash: &str, now: Timestamp) -> Result<bool> {
        let (mut tx, now) = self.begin_at(now).await?;
        let redeemed = write::take_setup_token::<D>(&mut tx, token_hash, now).await?;
        tx.commit().await?;
        Ok(redeemed)
    }
}
