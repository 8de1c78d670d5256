//! A runner inside the server process (`--local-runner DIR`), on the server's own store.

use std::sync::Arc;

use anyhow::Context;
use orchestrator_http::AppState;
use orchestrator_runner::{LocalClient, Runner, RunnerConfig, RunnerControl, Worktrees};

use crate::config::LocalRunnerSettings;

/// Registers the runner's session and starts it; returns its control and its task.
pub(crate) async fn start(
    settings: LocalRunnerSettings,
    state: &AppState,
) -> anyhow::Result<(RunnerControl, tokio::task::JoinHandle<()>)> {
    let client = LocalClient::register(
        state.store.clone(),
        state.clock.clone(),
        "local runner",
        &settings.repository,
    )
    .await
    .context("cannot register the local runner")?
    .with_retry_policy(state.retry_policy.clone());
    let worktrees = Worktrees::new(&settings.repository, settings.worktrees);
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let runner = Runner::builder(Arc::new(client), settings.agent, worktrees)
        .config(RunnerConfig {
            parallel: settings.parallel,
            ..RunnerConfig::default()
        })
        .events(events)
        .build();
    let control = runner.control();
    tokio::spawn(async move {
        while let Some(event) = received.recv().await {
            tracing::info!("local runner: {event}");
        }
    });
    let running = tokio::spawn(async move {
        if let Err(err) = runner.run().await {
            tracing::error!(error = %err, "the local runner stopped");
        }
    });
    tracing::info!(repository = %settings.repository.display(), "local runner started");
    Ok((control, running))
}
