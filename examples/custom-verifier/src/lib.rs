//! A verifier plugin: changes may not add `TODO` or `FIXME` markers.
//!
//! Anything that implements [`Verifier`] joins a [`Pipeline`](orchestrator_verify::Pipeline)
//! next to the built-in stages:
//!
//! ```no_run
//! # async fn check(input: orchestrator_core::verify::VerificationInput) {
//! use custom_verifier::NoNewTodo;
//! use orchestrator_verify::{Pipeline, SyntaxVerifier};
//!
//! let pipeline = Pipeline::new().with(SyntaxVerifier::default()).with(NoNewTodo);
//! let (reports, result) = pipeline.run(&input).await;
//! println!("passed: {}, confidence {}", result.passed, result.confidence_score);
//! # }
//! ```

use std::time::Instant;

use async_trait::async_trait;
use orchestrator_core::model::{FailureKind, VerificationFailure};
use orchestrator_core::verify::{StageReport, StageStatus, VerificationInput, Verifier};
use orchestrator_verify::{ChangeKind, ChangeSet};

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
