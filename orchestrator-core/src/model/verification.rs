use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{TaskId, VerificationResultId};
use crate::model::{FailureKind, check_max_chars};
use crate::time::Timestamp;
use crate::verify::{StageReport, StageStatus};

const MAX_FAILURES: usize = 1_000;
const MAX_RECOMMENDATIONS: usize = 100;
const MAX_STAGES: usize = 50;
const MAX_STAGE_NAME_CHARS: usize = 100;
const MAX_SKIP_REASON_CHARS: usize = 2_000;

/// The evidence of one verification run of a task's change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VerificationResult {
    pub id: VerificationResultId,
    pub task_id: TaskId,
    pub attempt_number: u32,
    pub passed: bool,
    /// 0 to 1.
    pub confidence_score: f64,
    pub syntax_passed: Option<bool>,
    pub types_passed: Option<bool>,
    pub lint_passed: Option<bool>,
    pub tests_passed: Option<bool>,
    pub tests_total: Option<u32>,
    pub tests_failed: Option<u32>,
    pub semantic_score: Option<f64>,
    pub semantic_explanation: Option<String>,
    pub failures: Vec<VerificationFailure>,
    pub recommendations: Vec<String>,
    /// No check applies to what the change touches (documentation, data): it is neither
    /// passed nor failed, but not verified.
    pub unverified: bool,
    /// Every stage's report: its status (a skipped one with its reason), failures and
    /// time.
    pub stages: Vec<StageReport>,
    pub created_at: Timestamp,
}

/// One structured failure: which check, what, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VerificationFailure {
    #[serde(rename = "type")]
    pub kind: FailureKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

/// A verification result before the store numbers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewVerificationResult {
    pub passed: bool,
    pub confidence_score: f64,
    #[serde(default)]
    pub syntax_passed: Option<bool>,
    #[serde(default)]
    pub types_passed: Option<bool>,
    #[serde(default)]
    pub lint_passed: Option<bool>,
    #[serde(default)]
    pub tests_passed: Option<bool>,
    #[serde(default)]
    pub tests_total: Option<u32>,
    #[serde(default)]
    pub tests_failed: Option<u32>,
    #[serde(default)]
    pub semantic_score: Option<f64>,
    #[serde(default)]
    pub semantic_explanation: Option<String>,
    #[serde(default)]
    pub failures: Vec<VerificationFailure>,
    #[serde(default)]
    pub recommendations: Vec<String>,
    /// No check applies to what the change touches (documentation, data): it is neither
    /// passed nor failed, but not verified.
    #[serde(default)]
    pub unverified: bool,
    /// Every stage's report: its status (a skipped one with its reason), failures and
    /// time.
    #[serde(default)]
    pub stages: Vec<StageReport>,
}

impl NewVerificationResult {
    /// Checks scores, counts and list sizes.
    pub fn validate(&self) -> Result<()> {
        check_score("confidenceScore", self.confidence_score)?;
        if let Some(score) = self.semantic_score {
            check_score("semanticScore", score)?;
        }
        if let (Some(total), Some(failed)) = (self.tests_total, self.tests_failed)
            && failed > total
        {
            return Err(Error::invalid(
                "testsFailed",
                format!("{failed} failed tests is more than the {total} run"),
            ));
        }
        if self.failures.len() > MAX_FAILURES {
            return Err(Error::invalid(
                "failures",
                format!("at most {MAX_FAILURES} entries"),
            ));
        }
        if self.recommendations.len() > MAX_RECOMMENDATIONS {
            return Err(Error::invalid(
                "recommendations",
                format!("at most {MAX_RECOMMENDATIONS} entries"),
            ));
        }
        if self.unverified && self.passed {
            return Err(Error::invalid(
                "unverified",
                "a result that passed was verified; send unverified only when no check applied",
            ));
        }
        if self.stages.len() > MAX_STAGES {
            return Err(Error::invalid(
                "stages",
                format!("at most {MAX_STAGES} entries"),
            ));
        }
        for stage in &self.stages {
            check_max_chars("stages[].stage", &stage.stage, MAX_STAGE_NAME_CHARS)?;
            if let StageStatus::Skipped { reason } | StageStatus::NotApplicable { reason } =
                &stage.status
            {
                check_max_chars("stages[].reason", reason, MAX_SKIP_REASON_CHARS)?;
            }
            if stage.failures.len() > MAX_FAILURES {
                return Err(Error::invalid(
                    "stages[].failures",
                    format!("at most {MAX_FAILURES} entries per stage"),
                ));
            }
        }
        Ok(())
    }

    /// The stored result for `task_id`'s verification number `attempt_number`.
    pub fn into_result(
        self,
        id: VerificationResultId,
        task_id: TaskId,
        attempt_number: u32,
        now: Timestamp,
    ) -> VerificationResult {
        VerificationResult {
            id,
            task_id,
            attempt_number,
            passed: self.passed,
            confidence_score: self.confidence_score,
            syntax_passed: self.syntax_passed,
            types_passed: self.types_passed,
            lint_passed: self.lint_passed,
            tests_passed: self.tests_passed,
            tests_total: self.tests_total,
            tests_failed: self.tests_failed,
            semantic_score: self.semantic_score,
            semantic_explanation: self.semantic_explanation,
            failures: self.failures,
            recommendations: self.recommendations,
            unverified: self.unverified,
            stages: self.stages,
            created_at: now,
        }
    }
}

fn check_score(field: &str, score: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&score) {
        return Err(Error::invalid(
            field,
            format!("must be between 0 and 1, got {score}"),
        ));
    }
    Ok(())
}
