//! What every handler shares: the store, the clock, the credentials and the settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use orchestrator_core::coordination::ClaimRoom;
use orchestrator_core::protocol::RunnerProtocol;
use orchestrator_core::retry::RetryPolicy;
use orchestrator_core::supervisor::{Supervisor, SupervisorConfig};
use orchestrator_core::{Clock, Store, Timestamp};
use tokio::sync::{Semaphore, watch};

use crate::auth::{hash_token, token_matches};
use crate::cache::ResponseCache;
use crate::dashboard::ActivityCache;
use crate::fanout::EventFanout;
use crate::rate_limit::{RateLimitConfig, RateLimits};

/// Shared state of the HTTP application.
#[derive(Debug)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Where this server's waiting claims take turns.
    pub claims: Arc<ClaimRoom>,
    pub clock: Arc<dyn Clock>,
    /// Runs the housekeeping that `GET /api/cron/cleanup` triggers.
    pub supervisor: Arc<Supervisor>,
    pub retry_policy: RetryPolicy,
    /// SHA-256 hex of the admin token.
    pub admin_token_hash: String,
    /// SHA-256 hex of `CRON_SECRET`; without one, the cleanup route refuses everyone.
    pub cron_secret_hash: Option<String>,
    /// The URL runners reach this server at, put into connection tokens.
    pub public_url: String,
    /// The version reported by the health route.
    pub version: &'static str,
    pub started: Instant,
    /// Origins other than the server's own whose pages may call the API (CORS).
    pub cors_origins: Vec<String>,
    /// Responses of read-only routes, valid until the next commit.
    pub cache: ResponseCache,
    /// The activity the dashboard's charts show, read at most twice a minute.
    pub(crate) dashboard_activity: ActivityCache,
    /// Hands new events to every event stream of this server.
    pub events: Arc<EventFanout>,
    /// Per-client request budgets; `None` turns rate limiting off.
    pub rate_limits: Option<Arc<RateLimits>>,
    /// Canonical directories under which `POST /api/verify` may run checks on the
    /// server; empty turns server-side verification off.
    pub verify_roots: Vec<PathBuf>,
    /// One server-side verification at a time: checks use every core.
    pub verify_slot: Arc<Semaphore>,
    /// Turns true when the server begins to shut down; event streams end on it.
    shutdown: watch::Sender<bool>,
}

impl AppState {
    /// State over `store` with the admin token whose [hash](crate::auth::hash_token) is
    /// given, the default retry table, a supervisor with default settings, no cron
    /// secret, and `public_url` for runners.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        admin_token_hash: String,
        public_url: impl Into<String>,
    ) -> Self {
        let holder = format!("server-{}", uuid::Uuid::new_v4());
        let supervisor =
            Supervisor::new(store.clone(), clock.clone(), SupervisorConfig::new(holder));
        Self {
            claims: Arc::new(ClaimRoom::new(store.clone())),
            events: Arc::new(EventFanout::new(store.clone())),
            store,
            clock,
            supervisor: Arc::new(supervisor),
            retry_policy: RetryPolicy::default(),
            admin_token_hash,
            cron_secret_hash: None,
            public_url: public_url.into(),
            version: env!("CARGO_PKG_VERSION"),
            started: Instant::now(),
            cors_origins: Vec::new(),
            cache: ResponseCache::default(),
            dashboard_activity: ActivityCache::default(),
            rate_limits: Some(Arc::new(RateLimits::new(RateLimitConfig::default()))),
            verify_roots: Vec::new(),
            verify_slot: Arc::new(Semaphore::new(1)),
            shutdown: watch::Sender::new(false),
        }
    }

    /// Lets `POST /api/verify` run checks in directories under `roots`, which must
    /// exist; they are kept canonical (symlinks resolved).
    pub fn with_verify_roots(mut self, roots: &[PathBuf]) -> Result<Self, String> {
        self.verify_roots = roots
            .iter()
            .map(|root| match std::fs::canonicalize(root) {
                Ok(canonical) if canonical.is_dir() => Ok(canonical),
                Ok(_) => Err(format!("verify root {} is not a directory", root.display())),
                Err(err) => Err(format!(
                    "verify root {} cannot be used: {err}",
                    root.display()
                )),
            })
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// Sets the request budgets, or turns rate limiting off with `None`.
    pub fn with_rate_limits(mut self, config: Option<RateLimitConfig>) -> Self {
        self.rate_limits = config.map(|config| Arc::new(RateLimits::new(config)));
        self
    }

    /// Runs the supervisor with its configuration changed by `configure` (the holder
    /// names this process in the supervisor lease; keep it unique per replica).
    pub fn with_supervisor_config(mut self, configure: impl FnOnce(&mut SupervisorConfig)) -> Self {
        let mut config = self.supervisor.config().clone();
        configure(&mut config);
        self.supervisor = Arc::new(Supervisor::new(
            self.store.clone(),
            self.clock.clone(),
            config,
        ));
        self
    }

    /// Accepts `secret` as the bearer token of `GET /api/cron/cleanup`.
    pub fn with_cron_secret(mut self, secret: &str) -> Self {
        self.cron_secret_hash = Some(hash_token(secret));
        self
    }

    /// Tells long-lived responses (event streams) that the server is stopping, so that
    /// they send their last message and end before the server waits for open requests.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Follows [`AppState::begin_shutdown`].
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// The runner protocol over this server's store.
    pub fn protocol(&self) -> RunnerProtocol<'_> {
        RunnerProtocol::new(
            self.store.as_ref(),
            self.clock.as_ref(),
            &self.retry_policy,
            &self.claims,
        )
    }

    /// The current instant by the application's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn is_admin_token(&self, token: &str) -> bool {
        token_matches(token, &self.admin_token_hash)
    }
}
