//! The in-memory store's [`RunnerStore`].

use async_trait::async_trait;

use super::InMemoryStore;
use crate::change;
use crate::error::{Error, Result};
use crate::ids::RunnerSessionId;
use crate::model::{NewRunnerSession, RunnerIdentity, RunnerSession, RunnerSessionStatus};
use crate::state::runner_session::RunnerSessionEvent;
use crate::store::{RunnerStore, check_runner_session_page, check_token_hash};
use crate::time::Timestamp;

#[async_trait]
impl RunnerStore for InMemoryStore {
    async fn create_runner_session(
        &self,
        new: NewRunnerSession,
        now: Timestamp,
    ) -> Result<RunnerSession> {
        new.validate()?;
        let mut state = self.state();
        if state
            .sessions
            .values()
            .any(|s| s.token_hash == new.token_hash)
        {
            return Err(Error::conflict(
                "a runner session with this token already exists",
            ));
        }
        let session = new.into_session(RunnerSessionId::new(), now);
        state.sessions.insert(session.id, session.clone());
        state.append_events(vec![change::runner_connected_event(&session)], now);
        Ok(session)
    }

    async fn get_runner_session(&self, id: RunnerSessionId) -> Result<RunnerSession> {
        self.state().session(id).cloned()
    }

    async fn find_runner_session(&self, token_hash: &str) -> Result<Option<RunnerSession>> {
        Ok(self
            .state()
            .sessions
            .values()
            .find(|s| s.token_hash == token_hash)
            .cloned())
    }

    async fn list_runner_sessions(
        &self,
        status: Option<RunnerSessionStatus>,
        limit: u32,
    ) -> Result<Vec<RunnerSession>> {
        check_runner_session_page(limit)?;
        let mut sessions: Vec<_> = self
            .state()
            .sessions
            .values()
            .filter(|s| status.is_none_or(|wanted| s.status == wanted))
            .cloned()
            .collect();
        sessions.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
        sessions.truncate(limit as usize);
        Ok(sessions)
    }

    async fn update_runner_identity(
        &self,
        id: RunnerSessionId,
        identity: RunnerIdentity,
        now: Timestamp,
    ) -> Result<RunnerSession> {
        let mut state = self.state();
        let session = state.session(id)?.clone();
        let change = change::plan_runner_identity(session, identity, now)?;
        let result = change.runner_session.clone();
        state.persist(change, now);
        result.ok_or_else(|| Error::backend("a runner's identity planned no session"))
    }

    async fn apply_runner_session_event(
        &self,
        id: RunnerSessionId,
        event: RunnerSessionEvent,
        now: Timestamp,
    ) -> Result<RunnerSession> {
        let mut state = self.state();
        let session = state.session(id)?.clone();
        let change = change::plan_runner_session_event(session, event, now)?;
        let result = change.runner_session.clone();
        state.persist(change, now);
        result.ok_or_else(|| Error::backend("runner event planned no session"))
    }

    async fn admin_token_hash(&self) -> Result<Option<String>> {
        Ok(self.state().admin_token_hash.clone())
    }

    async fn save_admin_token_hash(&self, hash: &str, _now: Timestamp) -> Result<String> {
        check_token_hash(hash)?;
        Ok(self
            .state()
            .admin_token_hash
            .get_or_insert_with(|| hash.to_owned())
            .clone())
    }

    async fn create_setup_token(
        &self,
        token_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        check_token_hash(token_hash)?;
        let mut state = self.state();
        state.setup_tokens.retain(|_, expiry| *expiry > now);
        if state.setup_tokens.contains_key(token_hash) {
            return Err(Error::conflict("a setup token with this hash exists"));
        }
        state.setup_tokens.insert(token_hash.to_owned(), expires_at);
        Ok(())
    }

    async fn redeem_setup_token(&self, token_hash: &str, now: Timestamp) -> Result<bool> {
        Ok(self
            .state()
            .setup_tokens
            .remove(token_hash)
            .is_some_and(|expiry| expiry > now))
    }
}
