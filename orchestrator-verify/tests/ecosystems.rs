//! The type, lint and test checks of each ecosystem, run with the real tools on fixture
//! projects: every failure is reported with its place, and test counts are read.
//! Tools that are not installed skip a test with a printed reason (a failure with
//! `ORCHESTRATOR_REQUIRE_TOOLS=1`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{link_node_modules, on_path, write};
use orchestrator_core::model::FailureKind;
use orchestrator_core::verify::{StageReport, StageStatus, VerificationInput, Verifier};
use orchestrator_verify::{CommandCheck, OutputFormat, Pipeline, detect_checks};

fn input(dir: &Path) -> VerificationInput {
    VerificationInput {
        task_title: "t".into(),
        task_description: "d".into(),
        work_dir: dir.to_owned(),
        changed_files: Vec::new(),
        locked_paths: Vec::new(),
        base_commit: None,
    }
}

/// Runs the detected check called `name` in `dir`.
async fn run_check(dir: &Path, name: &str) -> StageReport {
    let checks = detect_checks(dir);
    let check = checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("`{name}` was not detected: {checks:?}"));
    check.verify(&input(dir)).await.unwrap()
}

/// `(file, line, column)` of each failure.
fn places(report: &StageReport) -> Vec<(String, Option<u32>, Option<u32>)> {
    report
        .failures
        .iter()
        .map(|f| (f.file.clone().unwrap_or_default(), f.line, f.column))
        .collect()
}

fn place(file: &str, line: u32, column: Option<u32>) -> (String, Option<u32>, Option<u32>) {
    (file.to_owned(), Some(line), column)
}

fn cargo_fixture(lib: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Cargo.toml",
        "[package]\nname = \"fixture\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    );
    write(dir.path(), "src/lib.rs", lib);
    dir
}

#[tokio::test]
async fn a_type_error_fails_cargo_check_with_its_place() {
    let dir = cargo_fixture("pub fn answer() -> u32 {\n    \"forty-two\"\n}\n");
    let report = run_check(dir.path(), "cargo-check").await;
    assert_eq!(report.status, StageStatus::Failed, "{report:?}");
    assert_eq!(report.kind, FailureKind::Type);
    assert!(report.failures[0].message.contains("E0308"), "{report:?}");
    assert_eq!(places(&report), [place("src/lib.rs", 2, Some(5))]);
}

#[tokio::test]
async fn clippy_warnings_and_failing_tests_are_reported() {
    let dir = cargo_fixture(
        "pub fn one() -> u32 {\n    return 1;\n}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn passes() {\n        assert_eq!(super::one(), 1);\n    }\n\n    #[test]\n    fn fails() {\n        assert_eq!(super::one(), 2);\n    }\n}\n",
    );
    let check = run_check(dir.path(), "cargo-check").await;
    assert_eq!(check.status, StageStatus::Passed, "{check:?}");

    let clippy = run_check(dir.path(), "cargo-clippy").await;
    assert_eq!(clippy.status, StageStatus::Failed, "{clippy:?}");
    assert!(clippy.failures[0].message.contains("return"), "{clippy:?}");
    assert_eq!(places(&clippy), [place("src/lib.rs", 2, Some(5))]);

    let tests = run_check(dir.path(), "cargo-test").await;
    assert_eq!(tests.status, StageStatus::Failed, "{tests:?}");
    assert_eq!((tests.tests_total, tests.tests_failed), (Some(2), Some(1)));
    assert_eq!(tests.failures[0].message, "test tests::fails failed");
    assert_eq!(places(&tests), [place("src/lib.rs", 14, Some(9))]);
}

fn python_fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "pyproject.toml",
        "[tool.mypy]\nfiles = [\"calc.py\"]\n",
    );
    write(
        root,
        "calc.py",
        "def add(a: int, b: int) -> int:\n    return a + b\n\n\ndef name() -> int:\n    return \"x\"\n",
    );
    write(
        root,
        "tests/test_calc.py",
        "import os\n\nfrom calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\ndef test_add_wrong():\n    assert add(2, 2) == 5\n",
    );
    write(root, "conftest.py", "");
    dir
}

#[tokio::test]
async fn a_failing_pytest_is_counted_and_placed() {
    let test = "a_failing_pytest_is_counted_and_placed";
    if !on_path("pytest", test) {
        return;
    }
    let dir = python_fixture();
    let report = run_check(dir.path(), "pytest").await;
    assert_eq!(report.status, StageStatus::Failed, "{report:?}");
    assert_eq!(
        (report.tests_total, report.tests_failed),
        (Some(2), Some(1))
    );
    assert_eq!(
        report.failures[0].message,
        "tests/test_calc.py::test_add_wrong failed: assert 4 == 5"
    );
    assert_eq!(places(&report), [place("tests/test_calc.py", 11, None)]);
    // pytest leaves nothing behind in the tree it verified.
    assert!(!dir.path().join(".pytest_cache").exists());
}

/// The pytest of the tree's own environment runs when it is the one pip installed (here
/// the test tools' environment, linked in as `.venv`).
#[tokio::test]
async fn the_trees_own_installed_pytest_runs() {
    let test = "the_trees_own_installed_pytest_runs";
    if !on_path("pytest", test) {
        return;
    }
    let pytest = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join("pytest"))
        .find(|candidate| candidate.is_file())
        .unwrap();
    let venv = pytest.parent().and_then(Path::parent).unwrap();
    if !venv.join("pyvenv.cfg").is_file() {
        eprintln!("skipping {test}: pytest is not in a virtual environment here");
        return;
    }
    let dir = python_fixture();
    std::os::unix::fs::symlink(venv, dir.path().join(".venv")).unwrap();
    let report = run_check(dir.path(), "pytest").await;
    assert_eq!(report.status, StageStatus::Failed, "{report:?}");
    assert_eq!(
        (report.tests_total, report.tests_failed),
        (Some(2), Some(1)),
        "the real pytest ran: {report:?}"
    );
}

/// A shim in the tree's own tool folder that prints a passing report over failing tests
/// is not run: the check fails and says why.
#[tokio::test]
async fn shimmed_jest_and_pytest_cannot_pass_failing_tests() {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &Path| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let node = node_fixture("jest");
    write(
        node.path(),
        "node_modules/.bin/jest",
        "#!/bin/sh
echo '{\"numTotalTests\":2,\"numPassedTests\":2,\"numFailedTests\":0,\"success\":true,\"testResults\":[]}'\n",
    );
    executable(&node.path().join("node_modules/.bin/jest"));
    let jest = run_check(node.path(), "jest").await;
    assert_eq!(jest.status, StageStatus::Failed, "{jest:?}");
    assert!(
        jest.failures[0]
            .message
            .contains("`node_modules/.bin/jest` is not the tool its package installed"),
        "{jest:?}"
    );

    let python = python_fixture();
    write(
        python.path(),
        ".venv/bin/pytest",
        "#!/bin/sh\necho '2 passed in 0.01s'\n",
    );
    executable(&python.path().join(".venv/bin/pytest"));
    let pytest = run_check(python.path(), "pytest").await;
    assert_eq!(pytest.status, StageStatus::Failed, "{pytest:?}");
    assert!(
        pytest.failures[0]
            .message
            .contains("`.venv/bin/pytest` was not installed by a package"),
        "{pytest:?}"
    );
}

#[tokio::test]
async fn ruff_and_mypy_report_their_places() {
    let test = "ruff_and_mypy_report_their_places";
    if !on_path("ruff", test) || !on_path("mypy", test) {
        return;
    }
    let dir = python_fixture();
    let ruff = run_check(dir.path(), "ruff").await;
    assert_eq!(ruff.status, StageStatus::Failed, "{ruff:?}");
    assert_eq!(places(&ruff), [place("tests/test_calc.py", 1, Some(8))]);
    assert!(ruff.failures[0].message.starts_with("F401"), "{ruff:?}");

    let mypy = run_check(dir.path(), "mypy").await;
    assert_eq!(mypy.status, StageStatus::Failed, "{mypy:?}");
    assert_eq!(mypy.kind, FailureKind::Type);
    assert_eq!(places(&mypy), [place("calc.py", 6, Some(12))]);
    assert!(!dir.path().join(".ruff_cache").exists());
    assert!(!dir.path().join(".mypy_cache").exists());
}

fn node_fixture(test_runner: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "package.json",
        &format!(
            r#"{{"name": "fx", "private": true, "devDependencies": {{"{test_runner}": "*"}}}}"#
        ),
    );
    write(
        root,
        "tsconfig.json",
        r#"{"compilerOptions": {"strict": true, "noEmit": true, "target": "es2020", "module": "commonjs"}, "include": ["src/**/*.ts"]}"#,
    );
    write(
        root,
        "src/a.ts",
        "export function add(a: number, b: number): number {\n  return a + b;\n}\nexport const bad: number = \"x\";\n",
    );
    write(
        root,
        "eslint.config.js",
        "module.exports = [{ files: [\"**/*.js\"], rules: { \"no-unused-vars\": \"error\", \"no-console\": \"warn\" } }];\n",
    );
    write(
        root,
        "src/b.js",
        "const unused = 1;\nconsole.log(\"hi\");\n",
    );
    let import = if test_runner == "vitest" {
        "import { test, expect } from 'vitest';\n"
    } else {
        ""
    };
    write(
        root,
        "src/sum.test.js",
        &format!(
            "{import}const sum = (a, b) => a + b;\ntest('adds', () => {{ expect(sum(1, 2)).toBe(3); }});\ntest('adds wrong', () => {{\n  expect(sum(2, 2)).toBe(5);\n}});\n"
        ),
    );
    dir
}

#[tokio::test]
async fn tsc_eslint_and_jest_report_their_places() {
    let test = "tsc_eslint_and_jest_report_their_places";
    let dir = node_fixture("jest");
    if !on_path("node", test) || !link_node_modules(dir.path(), test) {
        return;
    }
    let tsc = run_check(dir.path(), "tsc").await;
    assert_eq!(tsc.status, StageStatus::Failed, "{tsc:?}");
    assert_eq!(places(&tsc), [place("src/a.ts", 4, Some(14))]);
    assert!(tsc.failures[0].message.starts_with("TS2322"), "{tsc:?}");

    let eslint = run_check(dir.path(), "eslint").await;
    assert_eq!(eslint.status, StageStatus::Failed, "{eslint:?}");
    // The console warning does not count.
    assert_eq!(places(&eslint), [place("src/b.js", 1, Some(7))]);

    let jest = run_check(dir.path(), "jest").await;
    assert_eq!(jest.status, StageStatus::Failed, "{jest:?}");
    assert_eq!((jest.tests_total, jest.tests_failed), (Some(2), Some(1)));
    assert_eq!(places(&jest), [place("src/sum.test.js", 4, Some(21))]);
    assert!(
        jest.failures[0].message.starts_with("adds wrong: "),
        "{jest:?}"
    );
}

#[tokio::test]
async fn vitest_reports_counts_and_places() {
    let test = "vitest_reports_counts_and_places";
    let dir = node_fixture("vitest");
    if !on_path("node", test) || !link_node_modules(dir.path(), test) {
        return;
    }
    let vitest = run_check(dir.path(), "vitest").await;
    assert_eq!(vitest.status, StageStatus::Failed, "{vitest:?}");
    assert_eq!(
        (vitest.tests_total, vitest.tests_failed),
        (Some(2), Some(1))
    );
    assert_eq!(places(&vitest), [place("src/sum.test.js", 5, Some(21))]);
}

#[tokio::test]
async fn go_build_vet_and_test_report_their_places() {
    let test = "go_build_vet_and_test_report_their_places";
    if !on_path("go", test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "go.mod", "module example.com/fx\n\ngo 1.19\n");
    write(
        root,
        "calc/calc.go",
        "package calc\n\nimport \"fmt\"\n\nfunc Add(a, b int) int {\n\treturn a + b\n}\n\nfunc Show() {\n\tfmt.Printf(\"%d\\n\", \"x\")\n}\n",
    );
    write(
        root,
        "calc/calc_test.go",
        "package calc\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {\n\tif Add(1, 2) != 3 {\n\t\tt.Fatal(\"bad\")\n\t}\n}\n\nfunc TestWrong(t *testing.T) {\n\tif Add(2, 2) != 5 {\n\t\tt.Errorf(\"Add(2, 2) = %d, want 5\", Add(2, 2))\n\t}\n}\n",
    );
    let build = run_check(root, "go-build").await;
    assert_eq!(build.status, StageStatus::Passed, "{build:?}");

    let vet = run_check(root, "go-vet").await;
    assert_eq!(vet.status, StageStatus::Failed, "{vet:?}");
    assert_eq!(places(&vet), [place("calc/calc.go", 10, Some(2))]);

    let tests = run_check(root, "go-test").await;
    assert_eq!(tests.status, StageStatus::Failed, "{tests:?}");
    assert_eq!((tests.tests_total, tests.tests_failed), (Some(2), Some(1)));
    assert_eq!(places(&tests), [place("calc/calc_test.go", 13, None)]);

    write(
        root,
        "calc/broken.go",
        "package calc\n\nfunc Broken() int { return \"s\" }\n",
    );
    let build = run_check(root, "go-build").await;
    assert_eq!(build.status, StageStatus::Failed, "{build:?}");
    assert_eq!(places(&build), [place("calc/broken.go", 3, Some(28))]);
}

#[tokio::test]
async fn a_missing_tool_skips_and_a_slow_one_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let missing = CommandCheck::new(
        "smoke",
        FailureKind::Test,
        &["orchestrator-no-such-tool", "--run"],
        OutputFormat::ExitCode,
    );
    let report = missing.verify(&input(dir.path())).await.unwrap();
    assert_eq!(
        report.status,
        StageStatus::Skipped {
            reason: "`orchestrator-no-such-tool` is not installed (not found on PATH)".into()
        }
    );

    // A check the configuration requires fails instead.
    let required = CommandCheck {
        required: true,
        ..missing.clone()
    };
    let report = required.verify(&input(dir.path())).await.unwrap();
    assert_eq!(report.status, StageStatus::Failed, "{report:?}");
    assert!(
        report.failures[0]
            .message
            .contains("required by orchestrator.toml")
            && report.failures[0]
                .message
                .contains("orchestrator-no-such-tool"),
        "{report:?}"
    );

    let mut slow = CommandCheck::new(
        "slow",
        FailureKind::Test,
        &["sleep", "30"],
        OutputFormat::ExitCode,
    );
    slow.time_limit = Duration::from_millis(300);
    let report = slow.verify(&input(dir.path())).await.unwrap();
    assert_eq!(report.status, StageStatus::Failed);
    assert_eq!(report.kind, FailureKind::Timeout);
    assert!(report.duration < Duration::from_secs(20), "{report:?}");
}

#[tokio::test]
async fn the_project_pipeline_follows_orchestrator_toml() {
    let dir = cargo_fixture("pub fn one() -> u32 {\n    1\n}\n");
    write(
        dir.path(),
        "orchestrator.toml",
        "[verify]\ndisable = [\"cargo-clippy\", \"cargo-test\"]\n\n[verify.checks.says-no]\nkind = \"tests\"\ncommand = [\"false\"]\n",
    );
    let pipeline = Pipeline::for_project(dir.path(), None).unwrap();
    assert_eq!(
        pipeline.stages(),
        ["syntax", "diff policy", "cargo-check", "says-no"]
    );
    let mut verification = input(dir.path());
    verification.changed_files = vec!["src/lib.rs".into()];
    let (reports, result) = pipeline.run(&verification).await;
    assert_eq!(reports[2].status, StageStatus::Passed, "{reports:?}");
    assert_eq!(reports[3].status, StageStatus::Failed, "{reports:?}");
    assert!(
        reports[3].failures[0]
            .message
            .starts_with("`false` exited with 1")
    );
    assert_eq!(
        (
            result.passed,
            result.syntax_passed,
            result.types_passed,
            result.tests_passed
        ),
        (false, Some(true), Some(true), Some(false))
    );

    write(dir.path(), "orchestrator.toml", "[verify]\ntimeout = -1\n");
    let err = Pipeline::for_project(dir.path(), None).unwrap_err();
    assert!(err.to_string().contains("orchestrator.toml"), "{err}");
}
