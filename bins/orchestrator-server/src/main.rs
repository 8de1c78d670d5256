//! `orchestrator-server`: the orchestrator in one process. Opens the database (the
//! embedded SQLite file by default, or PostgreSQL) and migrates it, resolves the admin
//! token, runs the supervisor, and serves the API until SIGINT or SIGTERM.

mod admin;
mod config;
mod local_runner;

use std::process::ExitCode;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use anyhow::Context;
use clap::Parser;
use orchestrator_core::{Clock, SystemClock};
use orchestrator_http::AppState;

use admin::{announce, resolve_admin_token};
use config::{Args, LogFormat, Settings, redact};

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to standard error; standard output carries the address and login lines.
    // Colour only for a person at a terminal, never in files and pipes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    // The address first: a server that cannot listen writes nothing (no database, no
    // admin token whose one showing would be lost).
    let listener = listen(settings.bind)?;
    let url = &settings.database_url;
    let store = orchestrator_store::connect(url)
        .await
        .with_context(|| format!("cannot open the database at {}", redact(url)))?;
    store
        .ping()
        .await
        .context("the database opened but does not answer")?;
    tracing::info!(database = %redact(url), "database ready, schema up to date");

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let admin = resolve_admin_token(
        settings.admin_token.as_deref(),
        store.as_ref(),
        clock.as_ref(),
    )
    .await
    .context("cannot settle the admin token")?;
    let mut state = AppState::new(store, clock, admin.hash(), settings.public_url.clone())
        .with_rate_limits(settings.rate_limits)
        .with_verify_roots(&settings.verify_roots)
        .map_err(|err| anyhow::anyhow!("{err} (--verify-root / ORCHESTRATOR_VERIFY_ROOTS)"))?
        .with_supervisor_config(|config| settings.supervisor.apply(config));
    state.cors_origins = settings.cors_origins;
    state.retry_policy = settings.retry_policy;
    if let Some(secret) = &settings.cron_secret {
        state = state.with_cron_secret(secret);
    }
    let state = web::Data::new(state);
    let local_runner = match settings.local_runner {
        Some(runner) => Some(local_runner::start(runner, &state).await?),
        None => None,
    };

    let listening = listener
        .local_addr()
        .context("cannot read the address listened on")?;
    let server = HttpServer::new({
        let state = state.clone();
        move || App::new().configure(orchestrator_http::configure(state.clone()))
    })
    // A client that closes its side has left: its connection ends at once, so an event
    // stream nobody reads is dropped now rather than when a later write fails.
    .h1_allow_half_closed(false)
    .listen(listener)
    .with_context(|| format!("cannot serve on {listening}"))?
    .disable_signals()
    .run();
    announce(&format!("http://{listening}"), &state.public_url, &admin);

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

/// Listens on `bind`, or says why not and how to choose another address.
fn listen(bind: std::net::SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(bind).map_err(|err| {
        let advice = match err.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "another program (perhaps another orchestrator-server) listens there: stop it, \
                 or choose another address with --bind (e.g. --bind {}:{})",
                bind.ip(),
                bind.port().wrapping_add(1).max(1)
            ),
            std::io::ErrorKind::PermissionDenied => {
                "ports below 1024 need privileges: choose another with --bind".to_owned()
            }
            _ => "choose another address with --bind HOST:PORT".to_owned(),
        };
        anyhow::anyhow!("cannot listen on {bind}: {err}; {advice}; nothing was written")
    })
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

#[actix_web::main]
async fn main() -> ExitCode {
    let started = async {
        let settings = Args::parse().settings()?;
        init_logging(settings.log_format);
        run(settings).await
    };
    match started.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
