//! The example plugin in a pipeline, on a fixture repository.

use std::fs;

use custom_verifier::NoNewTodo;
use git2::{IndexAddOption, Repository, Signature};
use orchestrator_core::verify::{StageStatus, VerificationInput};
use orchestrator_verify::{Pipeline, SyntaxVerifier};

#[tokio::test]
async fn only_added_markers_fail_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    fs::create_dir_all(dir.path().join("src")).unwrap();
    fs::write(
        dir.path().join("src/lib.rs"),
        "// TODO: an old note\npub fn a() {}\n",
    )
    .unwrap();
    let mut index = repo.index().unwrap();
    index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let me = Signature::now("test", "test@example.com").unwrap();
    let base = repo
        .commit(Some("HEAD"), &me, &me, "base", &tree, &[])
        .unwrap()
        .to_string();

    fs::write(
        dir.path().join("src/lib.rs"),
        "// TODO: an old note\npub fn a() {}\npub fn b() {} // FIXME: handle errors\n",
    )
    .unwrap();
    let input = VerificationInput {
        task_title: "t".into(),
        task_description: "d".into(),
        work_dir: dir.path().to_owned(),
        changed_files: vec!["src/lib.rs".into()],
        locked_paths: vec!["src/".into()],
        base_commit: Some(base),
    };
    let pipeline = Pipeline::new()
        .with(SyntaxVerifier::default())
        .with(NoNewTodo);
    assert_eq!(pipeline.stages(), ["syntax", "no new TODO"]);
    let (reports, result) = pipeline.run(&input).await;
    assert_eq!(reports[0].status, StageStatus::Passed);
    assert_eq!(reports[1].status, StageStatus::Failed);
    assert!(!result.passed);
    assert_eq!(result.failures.len(), 1, "the old TODO is not the change's");
    let failure = &result.failures[0];
    assert_eq!(
        (failure.file.as_deref(), failure.line, failure.column),
        (Some("src/lib.rs"), Some(3), Some(18))
    );
    assert!(failure.message.starts_with("adds a FIXME marker"));

    let without_base = VerificationInput {
        base_commit: None,
        ..input
    };
    let (reports, _) = Pipeline::new().with(NoNewTodo).run(&without_base).await;
    assert!(matches!(reports[0].status, StageStatus::Skipped { .. }));
}
