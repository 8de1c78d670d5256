//! The server's configuration in two steps: [`Args`], the flags and environment variables
//! as given, and [`Settings`], what they mean once checked. Only checked settings reach
//! the libraries; a bad value stops the start with what is wrong and what to do.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use orchestrator_core::AgentBackend;
use orchestrator_core::coordination::RetentionPolicy;
use orchestrator_core::retry::RetryPolicy;
use orchestrator_core::supervisor::SupervisorConfig;
use orchestrator_http::rate_limit::RateLimitConfig;
use orchestrator_runner::backend::{ClaudeCode, CommandAgent};
use orchestrator_runner::process::passed_through;
use orchestrator_runner::repository_folder;

/// Run the orchestrator server.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Args {
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

    /// `false` turns rate limiting off.
    #[arg(long, env = "RATE_LIMIT_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    rate_limit_enabled: bool,

    /// Proxies of your own in front of the server (1-5; the flag alone means 1): clients'
    /// addresses are then read from `X-Forwarded-For`, that many entries from its right
    /// end. Without it the header is ignored, as anyone can write it.
    #[arg(
        long,
        env = "ORCHESTRATOR_TRUST_PROXY",
        value_name = "HOPS",
        num_args = 0..=1,
        default_missing_value = "1",
        default_value_t = 0,
        value_parser = clap::value_parser!(u8).range(0..=5)
    )]
    trust_proxy: u8,

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

    /// The local runner's agent: a command with a `{prompt_file}` argument (the path of
    /// a file holding the prompt) or a `{prompt}` argument (the prompt itself), given
    /// last: every argument after it is the agent's, dashes included (default: the
    /// claude CLI).
    #[arg(
        long = "local-agent",
        num_args = 1..,
        allow_hyphen_values = true,
        value_name = "ARG"
    )]
    local_agent: Vec<String>,

    /// A variable of the server's environment the local runner's agents get too
    /// (repeatable, or comma-separated): they see only the basics (PATH, HOME, the locale,
    /// toolchain paths), never the server's settings or secrets.
    #[arg(long = "local-agent-env", value_name = "NAME", value_delimiter = ',')]
    local_agent_env: Vec<String>,

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

    /// A JSON file of automatic-retry strategies that replace the default ones for the
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
pub(crate) enum LogFormat {
    Pretty,
    Json,
}

/// What the server runs with, checked.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) bind: SocketAddr,
    pub(crate) database_url: String,
    pub(crate) public_url: String,
    /// The operator's admin token (trimmed); `None` to use or generate a saved one.
    pub(crate) admin_token: Option<String>,
    pub(crate) cron_secret: Option<String>,
    /// `None` when rate limiting is off.
    pub(crate) rate_limits: Option<RateLimitConfig>,
    pub(crate) cors_origins: Vec<String>,
    pub(crate) verify_roots: Vec<PathBuf>,
    pub(crate) retry_policy: RetryPolicy,
    pub(crate) supervisor: SupervisorSettings,
    pub(crate) local_runner: Option<LocalRunnerSettings>,
    pub(crate) log_format: LogFormat,
}

/// The supervisor's timing and retention.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SupervisorSettings {
    interval: Duration,
    runner_inactive_after: Duration,
    stall_after: Duration,
    retention: RetentionPolicy,
}

impl SupervisorSettings {
    /// Writes these settings into the supervisor's configuration.
    pub(crate) fn apply(&self, config: &mut SupervisorConfig) {
        config.interval = self.interval;
        config.runner_inactive_after = self.runner_inactive_after;
        config.stall_after = self.stall_after;
        config.retention = self.retention;
    }
}

/// A runner inside the server process.
#[derive(Debug)]
pub(crate) struct LocalRunnerSettings {
    /// The git repository it works on.
    pub(crate) repository: PathBuf,
    /// Where its worktrees go.
    pub(crate) worktrees: PathBuf,
    pub(crate) agent: Arc<dyn AgentBackend>,
    pub(crate) parallel: usize,
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
                trusted_proxies: self.trust_proxy,
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

    /// Every setting, checked.
    pub(crate) fn settings(&self) -> anyhow::Result<Settings> {
        self.check_secrets()?;
        Ok(Settings {
            bind: self.bind,
            database_url: self.database_url(),
            public_url: self.public_url()?,
            admin_token: self.admin_token.as_deref().map(|t| t.trim().to_owned()),
            cron_secret: self.cron_secret.as_deref().map(|s| s.trim().to_owned()),
            rate_limits: self.rate_limits()?,
            cors_origins: self.cors_origins()?,
            verify_roots: self.verify_roots.clone(),
            retry_policy: self.retry_policy()?,
            supervisor: self.supervisor(),
            local_runner: self.local_runner()?,
            log_format: self.log_format,
        })
    }

    /// The supervisor's timing and retention.
    fn supervisor(&self) -> SupervisorSettings {
        const DAY: u64 = 86_400;
        SupervisorSettings {
            interval: Duration::from_secs(self.supervisor_interval),
            runner_inactive_after: Duration::from_secs(self.runner_inactive_after),
            stall_after: Duration::from_secs(self.stall_after),
            retention: RetentionPolicy {
                log_max_age: Duration::from_secs(self.keep_logs_days * DAY),
                log_max_count: self.keep_logs,
                event_max_age: Duration::from_secs(self.keep_events_days * DAY),
                event_max_count: self.keep_events,
            },
        }
    }

    /// The in-process runner, if asked for: its repository must be a git repository.
    fn local_runner(&self) -> anyhow::Result<Option<LocalRunnerSettings>> {
        let Some(dir) = &self.local_runner else {
            return Ok(None);
        };
        let repository = dir
            .canonicalize()
            .with_context(|| format!("--local-runner {} does not exist", dir.display()))?;
        if !repository.join(".git").exists() {
            bail!(
                "--local-runner {} is not a git repository: run `git init` and make a first commit there",
                repository.display()
            );
        }
        let env = passed_through(&self.local_agent_env)
            .map_err(|err| anyhow::anyhow!("--local-agent-env: {err}"))?;
        let agent: Arc<dyn AgentBackend> = if self.local_agent.is_empty() {
            Arc::new(ClaudeCode {
                binary: self.claude_bin.clone(),
                env,
                ..ClaudeCode::default()
            })
        } else {
            Arc::new(
                CommandAgent::new(self.local_agent.clone())
                    .map_err(|err| anyhow::anyhow!("--local-agent: {err}"))?
                    .with_env(env),
            )
        };
        // As a connected runner keeps them: a folder per repository.
        let worktrees = std::path::absolute(
            self.data_dir
                .join("worktrees")
                .join(repository_folder(&repository)),
        )
        .context("cannot place the local runner's worktrees")?;
        Ok(Some(LocalRunnerSettings {
            repository,
            worktrees,
            agent,
            parallel: usize::from(self.local_parallel),
        }))
    }

    /// The automatic-retry table: the default one, with the classes of `--retry-policy`
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

/// The URL without its password (in its credentials or as a `password` parameter), for
/// logs and errors.
pub(crate) fn redact(url: &str) -> String {
    let (address, query) = url
        .split_once('?')
        .map_or((url, None), |(a, q)| (a, Some(q)));
    let address = match (address.find("://"), address.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &address[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => {
                    format!("{}{user}:***{}", &address[..scheme_end + 3], &address[at..])
                }
                None => address.to_owned(),
            }
        }
        _ => address.to_owned(),
    };
    let Some(query) = query else {
        return address;
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{address}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            redact("postgres://db/orch?user=app&password=s3cret&sslmode=require"),
            "postgres://db/orch?user=app&password=***&sslmode=require"
        );
    }
}
