//! The diff policy on a fixture repository: writes outside the task's locks, limits, and
//! secrets in added lines only.

mod common;

use std::fs;
use std::path::Path;

use common::{commit_all, write};
use git2::Repository;
use orchestrator_core::model::FailureKind;
use orchestrator_core::verify::{StageStatus, VerificationInput, Verifier};
use orchestrator_verify::PolicyVerifier;

fn input(root: &Path, base: &str, locks: &[&str]) -> VerificationInput {
    VerificationInput {
        task_title: "t".into(),
        task_description: "d".into(),
        work_dir: root.to_owned(),
        changed_files: Vec::new(),
        locked_paths: locks.iter().map(|l| (*l).to_owned()).collect(),
        base_commit: Some(base.to_owned()),
    }
}

#[tokio::test]
async fn writes_outside_locks_limits_and_new_secrets_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = Repository::init(root).unwrap();
    // A key that was there before the task is not the task's doing.
    write(
        root,
        "src/config.rs",
        "const OLD: &str = \"AKIAABCDEFGHIJKLMNOP\";\n",
    );
    let moved: String = (0..30).map(|i| format!("pub fn f{i}() {{}}\n")).collect();
    write(root, "src/moved.rs", &moved);
    let base = commit_all(&repo);

    write(
        root,
        "src/config.rs",
        "const OLD: &str = \"AKIAABCDEFGHIJKLMNOP\";\nconst TOKEN: &str = \"ghp_0123456789abcdefghijklmnopqrstuvwxyzAB\";\n",
    );
    write(root, "docs/notes.md", "outside\n");
    fs::create_dir_all(root.join("lib")).unwrap();
    fs::rename(root.join("src/moved.rs"), root.join("lib/moved.rs")).unwrap();

    let report = PolicyVerifier::default()
        .verify(&input(root, &base, &["src/"]))
        .await
        .unwrap();
    assert_eq!(report.status, StageStatus::Failed);
    assert_eq!(report.kind, FailureKind::Policy);
    let messages: Vec<&str> = report.failures.iter().map(|f| f.message.as_str()).collect();
    assert!(
        messages.contains(&"docs/notes.md changed outside the task's locks"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"lib/moved.rs changed outside the task's locks"),
        "{messages:?}"
    );
    assert!(
        !messages.iter().any(|m| m.starts_with("src/moved.rs")),
        "the old path is locked"
    );
    let secrets: Vec<_> = report
        .failures
        .iter()
        .filter(|f| f.message.contains("looks like"))
        .collect();
    assert_eq!(secrets.len(), 1, "only the added line: {secrets:?}");
    assert_eq!(
        (secrets[0].file.as_deref(), secrets[0].line),
        (Some("src/config.rs"), Some(2))
    );
    assert!(secrets[0].message.contains("a GitHub token"));

    let strict = PolicyVerifier {
        max_files: Some(2),
        max_changed_lines: Some(1),
        ..PolicyVerifier::default()
    };
    let report = strict
        .verify(&input(root, &base, &["src/", "docs/", "lib/"]))
        .await
        .unwrap();
    let messages: Vec<&str> = report.failures.iter().map(|f| f.message.as_str()).collect();
    assert!(
        messages.contains(&"3 files changed; the limit is 2"),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"2 lines changed; the limit is 1"),
        "{messages:?}"
    );
    assert!(
        !messages.iter().any(|m| m.contains("outside")),
        "{messages:?}"
    );
}

#[tokio::test]
async fn a_clean_change_passes_and_a_bad_base_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo = Repository::init(root).unwrap();
    write(root, "src/a.rs", "fn a() {}\n");
    let base = commit_all(&repo);
    write(root, "src/a.rs", "fn a() {}\nfn b() {}\n");
    let report = PolicyVerifier::default()
        .verify(&input(root, &base, &["src/a.rs"]))
        .await
        .unwrap();
    assert_eq!(report.status, StageStatus::Passed, "{report:?}");
    let report = PolicyVerifier::default()
        .verify(&input(root, "nope", &["src/"]))
        .await
        .unwrap();
    assert_eq!(report.status, StageStatus::Failed);
    assert!(report.failures[0].message.contains("could not be read"));
}
