use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{TaskId, VerificationResultId};
use crate::model::FailureKind;
use crate::time::Timestamp;

const MAX_FAILURES: usize = 1_000;
const MAX_RECOMMENDATIONS: usize = 100;

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
