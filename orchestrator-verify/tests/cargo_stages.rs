//! The Cargo stages on fixture crates: a type error, a clippy warning and a failing test,
//! each reported with its place.

use std::fs;
use std::path::Path;

use orchestrator_core::model::FailureKind;
use orchestrator_core::verify::{StageStatus, VerificationInput, Verifier};
use orchestrator_verify::{CargoStage, CargoVerifier};

fn fixture(lib: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"fixture\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    fs::create_dir_all(dir.path().join("src")).unwrap();
    fs::write(dir.path().join("src/lib.rs"), lib).unwrap();
    dir
}

fn input(dir: &Path) -> VerificationInput {
    VerificationInput {
        task_title: "t".into(),
        task_description: "d".into(),
        work_dir: dir.to_owned(),
        changed_files: vec!["src/lib.rs".into()],
        locked_paths: Vec::new(),
        base_commit: None,
    }
}

#[tokio::test]
async fn a_type_error_fails_cargo_check_with_its_place() {
    let dir = fixture("pub fn answer() -> u32 {\n    \"forty-two\"\n}\n");
    let report = CargoVerifier::new(CargoStage::Check)
        .verify(&input(dir.path()))
        .await
        .unwrap();
    assert_eq!(report.status, StageStatus::Failed, "{report:?}");
    assert_eq!(report.kind, FailureKind::Type);
    let error = &report.failures[0];
    assert!(error.message.contains("E0308"), "{error:?}");
    assert_eq!(error.file.as_deref(), Some("src/lib.rs"));
    assert_eq!((error.line, error.column), (Some(2), Some(5)));
}

#[tokio::test]
async fn clippy_warnings_and_failing_tests_are_reported() {
    let dir = fixture(
        "pub fn one() -> u32 {\n    return 1;\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn passes() {\n        assert_eq!(super::one(), 1);\n    }\n\n    #[test]\n    fn fails() {\n        assert_eq!(super::one(), 2);\n    }\n}\n",
    );
    let check = CargoVerifier::new(CargoStage::Check)
        .verify(&input(dir.path()))
        .await
        .unwrap();
    assert_eq!(check.status, StageStatus::Passed, "{check:?}");

    let clippy = CargoVerifier::new(CargoStage::Clippy)
        .verify(&input(dir.path()))
        .await
        .unwrap();
    assert_eq!(clippy.status, StageStatus::Failed, "{clippy:?}");
    let lint = &clippy.failures[0];
    assert!(lint.message.contains("return"), "{lint:?}");
    assert_eq!(
        (lint.file.as_deref(), lint.line),
        (Some("src/lib.rs"), Some(2))
    );

    let tests = CargoVerifier::new(CargoStage::Test)
        .verify(&input(dir.path()))
        .await
        .unwrap();
    assert_eq!(tests.status, StageStatus::Failed, "{tests:?}");
    assert_eq!((tests.tests_total, tests.tests_failed), (Some(2), Some(1)));
    assert_eq!(tests.failures[0].message, "test tests::fails failed");
    assert_eq!(
        (tests.failures[0].file.as_deref(), tests.failures[0].line),
        (Some("src/lib.rs"), Some(14))
    );
}

#[tokio::test]
async fn a_tree_without_cargo_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let report = CargoVerifier::new(CargoStage::Test)
        .verify(&input(dir.path()))
        .await
        .unwrap();
    assert!(
        matches!(report.status, StageStatus::Skipped { .. }),
        "{report:?}"
    );
}
