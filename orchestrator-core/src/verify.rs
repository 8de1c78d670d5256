//! The [`Verifier`] seam: one check of an attempt's change (syntax, types, lint, tests,
//! policy, review), composed into a pipeline by `orchestrator-verify`.

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{FailureKind, VerificationFailure};

/// What a verifier looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationInput {
    pub task_title: String,
    pub task_description: String,
    /// The working tree holding the change.
    pub work_dir: PathBuf,
    /// Repository-relative paths the change touches.
    pub changed_files: Vec<String>,
    /// Paths the task holds locks on.
    pub locked_paths: Vec<String>,
    /// The commit the attempt started from, where known: verifiers that look at the
    /// change itself (line ranges, insertions) compare the working tree with it.
    pub base_commit: Option<String>,
}

/// Whether a stage passed. Nothing passes by default: a check that could not run is
/// skipped, with the reason; a check that has nothing to look at in the change (no file
/// in a language it reads) does not apply, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StageStatus {
    Passed,
    Failed,
    Skipped { reason: String },
    NotApplicable { reason: String },
}

impl StageStatus {
    /// Whether the check ran and judged the change (passed or failed).
    pub fn ran(&self) -> bool {
        matches!(self, Self::Passed | Self::Failed)
    }
}

/// What one verifier found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StageReport {
    /// The verifier's name.
    pub stage: String,
    /// Which check this is, for weighting and retry classification.
    pub kind: FailureKind,
    #[serde(flatten)]
    pub status: StageStatus,
    pub failures: Vec<VerificationFailure>,
    pub tests_total: Option<u32>,
    pub tests_failed: Option<u32>,
    /// A 0..1 score, for stages that grade rather than pass or fail.
    pub score: Option<f64>,
    #[serde(rename = "durationMs", with = "crate::time::millis")]
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub duration: Duration,
}

impl StageReport {
    /// A report without test counts or a score.
    pub fn new(
        stage: &str,
        kind: FailureKind,
        status: StageStatus,
        failures: Vec<VerificationFailure>,
        duration: Duration,
    ) -> Self {
        Self {
            stage: stage.to_owned(),
            kind,
            status,
            failures,
            tests_total: None,
            tests_failed: None,
            score: None,
            duration,
        }
    }

    /// Passed without failures, failed with them.
    pub fn judged(
        stage: &str,
        kind: FailureKind,
        failures: Vec<VerificationFailure>,
        duration: Duration,
    ) -> Self {
        let status = if failures.is_empty() {
            StageStatus::Passed
        } else {
            StageStatus::Failed
        };
        Self::new(stage, kind, status, failures, duration)
    }
}

/// One check of a change.
///
/// Contract: a failing check is an `Ok` report with [`StageStatus::Failed`] and structured
/// failures; `Err` is for the verifier itself breaking. A verifier must respect its own
/// time limit and leave no process behind when its future is dropped.
#[async_trait]
pub trait Verifier: Send + Sync + Debug + 'static {
    /// A short, stable name ("syntax", "clippy", "no-todo").
    fn name(&self) -> &str;

    /// Checks the change.
    async fn verify(&self, input: &VerificationInput) -> Result<StageReport>;
}
