//! A verifier plugin: changes may not add `TODO` or `FIXME` markers.
//!
//! Anything that implements [`Verifier`] runs on every attempt of a runner, after the
//! project's own checks ([`run_once`] does this on an embedded store):
//!
//! ```no_run
//! # fn runner(client: std::sync::Arc<dyn orchestrator_runner::OrchestratorClient>,
//! #           agent: std::sync::Arc<dyn orchestrator_core::AgentBackend>,
//! #           worktrees: orchestrator_runner::Worktrees) {
//! use custom_verifier::NoNewTodo;
//! use orchestrator_runner::Runner;
//!
//! let runner = Runner::builder(client, agent, worktrees).verifier(NoNewTodo).build();
//! # }
//! ```
//!
//! or judges a working tree's change on its own, with [`Verification`]:
//!
//! ```no_run
//! # async fn check(work_dir: &std::path::Path) -> Result<(), orchestrator_verify::PrepareError> {
//! use custom_verifier::NoNewTodo;
//! use orchestrator_verify::Verification;
//!
//! let change = Verification::new().with(NoNewTodo).prepare(work_dir, "HEAD")?;
//! let (reports, result) = change.run("a task", "what it asks", vec!["/".into()]).await;
//! println!("passed: {}, confidence {}", result.passed, result.confidence_score);
//! # Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use orchestrator_core::model::{FailureKind, VerificationFailure};
use orchestrator_core::verify::{StageReport, StageStatus, VerificationInput, Verifier};
use orchestrator_core::{AgentBackend, Store, SystemClock};
use orchestrator_runner::{LocalClient, Runner, RunnerConfig, Worktrees};
use orchestrator_verify::{ChangeKind, ChangeSet, Verification};

/// The markers a change may not add.
const MARKERS: &[&str] = &["TODO", "FIXME"];

/// Fails a change that adds a line with a `TODO` or `FIXME` marker.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNewTodo;

/// The first marker in `line` that stands as a word, with its 1-based column.
fn marker_in(line: &str) -> Option<(&'static str, usize)> {
    MARKERS.iter().find_map(|marker| {
        line.match_indices(marker).find_map(|(at, _)| {
            let before = line[..at].chars().next_back();
            let after = line[at + marker.len()..].chars().next();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            (!word(before) && !word(after)).then_some((*marker, at + 1))
        })
    })
}

#[async_trait]
impl Verifier for NoNewTodo {
    fn name(&self) -> &str {
        "no new TODO"
    }

    async fn verify(&self, input: &VerificationInput) -> orchestrator_core::Result<StageReport> {
        let started = Instant::now();
        let Some(base) = &input.base_commit else {
            return Ok(report(
                StageStatus::Skipped {
                    reason: "needs the attempt's base commit to tell new lines from old".into(),
                },
                Vec::new(),
                started,
            ));
        };
        let changes =
            ChangeSet::collect(&input.work_dir, base).map_err(orchestrator_core::Error::backend)?;
        let mut failures = Vec::new();
        for file in changes
            .files
            .iter()
            .filter(|f| f.kind != ChangeKind::Deleted && !f.binary)
        {
            let Ok(text) = std::fs::read_to_string(input.work_dir.join(&file.path)) else {
                continue;
            };
            for range in &file.changed_lines {
                for number in range.start..=range.end {
                    let line = text.lines().nth(number as usize - 1).unwrap_or_default();
                    if let Some((marker, column)) = marker_in(line) {
                        failures.push(VerificationFailure {
                            kind: FailureKind::Policy,
                            message: format!("adds a {marker} marker: {}", line.trim()),
                            file: Some(file.path.clone()),
                            line: Some(number),
                            column: u32::try_from(column).ok(),
                        });
                    }
                }
            }
        }
        let status = if failures.is_empty() {
            StageStatus::Passed
        } else {
            StageStatus::Failed
        };
        Ok(report(status, failures, started))
    }
}

/// One round of a runner in this process: it claims what is queued in `store` (up to two
/// tasks at once), runs `agent` on each in its own worktree of `repository` (under
/// `worktrees`), verifies every change with the project's checks and [`NoNewTodo`], and
/// reports back, before it returns.
pub async fn run_once(
    store: Arc<dyn Store>,
    repository: &Path,
    worktrees: &Path,
    agent: Arc<dyn AgentBackend>,
) -> anyhow::Result<()> {
    let client =
        LocalClient::register(store, Arc::new(SystemClock), "verifying runner", repository).await?;
    let runner = Runner::builder(
        Arc::new(client),
        agent,
        Worktrees::new(repository, worktrees),
    )
    .verification(Verification::new().with(NoNewTodo))
    .config(RunnerConfig {
        parallel: 2,
        once: true,
        ..RunnerConfig::default()
    })
    .build();
    runner.run().await?;
    Ok(())
}

fn report(
    status: StageStatus,
    failures: Vec<VerificationFailure>,
    started: Instant,
) -> StageReport {
    StageReport {
        stage: "no new TODO".into(),
        kind: FailureKind::Policy,
        status,
        failures,
        tests_total: None,
        tests_failed: None,
        score: None,
        duration: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_count_only_as_words() {
        assert_eq!(marker_in("// TODO: later"), Some(("TODO", 4)));
        assert_eq!(
            marker_in("let fixme_count = 1; // FIXME"),
            Some(("FIXME", 25))
        );
        assert_eq!(marker_in("let TODOS = 3;"), None);
        assert_eq!(marker_in("plain line"), None);
    }
}
