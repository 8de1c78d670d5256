//! A pipeline of [`Verifier`]s and the verification result it adds up to: a pass flag,
//! per-check flags, test counts, a semantic score, the failures, recommendations, and a
//! confidence score weighted 0.2 syntax, 0.2 types, 0.1 lint, 0.3 tests, 0.2 semantic —
//! renormalized over the checks that ran.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use orchestrator_core::model::{FailureKind, NewVerificationResult, VerificationFailure};
use orchestrator_core::verify::{StageReport, StageStatus, VerificationInput, Verifier};

use crate::config::{ConfigError, VerifyConfig};
use crate::syntax::SyntaxVerifier;

/// A semantic score below this is reported as a concern (it never fails the change).
const SEMANTIC_CONCERN: f64 = 0.7;

/// Verifiers run one after another over the same change.
#[derive(Debug, Clone, Default)]
pub struct Pipeline {
    verifiers: Vec<Arc<dyn Verifier>>,
}

impl Pipeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `verifier` after the ones already registered.
    pub fn with(self, verifier: impl Verifier) -> Self {
        self.with_shared(Arc::new(verifier))
    }

    /// Adds a shared `verifier` after the ones already registered.
    pub fn with_shared(mut self, verifier: Arc<dyn Verifier>) -> Self {
        self.verifiers.push(verifier);
        self
    }

    /// The standard pipeline for the tree at `work_dir`: syntax, the diff policy, then
    /// the detected type, lint and test checks, all as `orchestrator.toml` (read at
    /// `base_commit` when given) adjusts them.
    pub fn for_project(work_dir: &Path, base_commit: Option<&str>) -> Result<Self, ConfigError> {
        let config = VerifyConfig::load(work_dir, base_commit)?;
        let mut pipeline = Self::new()
            .with(SyntaxVerifier::default())
            .with(config.policy());
        for check in config.checks(work_dir) {
            pipeline = pipeline.with(check);
        }
        Ok(pipeline)
    }

    /// The registered verifiers' names, in order.
    pub fn stages(&self) -> Vec<&str> {
        self.verifiers.iter().map(|v| v.name()).collect()
    }

    /// Runs every verifier and adds their reports up. A verifier that breaks counts as a
    /// failed check of its own: nothing passes by default.
    pub async fn run(
        &self,
        input: &VerificationInput,
    ) -> (Vec<StageReport>, NewVerificationResult) {
        let mut reports = Vec::with_capacity(self.verifiers.len());
        for verifier in &self.verifiers {
            let started = Instant::now();
            let report = match verifier.verify(input).await {
                Ok(report) => report,
                Err(err) => StageReport::new(
                    verifier.name(),
                    FailureKind::Policy,
                    StageStatus::Failed,
                    vec![VerificationFailure {
                        kind: FailureKind::Policy,
                        message: format!("the {} check could not run: {err}", verifier.name()),
                        file: None,
                        line: None,
                        column: None,
                    }],
                    started.elapsed(),
                ),
            };
            reports.push(report);
        }
        let result = summarize(&reports);
        (reports, result)
    }
}

/// Whether the stages of `kind` passed: `None` when none ran (all skipped or absent).
fn outcome(reports: &[StageReport], kind: FailureKind) -> Option<bool> {
    let ran: Vec<&StageReport> = reports
        .iter()
        .filter(|r| r.kind == kind && r.status.ran())
        .collect();
    (!ran.is_empty()).then(|| ran.iter().all(|r| r.status == StageStatus::Passed))
}

/// The checks that judge whether the code works.
const CODE_CHECKS: [FailureKind; 4] = [
    FailureKind::Syntax,
    FailureKind::Type,
    FailureKind::Lint,
    FailureKind::Test,
];

/// The weight of each check in the confidence score.
fn weight(kind: FailureKind) -> Option<f64> {
    match kind {
        FailureKind::Syntax | FailureKind::Type => Some(0.2),
        FailureKind::Lint => Some(0.1),
        FailureKind::Test => Some(0.3),
        FailureKind::Semantic => Some(0.2),
        _ => None,
    }
}

/// Adds stage reports up into a verification result.
pub fn summarize(reports: &[StageReport]) -> NewVerificationResult {
    let syntax = outcome(reports, FailureKind::Syntax);
    let types = outcome(reports, FailureKind::Type);
    let lint = outcome(reports, FailureKind::Lint);
    let tests = outcome(reports, FailureKind::Test);
    let test_reports = || {
        reports
            .iter()
            .filter(|r| r.kind == FailureKind::Test && r.tests_total.is_some())
    };
    let tests_total = test_reports()
        .map(|r| r.tests_total.unwrap_or(0))
        .reduce(|a, b| a + b);
    let tests_failed = test_reports()
        .map(|r| r.tests_failed.unwrap_or(0))
        .reduce(|a, b| a + b);
    let semantic: Vec<&StageReport> = reports
        .iter()
        .filter(|r| r.kind == FailureKind::Semantic && r.score.is_some())
        .collect();
    let semantic_score = (!semantic.is_empty())
        .then(|| semantic.iter().filter_map(|r| r.score).sum::<f64>() / semantic.len() as f64);
    let semantic_explanation = semantic
        .iter()
        .flat_map(|r| r.failures.iter())
        .map(|f| f.message.clone())
        .next();

    // A pass needs at least one check that ran and no check that failed; the semantic
    // review only advises.
    let deciding = || reports.iter().filter(|r| r.kind != FailureKind::Semantic);
    // A policy that passes says nothing about whether the code works: a pass needs a
    // syntax, type, lint or test check that ran.
    let any_ran = [syntax, types, lint, tests].iter().any(Option::is_some);
    let any_failed = deciding().any(|r| r.status == StageStatus::Failed);
    let passed = any_ran && !any_failed;
    // Nothing a check applies to (documentation, data): not a failure, but not verified.
    // A check that could have looked but did not run (a tool missing) is no such thing.
    let code_check_skipped = reports
        .iter()
        .any(|r| CODE_CHECKS.contains(&r.kind) && matches!(r.status, StageStatus::Skipped { .. }));
    let unverified = !any_ran && !any_failed && !code_check_skipped;

    // The confidence is the weighted share of the code checks that passed, over all of
    // them: one that did not run counts as not passed, so a change that only parses is
    // not "certain". The semantic review weighs in only where it ran.
    let mut weighted = 0.0;
    let mut total_weight: f64 = CODE_CHECKS.into_iter().filter_map(weight).sum();
    for (kind, value) in [
        (FailureKind::Syntax, syntax.map(f64::from_bool)),
        (FailureKind::Type, types.map(f64::from_bool)),
        (FailureKind::Lint, lint.map(f64::from_bool)),
        (
            FailureKind::Test,
            tests.map(|ok| test_rate(ok, tests_total, tests_failed)),
        ),
        (FailureKind::Semantic, semantic_score),
    ] {
        if let (Some(value), Some(weight)) = (value, weight(kind)) {
            weighted += weight * value.clamp(0.0, 1.0);
            if kind == FailureKind::Semantic {
                total_weight += weight;
            }
        }
    }
    let confidence = if total_weight > 0.0 {
        (weighted / total_weight * 100.0).round() / 100.0
    } else {
        0.0
    };

    let failures = deciding()
        .flat_map(|r| r.failures.iter().cloned())
        .collect();
    NewVerificationResult {
        passed,
        confidence_score: confidence,
        syntax_passed: syntax,
        types_passed: types,
        lint_passed: lint,
        tests_passed: tests,
        tests_total,
        tests_failed,
        semantic_score,
        semantic_explanation,
        failures,
        recommendations: recommendations(reports, unverified, semantic_score),
        unverified,
        stages: reports.to_vec(),
    }
}

/// The share of tests that passed; all or nothing when no counts were reported.
fn test_rate(passed: bool, total: Option<u32>, failed: Option<u32>) -> f64 {
    match (total, failed) {
        (Some(total), Some(failed)) if total > 0 => {
            f64::from(total.saturating_sub(failed)) / f64::from(total)
        }
        _ => f64::from_bool(passed),
    }
}

trait FromBool {
    fn from_bool(value: bool) -> Self;
}

impl FromBool for f64 {
    fn from_bool(value: bool) -> Self {
        if value { 1.0 } else { 0.0 }
    }
}

fn recommendations(
    reports: &[StageReport],
    unverified: bool,
    semantic: Option<f64>,
) -> Vec<String> {
    let mut advice = Vec::new();
    if unverified {
        advice.push(
            "No check applies to the files this change touches (see each stage's reason): \
             it is unverified; review it yourself"
                .to_owned(),
        );
    }
    for (kind, text) in [
        (FailureKind::Syntax, "Fix syntax errors before proceeding"),
        (FailureKind::Type, "Resolve type errors"),
        (FailureKind::Lint, "Fix lint errors"),
        (FailureKind::Test, "Fix failing tests"),
        (
            FailureKind::Timeout,
            "A check ran out of time: make it faster or raise its timeout",
        ),
        (
            FailureKind::Policy,
            "Keep the change within the task's locked paths and limits",
        ),
    ] {
        if reports
            .iter()
            .any(|r| r.kind == kind && r.status == StageStatus::Failed)
        {
            advice.push(text.to_owned());
        }
    }
    if semantic.is_some_and(|score| score < SEMANTIC_CONCERN) {
        advice.push("Changes may not fully address the task requirements".to_owned());
    }
    advice
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn report(kind: FailureKind, status: StageStatus) -> StageReport {
        let failures = if status == StageStatus::Failed {
            vec![VerificationFailure {
                kind,
                message: format!("{kind} failed"),
                file: Some("src/lib.rs".into()),
                line: Some(3),
                column: Some(1),
            }]
        } else {
            Vec::new()
        };
        StageReport::new(&kind.to_string(), kind, status, failures, Duration::ZERO)
    }

    fn skipped() -> StageStatus {
        StageStatus::Skipped {
            reason: "not installed".into(),
        }
    }

    #[test]
    fn everything_passing_is_full_confidence() {
        let mut tests = report(FailureKind::Test, StageStatus::Passed);
        tests.tests_total = Some(10);
        tests.tests_failed = Some(0);
        let result = summarize(&[
            report(FailureKind::Syntax, StageStatus::Passed),
            report(FailureKind::Type, StageStatus::Passed),
            report(FailureKind::Lint, StageStatus::Passed),
            tests,
        ]);
        assert!(result.passed);
        assert_eq!(result.confidence_score, 1.0);
        assert_eq!(result.tests_total, Some(10));
        assert!(result.failures.is_empty() && result.recommendations.is_empty());
        result.validate().unwrap();
    }

    #[test]
    fn checks_that_did_not_run_lower_the_confidence() {
        let mut tests = report(FailureKind::Test, StageStatus::Failed);
        tests.tests_total = Some(4);
        tests.tests_failed = Some(1);
        let mut semantic = report(FailureKind::Semantic, StageStatus::Passed);
        semantic.score = Some(0.5);
        let result = summarize(&[
            report(FailureKind::Syntax, StageStatus::Passed),
            report(FailureKind::Type, StageStatus::Failed),
            report(FailureKind::Lint, skipped()),
            tests,
            semantic,
        ]);
        // (0.2·1 + 0.2·0 + 0.3·0.75 + 0.2·0.5) / (0.2 + 0.2 + 0.1 + 0.3 + 0.2) = 0.525 / 1.0:
        // the lint check that did not run counts as not passed.
        assert_eq!(result.confidence_score, 0.53);
        assert!(!result.passed);
        assert_eq!(
            result.lint_passed, None,
            "a skipped check is neither passed nor failed"
        );
        assert_eq!(
            (result.types_passed, result.tests_passed),
            (Some(false), Some(false))
        );
        assert_eq!(result.failures.len(), 2);
        assert!(
            result
                .recommendations
                .contains(&"Resolve type errors".to_owned())
        );
        assert!(
            result
                .recommendations
                .contains(&"Changes may not fully address the task requirements".to_owned())
        );
    }

    #[test]
    fn nothing_passes_by_default() {
        let result = summarize(&[
            report(FailureKind::Syntax, skipped()),
            report(FailureKind::Test, skipped()),
        ]);
        assert!(
            !result.passed && !result.unverified,
            "a skipped check is a gap"
        );
        assert_eq!(result.confidence_score, 0.0);
        assert!(result.recommendations.is_empty());
        assert!(!summarize(&[]).passed);
        let only_policy = summarize(&[
            report(FailureKind::Syntax, skipped()),
            report(FailureKind::Policy, StageStatus::Passed),
        ]);
        assert!(
            !only_policy.passed,
            "a passing policy alone verifies nothing"
        );
    }

    #[test]
    fn a_change_no_check_applies_to_is_unverified_not_failed() {
        let not_applicable = StageStatus::NotApplicable {
            reason: "no changed file in a language the syntax stage parses".into(),
        };
        let result = summarize(&[
            report(FailureKind::Syntax, not_applicable.clone()),
            report(FailureKind::Policy, StageStatus::Passed),
        ]);
        assert!(!result.passed && result.unverified, "{result:?}");
        assert_eq!(result.confidence_score, 0.0);
        assert!(result.recommendations[0].contains("unverified"));
        assert_eq!(result.stages.len(), 2, "every stage is kept");
        result.validate().unwrap();

        let policy_failed = summarize(&[
            report(FailureKind::Syntax, not_applicable),
            report(FailureKind::Policy, StageStatus::Failed),
        ]);
        assert!(!policy_failed.passed && !policy_failed.unverified);
    }

    #[test]
    fn a_change_that_only_parses_is_not_certain() {
        let result = summarize(&[report(FailureKind::Syntax, StageStatus::Passed)]);
        assert!(result.passed);
        // 0.2 of the 0.8 the code checks weigh.
        assert_eq!(result.confidence_score, 0.25);
    }

    #[test]
    fn the_semantic_review_only_advises() {
        let mut semantic = report(FailureKind::Semantic, StageStatus::Failed);
        semantic.score = Some(0.2);
        let result = summarize(&[report(FailureKind::Syntax, StageStatus::Passed), semantic]);
        assert!(result.passed, "a low review score does not fail the change");
        assert_eq!(result.semantic_score, Some(0.2));
        assert_eq!(
            result.semantic_explanation.as_deref(),
            Some("semantic failed")
        );
        assert!(result.failures.is_empty());
    }

    #[derive(Debug)]
    struct Broken;

    #[async_trait::async_trait]
    impl Verifier for Broken {
        fn name(&self) -> &str {
            "broken"
        }

        async fn verify(&self, _: &VerificationInput) -> orchestrator_core::Result<StageReport> {
            Err(orchestrator_core::Error::backend("disk on fire"))
        }
    }

    #[tokio::test]
    async fn a_broken_verifier_is_a_failed_check() {
        let pipeline = Pipeline::new().with(Broken);
        assert_eq!(pipeline.stages(), ["broken"]);
        let input = VerificationInput {
            task_title: "t".into(),
            task_description: "d".into(),
            work_dir: std::env::temp_dir(),
            changed_files: Vec::new(),
            locked_paths: Vec::new(),
            base_commit: None,
        };
        let (reports, result) = pipeline.run(&input).await;
        assert_eq!(reports[0].status, StageStatus::Failed);
        assert!(!result.passed);
        assert!(result.failures[0].message.contains("disk on fire"));
    }
}
