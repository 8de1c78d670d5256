//! `orchestrator-server`: the orchestrator in one process. Opens the database (the
//! embedded SQLite file by default, or PostgreSQL) and migrates it, resolves the admin
//! token, runs the supervisor, and serves the API until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use orchestrator_core::coordination::RetentionPolicy;
use orchestrator_core::retry::RetryPolicy;
use orchestrator_core::supervisor::SupervisorConfig;
use orchestrator_core::{Clock, Store, SystemClock};
use orchestrator_http::AppState;
use orchestrator_http::auth::{hash_token, new_secret};
use orchestrator_http::rate_limit::RateLimitConfig;
use orchestrator_runner::backend::{AgentBackend, ClaudeCode, CommandAgent};
use orchestrator_runner::{LocalClient, Runner, RunnerConfig, RunnerControl, Worktrees};

/// Run the orchestrator server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "ORCHESTRATOR_BIND", default_value = "127.0.0.1:3000")]
    bind: SocketAddr,

    /// Database URL: `sqlite://path/to/file.db` or `postgres://user@host/db`.
    /// Default: the SQLite file `orchestrator.db` in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,

    /// Directory for the embedded database and other state.
    #[arg(long, env = "ORCHESTRATOR_DATA_DIR", default_value = ".orchestrator")]
    data_dir: PathBuf,

    /// The admin token for the dashboard and the API. Without one, a token is generated
    /// at first start and printed once; only its hash is kept.
    #[arg(long, env = "ORCHESTRATOR_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// The URL runners and browsers reach this server at (put into connection tokens).
    /// Default: http:// and the bind address.
    #[arg(long, env = "ORCHESTRATOR_PUBLIC_URL")]
    public_url: Option<String>,

    /// Bearer token that `GET /api/cron/cleanup` requires. Without one, the route refuses
    /// every caller (the supervisor runs on its own anyway).
    #[arg(long, env = "CRON_SECRET", hide_env_values = true)]
    cron_secret: Option<String>,

    /// Requests per minute per client on the API (0 turns rate limiting off).
    #[arg(long, env = "ORCHESTRATOR_RATE_LIMIT", default_value_t = 100)]
    rate_limit: u32,

    /// Requests per minute per runner on the runner routes.
    #[arg(long, env = "ORCHESTRATOR_RUNNER_RATE_LIMIT", default_value_t = 1200)]
    runner_rate_limit: u32,

    /// `false` turns rate limiting off (the original's switch).
    #[arg(long, env = "RATE_LIMIT_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    rate_limit_enabled: bool,

    /// Take clients' addresses from `X-Forwarded-For` (only behind your own proxy).
    #[arg(long, env = "ORCHESTRATOR_TRUST_PROXY")]
    trust_proxy: bool,

    /// An origin (scheme://host[:port]) whose pages may call the API; repeat for more.
    /// Without any, only the server's own pages can.
    #[arg(
        long = "cors-origin",
        env = "ORCHESTRATOR_CORS_ORIGINS",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,

    /// A directory under which `POST /api/verify` may run a project's checks on this
    /// machine (symlinks resolved); repeat for more. Without any, it only records
    /// evidence produced elsewhere.
    #[arg(
        long = "verify-root",
        env = "ORCHESTRATOR_VERIFY_ROOTS",
        value_delimiter = ','
    )]
    verify_roots: Vec<PathBuf>,

    /// Also run a runner in this process on the git repository DIR: server and runner
    /// in one process on the embedded database.
    #[arg(long, env = "ORCHESTRATOR_LOCAL_RUNNER", value_name = "DIR")]
    local_runner: Option<PathBuf>,

    /// The local runner's agent: a command with a `{prompt}` argument, given last
    /// (default: the claude CLI).
    #[arg(long = "local-agent", num_args = 1.., value_name = "ARG")]
    local_agent: Vec<String>,

    /// The claude binary for the local runner.
    #[arg(long, env = "CLAUDE_BIN", default_value = "claude")]
    claude_bin: PathBuf,

    /// Agents the local runner runs at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=32))]
    local_parallel: u8,

    /// Seconds between supervisor passes (lease expiry, lock sweep, inactive runners,
    /// stalled and blocked tasks, retention).
    #[arg(long, env = "ORCHESTRATOR_SUPERVISOR_INTERVAL", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400), value_name = "SECONDS")]
    supervisor_interval: u64,

    /// A runner unseen this many seconds is marked inactive.
    #[arg(long, env = "ORCHESTRATOR_RUNNER_INACTIVE_AFTER", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=604_800), value_name = "SECONDS")]
    runner_inactive_after: u64,

    /// A running agent that keeps its lease but logs nothing for this many seconds is
    /// reported as stalled.
    #[arg(long, env = "ORCHESTRATOR_STALL_AFTER", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=604_800), value_name = "SECONDS")]
    stall_after: u64,

    /// Agent log entries older than this many days are deleted.
    #[arg(long, env = "ORCHESTRATOR_KEEP_LOGS_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=36_500), value_name = "DAYS")]
    keep_logs_days: u64,

    /// At most this many agent log entries are kept (the newest).
    #[arg(long, env = "ORCHESTRATOR_KEEP_LOGS", default_value_t = 5_000_000,
          value_parser = clap::value_parser!(u64).range(1..), value_name = "COUNT")]
    keep_logs: u64,

    /// Events older than this many days are deleted.
    #[arg(long, env = "ORCHESTRATOR_KEEP_EVENTS_DAYS", default_value_t = 7,
          value_parser = clap::value_parser!(u64).range(1..=36_500), value_name = "DAYS")]
    keep_events_days: u64,

    /// At most this many events are kept (the newest).
    #[arg(long, env = "ORCHESTRATOR_KEEP_EVENTS", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..), value_name = "COUNT")]
    keep_events: u64,

    /// A JSON file of automatic-retry strategies that replace the original's for the
    /// failure classes it names, e.g. `{"TYPE_ERROR": {"shouldRetry": true, "delay":
    /// 20000, "maxAttempts": 5, "requiresHumanReview": false}}` (delay in milliseconds).
    #[arg(long, env = "ORCHESTRATOR_RETRY_POLICY", value_name = "FILE")]
    retry_policy: Option<PathBuf>,

    /// Log format.
    #[arg(
        long,
        env = "ORCHESTRATOR_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

/// Shortest admin token or cron secret accepted from the operator.
const MIN_SECRET_CHARS: usize = 16;

impl Args {
    /// The database to open: the explicit URL, or the SQLite file in the data directory.
    fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.data_dir.join("orchestrator.db").display()
            ),
        }
    }

    /// The public URL without a trailing slash, checked.
    fn public_url(&self) -> anyhow::Result<String> {
        let url = match &self.public_url {
            Some(url) => url.trim().trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.bind),
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains(' ') {
            bail!(
                "--public-url {url:?} is not an http:// or https:// URL; give the address \
                 runners use to reach this server, e.g. https://orchestrator.example.com"
            );
        }
        Ok(url)
    }

    /// The request budgets, or `None` when rate limiting is off.
    fn rate_limits(&self) -> anyhow::Result<Option<RateLimitConfig>> {
        if !self.rate_limit_enabled || self.rate_limit == 0 {
            return Ok(None);
        }
        let runner_per_minute = NonZeroU32::new(self.runner_rate_limit).ok_or_else(|| {
            anyhow::anyhow!(
                "--runner-rate-limit must be at least 1; runners need heartbeats to keep leases"
            )
        })?;
        Ok(
            NonZeroU32::new(self.rate_limit).map(|per_minute| RateLimitConfig {
                per_minute,
                runner_per_minute,
                trust_proxy: self.trust_proxy,
            }),
        )
    }

    /// The CORS allowlist, checked.
    fn cors_origins(&self) -> anyhow::Result<Vec<String>> {
        self.cors_origins
            .iter()
            .map(|origin| origin.trim().trim_end_matches('/').to_owned())
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                orchestrator_http::check_cors_origin(&origin)
                    .map(|()| origin)
                    .map_err(|err| anyhow::anyhow!("--cors-origin {err}"))
            })
            .collect()
    }

    /// The supervisor's timing and retention.
    fn configure_supervisor(&self, config: &mut SupervisorConfig) {
        const DAY: u64 = 86_400;
        config.interval = Duration::from_secs(self.supervisor_interval);
        config.runner_inactive_after = Duration::from_secs(self.runner_inactive_after);
        config.stall_after = Duration::from_secs(self.stall_after);
        config.retention = RetentionPolicy {
            log_max_age: Duration::from_secs(self.keep_logs_days * DAY),
            log_max_count: self.keep_logs,
            event_max_age: Duration::from_secs(self.keep_events_days * DAY),
            event_max_count: self.keep_events,
        };
    }

    /// The automatic-retry table: the original's, with the classes of `--retry-policy`
    /// replaced.
    fn retry_policy(&self) -> anyhow::Result<RetryPolicy> {
        let Some(file) = &self.retry_policy else {
            return Ok(RetryPolicy::default());
        };
        let json = std::fs::read_to_string(file)
            .with_context(|| format!("--retry-policy: cannot read {}", file.display()))?;
        RetryPolicy::default()
            .overridden_by_json(&json)
            .map_err(|err| anyhow::anyhow!("--retry-policy {}: {err}", file.display()))
    }

    /// Refuses secrets too short to resist guessing.
    fn check_secrets(&self) -> anyhow::Result<()> {
        for (flag, value) in [
            (
                "--admin-token / ORCHESTRATOR_ADMIN_TOKEN",
                &self.admin_token,
            ),
            ("--cron-secret / CRON_SECRET", &self.cron_secret),
        ] {
            if let Some(value) = value
                && value.trim().chars().count() < MIN_SECRET_CHARS
            {
                bail!(
                    "{flag} must be at least {MIN_SECRET_CHARS} characters; generate one \
                     with `openssl rand -hex 32`"
                );
            }
        }
        Ok(())
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to standard error; standard output carries the address and login lines.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// How the admin token was settled at this start.
enum AdminToken {
    /// Given by the operator.
    Configured(String),
    /// Generated now; shown once.
    Generated(String),
    /// Generated at an earlier start (or by another replica); only its hash is known.
    Saved(String),
}

impl AdminToken {
    fn hash(&self) -> String {
        match self {
            Self::Configured(token) | Self::Generated(token) => hash_token(token),
            Self::Saved(hash) => hash.clone(),
        }
    }
}

async fn resolve_admin_token(
    configured: Option<&str>,
    store: &dyn Store,
    clock: &dyn Clock,
) -> anyhow::Result<AdminToken> {
    if let Some(token) = configured {
        return Ok(AdminToken::Configured(token.trim().to_owned()));
    }
    if let Some(hash) = store.admin_token_hash().await? {
        return Ok(AdminToken::Saved(hash));
    }
    let token = new_secret();
    let saved = store
        .save_admin_token_hash(&hash_token(&token), clock.now())
        .await?;
    if saved == hash_token(&token) {
        Ok(AdminToken::Generated(token))
    } else {
        Ok(AdminToken::Saved(saved))
    }
}

fn announce(listening: &str, url: &str, admin: &AdminToken) {
    println!("orchestrator-server listening on {listening}");
    match admin {
        AdminToken::Configured(_) => {
            println!("Admin access: the token from --admin-token / ORCHESTRATOR_ADMIN_TOKEN.");
        }
        AdminToken::Generated(token) => {
            println!("Admin token (shown once; only its hash is stored): {token}");
            println!("Log in: {url}/login?token={token}");
            println!("Try it: curl -H 'Authorization: Bearer {token}' {url}/api/tasks");
            println!("API reference: {url}/api/openapi.json");
        }
        AdminToken::Saved(_) => {
            println!(
                "Admin access: the token generated at first start. Lost it? Start with \
                 ORCHESTRATOR_ADMIN_TOKEN set to a new one."
            );
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    init_logging(args.log_format);
    args.check_secrets()?;
    let public_url = args.public_url()?;
    let rate_limits = args.rate_limits()?;
    let cors_origins = args.cors_origins()?;
    let retry_policy = args.retry_policy()?;
    let url = args.database_url();
    let store = orchestrator_store::connect(&url)
        .await
        .with_context(|| format!("cannot open the database at {url}"))?;
    store
        .ping()
        .await
        .context("the database opened but does not answer")?;
    tracing::info!(database = %redact(&url), "database ready, schema up to date");

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let admin = resolve_admin_token(args.admin_token.as_deref(), store.as_ref(), clock.as_ref())
        .await
        .context("cannot settle the admin token")?;
    let mut state = AppState::new(store, clock, admin.hash(), public_url)
        .with_rate_limits(rate_limits)
        .with_verify_roots(&args.verify_roots)
        .map_err(|err| anyhow::anyhow!("{err} (--verify-root / ORCHESTRATOR_VERIFY_ROOTS)"))?
        .with_supervisor_config(|config| args.configure_supervisor(config));
    state.cors_origins = cors_origins;
    state.retry_policy = retry_policy;
    if let Some(secret) = &args.cron_secret {
        state = state.with_cron_secret(secret.trim());
    }
    let state = web::Data::new(state);
    let local_runner = match &args.local_runner {
        Some(dir) => Some(start_local_runner(&args, dir, &state).await?),
        None => None,
    };

    let server = HttpServer::new({
        let state = state.clone();
        move || App::new().configure(orchestrator_http::configure(state.clone()))
    })
    .bind(args.bind)
    .with_context(|| format!("cannot listen on {}", args.bind))?
    .disable_signals()
    .run();
    announce(&format!("http://{}", args.bind), &state.public_url, &admin);

    // On SIGINT or SIGTERM, event streams say goodbye first; then the server stops
    // accepting and lets the requests in flight finish.
    let handle = server.handle();
    let stopping = state.clone();
    tokio::spawn(async move {
        shutdown_requested().await;
        tracing::info!("shutting down: finishing requests in flight");
        stopping.begin_shutdown();
        handle.stop(true).await;
    });

    let (stop_supervisor, stopped) = tokio::sync::oneshot::channel::<()>();
    let supervisor = state.supervisor.clone();
    let supervising = tokio::spawn(async move {
        supervisor
            .run(async {
                let _ = stopped.await;
            })
            .await;
    });
    let served = server.await;
    if let Some((control, running)) = local_runner {
        // Agents are stopped and their tasks given back before the process ends.
        control.stop();
        let _ = running.await;
    }
    let _ = stop_supervisor.send(());
    let _ = supervising.await;
    served.context("the HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the in-process runner on the repository at `dir`.
async fn start_local_runner(
    args: &Args,
    dir: &Path,
    state: &AppState,
) -> anyhow::Result<(RunnerControl, tokio::task::JoinHandle<()>)> {
    let repository = dir
        .canonicalize()
        .with_context(|| format!("--local-runner {} does not exist", dir.display()))?;
    if !repository.join(".git").exists() {
        anyhow::bail!(
            "--local-runner {} is not a git repository: run `git init` and make a first commit there",
            repository.display()
        );
    }
    let agent: Arc<dyn AgentBackend> = if args.local_agent.is_empty() {
        Arc::new(ClaudeCode {
            binary: args.claude_bin.clone(),
            ..ClaudeCode::default()
        })
    } else {
        Arc::new(
            CommandAgent::new(args.local_agent.clone())
                .map_err(|err| anyhow::anyhow!("--local-agent: {err}"))?,
        )
    };
    let client = LocalClient::register(
        state.store.clone(),
        state.clock.clone(),
        "local runner",
        &repository,
    )
    .await
    .context("cannot register the local runner")?
    .with_retry_policy(state.retry_policy.clone());
    let worktree_dir = std::path::absolute(args.data_dir.join("worktrees"))
        .context("cannot place the local runner's worktrees")?;
    let worktrees = Worktrees::new(&repository, worktree_dir);
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let runner = Runner::builder(Arc::new(client), agent, worktrees)
        .config(RunnerConfig {
            parallel: usize::from(args.local_parallel),
            ..RunnerConfig::default()
        })
        .events(events)
        .build();
    let control = runner.control();
    tokio::spawn(async move {
        while let Some(event) = received.recv().await {
            tracing::info!(?event, "local runner");
        }
    });
    let running = tokio::spawn(async move {
        if let Err(err) = runner.run().await {
            tracing::error!(error = %err, "the local runner stopped");
        }
    });
    tracing::info!(repository = %repository.display(), "local runner started");
    Ok((control, running))
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_requested() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[actix_web::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_core::memory::InMemoryStore;

    use super::*;
    use orchestrator_core::store::RunnerStore;

    #[test]
    fn the_default_database_is_a_file_in_the_data_directory() {
        let args = Args::parse_from(["orchestrator-server", "--data-dir", "/tmp/x"]);
        assert_eq!(args.database_url(), "sqlite:///tmp/x/orchestrator.db");
        assert_eq!(args.public_url().unwrap(), "http://127.0.0.1:3000");
    }

    #[test]
    fn bad_settings_are_refused_with_what_to_do() {
        let args = Args::parse_from(["orchestrator-server", "--public-url", "ftp://x"]);
        assert!(
            args.public_url()
                .unwrap_err()
                .to_string()
                .contains("https://")
        );
        let args = Args::parse_from(["orchestrator-server", "--admin-token", "short"]);
        assert!(
            args.check_secrets()
                .unwrap_err()
                .to_string()
                .contains("openssl")
        );
        assert!(Args::try_parse_from(["orchestrator-server", "--bind", "nowhere"]).is_err());
        let args = Args::parse_from(["orchestrator-server", "--cors-origin", "https://x.dev/app"]);
        assert!(
            args.cors_origins()
                .unwrap_err()
                .to_string()
                .contains("scheme, host")
        );
        let args = Args::parse_from(["orchestrator-server", "--runner-rate-limit", "0"]);
        assert!(args.rate_limits().is_err());
    }

    #[test]
    fn rate_limiting_is_on_by_default_and_can_be_turned_off() {
        let on = Args::parse_from(["orchestrator-server"])
            .rate_limits()
            .unwrap()
            .unwrap();
        assert_eq!(on.per_minute.get(), 100);
        let args = Args::parse_from(["orchestrator-server", "--rate-limit-enabled", "false"]);
        assert_eq!(args.rate_limits().unwrap(), None);
    }

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/orch"),
            "postgres://app:***@db:5432/orch"
        );
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }

    #[tokio::test]
    async fn a_generated_admin_token_is_kept_as_a_hash_and_reused() {
        let store = InMemoryStore::new();
        let clock = SystemClock;
        let first = resolve_admin_token(None, &store, &clock).await.unwrap();
        let AdminToken::Generated(token) = &first else {
            panic!("the first start generates a token");
        };
        assert_eq!(
            store.admin_token_hash().await.unwrap(),
            Some(hash_token(token))
        );
        let second = resolve_admin_token(None, &store, &clock).await.unwrap();
        assert!(matches!(&second, AdminToken::Saved(hash) if *hash == hash_token(token)));
        let configured = resolve_admin_token(Some("operator-chosen-token"), &store, &clock)
            .await
            .unwrap();
        assert_eq!(configured.hash(), hash_token("operator-chosen-token"));
    }
}
