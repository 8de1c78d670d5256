//! `agent-orchestrator`: connects a machine to an orchestrator server and runs coding
//! agents on its tasks, each in its own git worktree.

mod admin;
mod config;
mod progress;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use orchestrator_core::ids::TaskId;
use orchestrator_core::model::MAX_PATCH_BYTES;
use orchestrator_runner::backend::{
    AgentBackend, AnthropicAgent, ClaudeCode, CommandAgent, DEFAULT_ALLOWED_TOOLS, DEFAULT_MODEL,
    OpenAiAgent, Prices,
};
use orchestrator_runner::process::passed_through;
use orchestrator_runner::{
    ConnectionToken, DEFAULT_MAX_PATCH_BYTES, HttpClient, Runner, RunnerConfig, RunnerControl,
    Spool, WorktreeState, Worktrees, repository_folder, runner_identity,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::config::Config;

/// Connect this machine to an orchestrator and run coding agents on its tasks.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect this machine with a connection token minted on the server.
    Connect {
        /// The connection token (`GET /api/connect` or the dashboard prints it).
        token: String,
        /// The git repository the agents work on (default: the current directory).
        #[arg(short = 'd', long = "dir")]
        dir: Option<PathBuf>,
        /// This runner's name on the server (default: generated).
        #[arg(long)]
        name: Option<String>,
        /// The agent backend `start` uses unless told otherwise.
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
        /// A PEM file with the certificate authority of an `https://` orchestrator whose
        /// certificate the public roots do not vouch for (kept for later commands).
        #[arg(long)]
        ca_cert: Option<PathBuf>,
    },
    /// Claim tasks and run agents on them until Ctrl-C.
    Start(StartArgs),
    /// Show the connection and what the server says about this runner.
    Status,
    /// Revoke this runner on the server and forget the connection.
    Disconnect,
    /// The task worktrees, whether their work is merged, and where their tasks stand;
    /// `--prune` removes the merged ones.
    Worktrees {
        /// The git repository (default: the one given at connect, else the current
        /// directory).
        #[arg(short = 'd', long = "dir")]
        dir: Option<PathBuf>,
        /// Where the task worktrees are kept (default: the platform's data directory).
        #[arg(long)]
        worktree_dir: Option<PathBuf>,
        /// Remove the worktrees and branches whose commits are all merged into the
        /// repository's HEAD and that hold no uncommitted changes.
        #[arg(long)]
        prune: bool,
        /// With --prune, also remove the worktrees of failed and cancelled tasks (asks the
        /// server which those are); a branch with commits is kept, and a worktree with
        /// uncommitted changes is never removed.
        #[arg(long, requires = "prune")]
        all_finished: bool,
    },
    /// Manage tasks (needs the admin token).
    Task {
        #[command(flatten)]
        admin: admin::AdminArgs,
        #[command(subcommand)]
        command: admin::TaskCommand,
    },
    /// The queued tasks, in the order runners take them (needs the admin token).
    Queue {
        #[command(flatten)]
        admin: admin::AdminArgs,
    },
    /// The agent slots, newest first, with what each works on (needs the admin token).
    Agents {
        #[command(flatten)]
        admin: admin::AdminArgs,
        /// Agents to show.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
    },
    /// The runners, newest first, and when each was last seen (needs the admin token).
    Runners {
        #[command(flatten)]
        admin: admin::AdminArgs,
        /// Runners to show.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
    },
    /// An agent's log (needs the admin token).
    Logs {
        #[command(flatten)]
        admin: admin::AdminArgs,
        /// The agent's id, or a unique beginning of it.
        agent_id: String,
        /// Keep printing new entries.
        #[arg(short, long)]
        follow: bool,
        /// Entries to show.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// The `claude` CLI (Claude Code).
    ClaudeCode,
    /// Any command-line agent, given after `--` with a `{prompt_file}` argument (the path
    /// of a file holding the prompt) or a `{prompt}` argument (the prompt itself).
    Command,
    /// The Anthropic Messages API with the runner's own tools (needs an API key).
    Anthropic,
    /// An OpenAI-compatible Chat Completions server (OPENAI_BASE_URL) with the same tools.
    Openai,
}

impl BackendKind {
    fn name(self) -> &'static str {
        match self {
            Self::ClaudeCode => "claude-code",
            Self::Command => "command",
            Self::Anthropic => "anthropic",
            Self::Openai => "openai",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::value_variants()
            .iter()
            .copied()
            .find(|k| k.name() == name)
    }
}

#[derive(Debug, clap::Args)]
struct StartArgs {
    /// The git repository the agents work on (default: the one given at connect).
    #[arg(short = 'd', long = "dir")]
    dir: Option<PathBuf>,
    /// An Anthropic API key (the anthropic backend and the semantic review need one;
    /// Claude Code uses it instead of its own login).
    #[arg(
        short = 'k',
        long = "api-key",
        env = "ANTHROPIC_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// A key for the openai backend (local servers often need none).
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    openai_api_key: Option<String>,
    /// Have a model score each change against its task (advisory; needs an API key).
    #[arg(long)]
    semantic_review: bool,
    /// Claim once, run what came, and exit.
    #[arg(long)]
    once: bool,
    /// Agents run at once (1-32).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=32))]
    parallel: u8,
    /// The agent backend (default: the one given at connect, else claude-code when
    /// `claude` is installed).
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// The claude binary.
    #[arg(long, env = "CLAUDE_BIN", default_value = "claude")]
    claude_bin: PathBuf,
    /// Tools Claude Code may use without asking.
    #[arg(long, default_value = DEFAULT_ALLOWED_TOOLS)]
    allowed_tools: String,
    /// Most agent turns per attempt.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_turns: u32,
    /// The model Claude Code uses (default: its own).
    #[arg(long)]
    model: Option<String>,
    /// Let Claude Code run any command without asking (refused when running as root).
    #[arg(long)]
    dangerously_skip_permissions: bool,
    /// What the anthropic and openai backends' tokens cost, in US dollars per million:
    /// INPUT,OUTPUT[,CACHE_READ,CACHE_WRITE] (default: the list price of known Anthropic
    /// models; otherwise the cost is recorded as 0).
    #[arg(long)]
    prices: Option<Prices>,
    /// Where task worktrees are kept (default: the platform's data directory).
    #[arg(long)]
    worktree_dir: Option<PathBuf>,
    /// Report changes without verifying them.
    #[arg(long)]
    no_verify: bool,
    /// A variable of this environment the agents get too (repeatable, or comma-separated):
    /// agents see only the basics (PATH, HOME, the locale, toolchain paths) and their
    /// backend's key, never the runner's other variables.
    #[arg(long = "pass-env", value_name = "NAME", value_delimiter = ',')]
    pass_env: Vec<String>,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    heartbeat_secs: u64,
    /// Seconds an attempt's lease lasts without a heartbeat (a runner that dies gives
    /// its tasks back after this long).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(5..=3600))]
    lease_secs: u64,
    /// The largest patch of a change sent with its completion, in KiB (at most 1024, what
    /// servers accept); a longer one ends after the last whole line that fits.
    #[arg(long, default_value_t = DEFAULT_MAX_PATCH_BYTES / 1024, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PATCH_BYTES / 1024)))]
    max_patch_kib: u32,
    /// The command backend's agent: the program and its arguments, one of them holding
    /// `{prompt_file}`, the path of a file holding the prompt (e.g. `-- aider
    /// --message-file {prompt_file}`), or `{prompt}`, the prompt itself (e.g. `-- codex
    /// exec {prompt}`; visible in the process list, and at most 128 KiB).
    #[arg(last = true)]
    agent_command: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGENT_ORCHESTRATOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Connect {
            token,
            dir,
            name,
            backend,
            ca_cert,
        } => connect(&token, dir, name, backend, ca_cert).await,
        Command::Start(args) => start(args).await,
        Command::Status => status().await,
        Command::Disconnect => disconnect().await,
        Command::Worktrees {
            dir,
            worktree_dir,
            prune,
            all_finished,
        } => worktrees(dir, worktree_dir, prune, all_finished).await,
        Command::Task { admin, command } => admin::task(&admin, command).await,
        Command::Queue { admin } => admin::queue(&admin).await,
        Command::Agents { admin, limit } => admin::agents(&admin, limit).await,
        Command::Runners { admin, limit } => admin::runners(&admin, limit).await,
        Command::Logs {
            admin,
            agent_id,
            follow,
            limit,
        } => admin::logs(&admin, &agent_id, follow, limit).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `dir`, or the current directory, as an absolute path to a git repository.
fn repository(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match dir {
        Some(dir) => dir,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    let dir = dir.canonicalize().with_context(|| {
        format!(
            "{} does not exist; give the repository with -d DIR",
            dir.display()
        )
    })?;
    if !dir.join(".git").exists() {
        bail!(
            "{} is not a git repository: agents work in git worktrees; run `git init` and make a first commit, or give another directory with -d DIR",
            dir.display()
        );
    }
    Ok(dir)
}

async fn connect(
    token: &str,
    dir: Option<PathBuf>,
    name: Option<String>,
    backend: Option<BackendKind>,
    ca_cert: Option<PathBuf>,
) -> anyhow::Result<()> {
    let token: ConnectionToken = token.parse().map_err(anyhow::Error::msg)?;
    let dir = repository(dir)?;
    let ca_cert = ca_cert
        .map(|path| {
            path.canonicalize()
                .with_context(|| format!("--ca-cert {} does not exist", path.display()))
        })
        .transpose()?;
    let certificates = config::ca_certificates(ca_cert.as_deref())?;
    let (_, connected) = HttpClient::connect(
        &token,
        name.as_deref(),
        &dir.to_string_lossy(),
        runner_identity(backend.map(|kind| kind.name().to_owned())),
        &certificates,
    )
    .await
    .context("connecting failed")?;
    let path = config::path()?;
    config::save(
        &path,
        &Config {
            url: token.url.clone(),
            runner_token: connected.runner_token,
            runner_id: connected.runner_id.to_string(),
            runner_name: connected.runner_name.clone(),
            working_dir: dir.clone(),
            backend: backend.map(|b| b.name().to_owned()),
            ca_cert,
        },
    )?;
    println!(
        "connected to {} as {} (repository {}); saved to {}",
        token.url,
        connected.runner_name,
        dir.display(),
        path.display()
    );
    println!("next: agent-orchestrator start");
    Ok(())
}

/// Whether `program` can be run: a path that exists, or a name on `PATH`.
fn installed(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Where task worktrees of `repository` go by default.
fn default_worktree_dir(repository: &Path) -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".local/share")))
        .context("no home directory for worktrees: give one with --worktree-dir")?;
    Ok(data
        .join("agent-orchestrator/worktrees")
        .join(repository_folder(repository)))
}

async fn start(args: StartArgs) -> anyhow::Result<()> {
    if args.lease_secs <= args.heartbeat_secs {
        bail!(
            "--lease-secs {} must be longer than --heartbeat-secs {}: a lease that runs out \
             between two heartbeats gives the task to another runner while this one works \
             on it (the default lease is 300 s; a few heartbeats' worth is the least)",
            args.lease_secs,
            args.heartbeat_secs
        );
    }
    let path = config::path()?;
    let config = config::load(&path)?;
    let repository = repository(args.dir.clone().or(Some(config.working_dir.clone())))?;
    let kind = match args
        .backend
        .or_else(|| config.backend.as_deref().and_then(BackendKind::from_name))
    {
        Some(kind) => kind,
        None if !args.agent_command.is_empty() => BackendKind::Command,
        None if installed(&args.claude_bin) => BackendKind::ClaudeCode,
        None => bail!(
            "no agent backend: `{}` is not installed; install Claude Code (npm install -g @anthropic-ai/claude-code), point --claude-bin at it, or pick --backend command -- <agent> {{prompt}}",
            args.claude_bin.display()
        ),
    };
    if args.dangerously_skip_permissions && kind != BackendKind::ClaudeCode {
        bail!(
            "--dangerously-skip-permissions is a claude-code setting; the {} backend does not use it: drop the flag",
            kind.name()
        );
    }
    if args.prices.is_some() && !matches!(kind, BackendKind::Anthropic | BackendKind::Openai) {
        bail!(
            "--prices is for the anthropic and openai backends (the {} backend's cost does not come from token prices): drop the flag",
            kind.name()
        );
    }
    let passed =
        passed_through(&args.pass_env).map_err(|err| anyhow::anyhow!("--pass-env: {err}"))?;
    if !passed.is_empty() && !matches!(kind, BackendKind::ClaudeCode | BackendKind::Command) {
        bail!(
            "--pass-env is for agents that run as processes (claude-code, command); the {} \
             backend runs in the runner: drop the flag",
            kind.name()
        );
    }
    let agent: Arc<dyn AgentBackend> = match kind {
        BackendKind::ClaudeCode => {
            if !installed(&args.claude_bin) {
                bail!(
                    "`{}` is not installed: install Claude Code (npm install -g @anthropic-ai/claude-code) or give its path with --claude-bin",
                    args.claude_bin.display()
                );
            }
            let mut claude = ClaudeCode {
                binary: args.claude_bin.clone(),
                allowed_tools: args.allowed_tools.clone(),
                max_turns: args.max_turns,
                model: args.model.clone(),
                env: passed.clone(),
                skip_permissions: args.dangerously_skip_permissions,
            };
            claude.check().map_err(anyhow::Error::msg)?;
            if let Some(key) = &args.api_key {
                claude.env.push(("ANTHROPIC_API_KEY".into(), key.clone()));
            }
            Arc::new(claude)
        }
        BackendKind::Anthropic => Arc::new(anthropic_agent(&args)?),
        BackendKind::Openai => {
            let Some(model) = args.model.as_deref() else {
                bail!(
                    "the openai backend needs the model's name: pass --model (e.g. --model qwen2.5-coder)"
                );
            };
            let mut agent = OpenAiAgent::new(args.openai_api_key.as_deref(), model);
            agent.max_turns = args.max_turns;
            agent.prices = args.prices;
            Arc::new(agent)
        }
        BackendKind::Command => {
            if args.agent_command.is_empty() {
                bail!(
                    "the command backend needs the agent after --, e.g. agent-orchestrator start --backend command -- codex exec {{prompt}}"
                );
            }
            Arc::new(
                CommandAgent::new(args.agent_command.clone())
                    .map_err(anyhow::Error::msg)?
                    .with_env(passed.clone()),
            )
        }
    };
    let worktree_dir = match &args.worktree_dir {
        Some(dir) => dir.clone(),
        None => default_worktree_dir(&repository)?,
    };
    let client = config.client()?;
    let (events, mut received) = mpsc::unbounded_channel();
    let runner = Runner::builder(
        Arc::new(client),
        agent,
        Worktrees::new(&repository, &worktree_dir),
    )
    .config(RunnerConfig {
        parallel: usize::from(args.parallel),
        heartbeat_every: Duration::from_secs(args.heartbeat_secs),
        lease_ttl: Duration::from_secs(args.lease_secs),
        verify: !args.no_verify,
        once: args.once,
        max_patch_bytes: args.max_patch_kib * 1024,
        ..RunnerConfig::default()
    })
    .events(events)
    .spool(Spool::new(config::spool_dir(&path)));
    let runner = if args.semantic_review {
        runner.semantic_review(Arc::new(anthropic_agent(&args)?))
    } else {
        runner
    };
    let runner = runner.build();
    println!(
        "{} runs {} agent(s) with {} on {} (worktrees in {}); Ctrl-C to finish",
        config.runner_name,
        args.parallel,
        kind.name(),
        repository.display(),
        worktree_dir.display()
    );
    tokio::spawn(handle_signals(runner.control()));
    let printer = tokio::spawn(async move {
        let mut display = progress::Display::new();
        while let Some(event) = received.recv().await {
            display.show(&event);
        }
    });
    let outcome = runner.run().await;
    drop(runner);
    let _ = printer.await;
    outcome.map_err(anyhow::Error::from)
}

/// The Messages API client for the anthropic backend and the semantic review.
fn anthropic_agent(args: &StartArgs) -> anyhow::Result<AnthropicAgent> {
    let Some(key) = args.api_key.as_deref().filter(|k| !k.trim().is_empty()) else {
        bail!("an Anthropic API key is needed: pass -k/--api-key or set ANTHROPIC_API_KEY");
    };
    let mut agent = AnthropicAgent::new(key.trim(), args.model.as_deref().unwrap_or(DEFAULT_MODEL));
    agent.max_turns = args.max_turns;
    if args.prices.is_some() {
        agent.prices = args.prices;
    }
    Ok(agent)
}

/// Ctrl-C once drains; a second Ctrl-C or SIGTERM stops the agents now.
async fn handle_signals(control: RunnerControl) {
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!("warning: signals cannot be handled; stop the runner with SIGKILL");
        return;
    };
    let mut interrupts = 0;
    loop {
        tokio::select! {
            _ = interrupt.recv() => {
                interrupts += 1;
                if interrupts == 1 {
                    eprintln!(
                        "finishing the current work (a paused agent waits to be resumed); Ctrl-C again stops the agents now"
                    );
                    control.drain();
                } else {
                    eprintln!("stopping the agents and giving their tasks back");
                    control.stop();
                }
            }
            _ = terminate.recv() => {
                eprintln!("stopping the agents and giving their tasks back");
                control.stop();
            }
        }
    }
}

async fn worktrees(
    dir: Option<PathBuf>,
    worktree_dir: Option<PathBuf>,
    prune: bool,
    all_finished: bool,
) -> anyhow::Result<()> {
    let connected = config::load(&config::path()?).ok();
    let repository = repository(dir.or(connected.as_ref().map(|c| c.working_dir.clone())))?;
    let root = match worktree_dir {
        Some(dir) => dir,
        None => default_worktree_dir(&repository)?,
    };
    let worktrees = Worktrees::new(&repository, &root);
    let listed = worktrees.list()?;
    let ids: Vec<TaskId> = listed.iter().filter_map(|w| w.task).collect();
    let tasks = match (&connected, ids.is_empty()) {
        (_, true) => Ok(HashMap::new()),
        (Some(config), false) => task_states(config, &ids).await,
        (None, false) => Err(anyhow::anyhow!(
            "this machine is not connected (agent-orchestrator connect <token>)"
        )),
    };
    if prune {
        let finished: HashSet<TaskId> = if all_finished {
            let tasks = tasks.context(
                "--all-finished asks the server which tasks failed or were cancelled, and it \
                 could not",
            )?;
            tasks
                .iter()
                .filter(|(_, (status, _))| matches!(status.as_str(), "FAILED" | "CANCELLED"))
                .map(|(id, _)| *id)
                .collect()
        } else {
            HashSet::new()
        };
        let pruned = worktrees.prune_with(&finished)?;
        for worktree in &pruned {
            let what = match worktree.state {
                WorktreeState::Missing => "forgot   (directory missing; branch kept)",
                WorktreeState::Unmerged { .. } => "removed  (task finished; branch kept)",
                _ => "removed ",
            };
            println!("{what} {} ({})", worktree.path.display(), worktree.branch);
        }
        let kept = listed.len().saturating_sub(pruned.len());
        println!(
            "{} worktree(s) removed, {kept} kept{}",
            pruned.len(),
            if all_finished {
                ""
            } else {
                " (--all-finished also removes those of failed and cancelled tasks)"
            }
        );
        return Ok(());
    }
    if listed.is_empty() {
        println!("no task worktrees in {}", root.display());
    }
    if let Err(err) = &tasks {
        eprintln!("the tasks' states are not shown: {err:#}");
    }
    for worktree in listed {
        let task = worktree
            .task
            .and_then(|id| tasks.as_ref().ok().and_then(|t| t.get(&id)))
            .map(|(status, title)| format!("{status:<11} {title}"))
            .unwrap_or_default();
        println!(
            "{}  {:<24} {}  {}",
            worktree.branch,
            worktree.state.to_string(),
            task,
            worktree.path.display()
        );
    }
    Ok(())
}

/// The status and title of each of `ids` that the server knows, through this runner's
/// session.
async fn task_states(
    config: &Config,
    ids: &[TaskId],
) -> anyhow::Result<HashMap<TaskId, (String, String)>> {
    let client = config.client()?;
    let answer = client
        .task_states(ids)
        .await
        .context("the server did not answer")?;
    Ok(answer
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|task| {
            let id = task["id"].as_str()?.parse().ok()?;
            let status = task["status"].as_str()?.to_owned();
            let title = task["title"].as_str().unwrap_or_default().to_owned();
            Some((id, (status, title)))
        })
        .collect())
}

async fn status() -> anyhow::Result<()> {
    let path = config::path()?;
    let config = config::load(&path)?;
    println!("runner     {} ({})", config.runner_name, config.runner_id);
    println!("server     {}", config.url);
    println!("repository {}", config.working_dir.display());
    println!(
        "backend    {}",
        config.backend.as_deref().unwrap_or("chosen at start")
    );
    let client = config.client()?;
    let status = match client.status().await {
        Ok(status) => status,
        Err(err) if err.is_unauthorized() => bail!(
            "this runner's session was revoked on the server ({err}): connect again with a new \
             connection token (agent-orchestrator connect <token>)"
        ),
        Err(err) => return Err(err).context("the server did not answer"),
    };
    let agents = status["activeAgents"].as_array().map_or(0, Vec::len);
    println!("working    {agents} agent(s)");
    println!("queued     {} task(s)", status["availableTasks"]["count"]);
    Ok(())
}

async fn disconnect() -> anyhow::Result<()> {
    let path = config::path()?;
    let config = config::load(&path)?;
    let client = config.client()?;
    match client.disconnect().await {
        Ok(()) => println!("revoked {} on {}", config.runner_name, config.url),
        Err(err) if err.is_unauthorized() => println!("{} was already revoked", config.runner_name),
        Err(err) => {
            return Err(err).context(
                "the server could not revoke this runner (the config is kept; try again, or have an admin revoke it with DELETE /api/runners/:id)",
            );
        }
    }
    config::remove(&path)?;
    println!("forgot the connection ({})", path.display());
    Ok(())
}
