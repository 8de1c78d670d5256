//! The orchestrator embedded in a program of your own: the SQLite store in a file, tasks
//! queued through the `Store` trait, and a runner working on them in process with a
//! custom backend — no server, no network.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use custom_agent_backend::ChangelogAgent;
use orchestrator_core::model::{NewTask, Task, TaskStatus};
use orchestrator_core::{Clock, Store, SystemClock};
use orchestrator_runner::{LocalClient, Runner, RunnerConfig, Worktrees};
use orchestrator_store::SqliteStore;

/// Queues `titles` as tasks on the repository at `repository`, runs them with the
/// changelog agent (one worktree and branch each), and returns the tasks as they ended.
/// The database and the worktrees live under `state`.
pub async fn run(repository: &Path, state: &Path, titles: &[&str]) -> anyhow::Result<Vec<Task>> {
    std::fs::create_dir_all(state)?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(state.join("orchestrator.db"))
            .await
            .context("cannot open the database")?,
    );
    let clock = Arc::new(SystemClock);
    let mut ids = Vec::new();
    for title in titles {
        let mut task = NewTask::new(*title, format!("Record: {title}"));
        // Every task writes the changelog: the lock on it makes them take turns.
        task.files_hint = vec!["CHANGELOG.md".into()];
        ids.push(store.create_task(task, clock.now()).await?.value.id);
    }

    let client = LocalClient::register(store.clone(), clock, "embedded runner", repository).await?;
    let runner = Runner::builder(
        Arc::new(client),
        Arc::new(ChangelogAgent),
        Worktrees::new(repository, state.join("worktrees")),
    )
    .config(RunnerConfig {
        parallel: 2,
        once: true,
        // The changelog is Markdown, which no check reads: a change that nothing can
        // verify does not pass, so this runner reports its changes unverified.
        verify: false,
        ..RunnerConfig::default()
    })
    .build();
    // `once` claims one batch; claim again until every task has ended.
    loop {
        runner.run().await?;
        let tasks = store.get_tasks(&ids).await?;
        let ended = |t: &Task| {
            matches!(
                t.status,
                TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
            )
        };
        if tasks.iter().all(ended) {
            return Ok(ids
                .iter()
                .filter_map(|id| tasks.iter().find(|t| t.id == *id).cloned())
                .collect());
        }
    }
}
