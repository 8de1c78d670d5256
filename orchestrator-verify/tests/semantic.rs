//! The semantic review with a scripted model: what the model is shown, how its verdict
//! becomes a score, and that a model that fails or stalls only skips the review.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{commit_all, write};
use orchestrator_core::verify::{StageStatus, VerificationInput, Verifier};
use orchestrator_verify::{Pipeline, ReviewModel, SemanticVerifier, SyntaxVerifier};

/// Answers every prompt with `answer` after `delay`, keeping the prompts it was sent.
#[derive(Debug)]
struct ScriptedModel {
    answer: Result<String, String>,
    delay: Duration,
    prompts: Mutex<Vec<String>>,
}

impl ScriptedModel {
    fn new(answer: Result<&str, &str>) -> Arc<Self> {
        Arc::new(Self {
            answer: answer.map(str::to_owned).map_err(str::to_owned),
            delay: Duration::ZERO,
            prompts: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl ReviewModel for ScriptedModel {
    async fn complete(&self, system: &str, prompt: &str) -> Result<String, String> {
        assert!(system.contains("JSON"), "{system}");
        self.prompts.lock().unwrap().push(prompt.to_owned());
        tokio::time::sleep(self.delay).await;
        self.answer.clone()
    }
}

/// A repository whose working tree changes `src/lib.rs` after its base commit.
fn changed_repository() -> (tempfile::TempDir, VerificationInput) {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    write(
        dir.path(),
        "src/lib.rs",
        "pub fn one() -> u32 {\n    1\n}\n",
    );
    let base = commit_all(&repo);
    write(
        dir.path(),
        "src/lib.rs",
        "pub fn one() -> u32 {\n    1\n}\n\npub fn two() -> u32 {\n    2\n}\n",
    );
    let input = VerificationInput {
        task_title: "Add two()".into(),
        task_description: "A function returning 2 next to one().".into(),
        work_dir: dir.path().to_owned(),
        changed_files: vec!["src/lib.rs".into()],
        locked_paths: vec!["src/".into()],
        base_commit: Some(base),
    };
    (dir, input)
}

#[tokio::test]
async fn the_model_sees_the_task_and_the_diff_and_its_score_only_advises() {
    let (_dir, input) = changed_repository();
    let model = ScriptedModel::new(Ok(
        "```json\n{\"score\": 0.4, \"explanation\": \"two() exists but has no test.\", \"concerns\": [\"no test\"]}\n```",
    ));
    let pipeline = Pipeline::new()
        .with(SyntaxVerifier::default())
        .with(SemanticVerifier::new(model.clone()));
    let (reports, result) = pipeline.run(&input).await;

    let prompt = model.prompts.lock().unwrap()[0].clone();
    assert!(prompt.contains("Add two()"), "{prompt}");
    assert!(prompt.contains("A function returning 2"), "{prompt}");
    assert!(prompt.contains("+pub fn two() -> u32 {"), "{prompt}");
    assert!(
        prompt.contains(" pub fn one() -> u32 {"),
        "context lines: {prompt}"
    );

    let review = &reports[1];
    assert_eq!(review.status, StageStatus::Failed);
    assert_eq!(review.score, Some(0.4));
    assert!(result.passed, "a low review score does not fail the change");
    assert_eq!(result.semantic_score, Some(0.4));
    assert_eq!(
        result.semantic_explanation.as_deref(),
        Some("two() exists but has no test.")
    );
}

#[tokio::test]
async fn a_model_that_fails_stalls_or_rambles_skips_the_review() {
    let (_dir, input) = changed_repository();
    let failing = SemanticVerifier::new(ScriptedModel::new(Err("connection refused")));
    let report = failing.verify(&input).await.unwrap();
    assert_eq!(
        report.status,
        StageStatus::Skipped {
            reason: "the review model could not answer: connection refused".into()
        }
    );

    let mut slow_model = ScriptedModel::new(Ok("{\"score\": 1}"));
    Arc::get_mut(&mut slow_model).unwrap().delay = Duration::from_secs(30);
    let mut stalled = SemanticVerifier::new(slow_model);
    stalled.time_limit = Duration::from_millis(200);
    let report = stalled.verify(&input).await.unwrap();
    assert!(
        matches!(&report.status, StageStatus::Skipped { reason } if reason.contains("did not answer within")),
        "{report:?}"
    );

    let rambling = SemanticVerifier::new(ScriptedModel::new(Ok("Looks good to me!")));
    let report = rambling.verify(&input).await.unwrap();
    assert!(
        matches!(&report.status, StageStatus::Skipped { reason } if reason.contains("no JSON object")),
        "{report:?}"
    );
    assert_eq!(report.score, None);
}

#[tokio::test]
async fn long_diffs_are_cut_and_the_model_told() {
    let (_dir, input) = changed_repository();
    let model = ScriptedModel::new(Ok("{\"score\": 0.9, \"explanation\": \"fine\"}"));
    let mut review = SemanticVerifier::new(model.clone());
    review.max_diff_bytes = 150;
    let report = review.verify(&input).await.unwrap();
    assert_eq!(report.status, StageStatus::Passed);
    let prompt = model.prompts.lock().unwrap()[0].clone();
    assert!(prompt.contains("The diff was cut here"), "{prompt}");
    assert!(
        prompt.contains("+++ b/src/lib.rs\n@@ -1,3 +1,7 @@\n pub fn one() -> u32 {\n"),
        "{prompt}"
    );
    assert!(!prompt.contains("pub fn two"), "{prompt}");

    // Not even the first file's header fits.
    review.max_diff_bytes = 40;
    let report = review.verify(&input).await.unwrap();
    assert!(
        matches!(&report.status, StageStatus::Skipped { reason } if reason.contains("40 bytes")),
        "{report:?}"
    );

    let mut without_base = input.clone();
    without_base.base_commit = None;
    let report = review.verify(&without_base).await.unwrap();
    assert!(matches!(report.status, StageStatus::Skipped { .. }));
}
