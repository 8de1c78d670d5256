//! The syntax stage on a fixture repository: a valid and a broken file per language, the
//! change set from git2 feeding the stage, and its limits.

mod common;

use std::time::Duration;

use common::{commit_all, write};
use git2::Repository;
use orchestrator_core::model::FailureKind;
use orchestrator_core::verify::{StageStatus, VerificationInput, Verifier};
use orchestrator_verify::syntax::{ParseProblem, SourceLanguage, check_source};
use orchestrator_verify::{ChangeSet, SyntaxLimits, SyntaxVerifier};

/// (file, broken source, line, column, message) — each broken file has one mistake.
const BROKEN: &[(&str, &str, u32, u32, &str)] = &[
    (
        "src/main.rs",
        "fn main() {\n    let x = 1\n    println!(\"{x}\");\n}\n",
        2,
        13,
        "unexpected `1`",
    ),
    (
        "web/a.ts",
        "function f(a: number) {\n  return a +;\n}\n",
        2,
        13,
        "missing identifier",
    ),
    (
        "web/b.tsx",
        "export function A() {\n  return <div className=\"x\">;\n}\n",
        2,
        3,
        "unexpected `return <div className=\"x\">;`",
    ),
    (
        "web/c.js",
        "const x = {\n  a: 1\n  b: 2,\n};\n",
        3,
        3,
        "unexpected `b: 2`",
    ),
    ("tool/d.py", "def f(:\n    return 1\n", 1, 7, "missing `)`"),
    (
        "cmd/e.go",
        "package main\n\nfunc main() {\n\tx := \n}\n",
        4,
        6,
        "missing identifier",
    ),
    (
        "java/F.java",
        "class F {\n  void f() {\n    int x = ;\n  }\n}\n",
        3,
        11,
        "unexpected `=`",
    ),
    (
        "native/g.c",
        "int main(void) {\n  return 0\n}\n",
        2,
        11,
        "missing `;`",
    ),
    (
        "native/h.cpp",
        "int main() {\n  std::vector<int> v = {1, 2;\n}\n",
        2,
        29,
        "missing `}`",
    ),
    (
        "conf/i.json",
        "{\n  \"a\": 1,\n  \"b\": \n}\n",
        3,
        7,
        "missing number",
    ),
    (
        "conf/j.toml",
        "[package]\nname = \n",
        2,
        1,
        "unexpected `name =`",
    ),
    (
        "conf/k.yaml",
        "a: 1\nb: [1, 2\nc: 3\n",
        2,
        4,
        "unexpected `[1, 2`",
    ),
    (
        "bin/l.sh",
        "if [ -f x ]; then\n  echo hi\n",
        3,
        1,
        "missing `fi`",
    ),
];

/// A valid file per language.
const VALID: &[(&str, &str)] = &[
    (
        "src/ok.rs",
        "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
    ),
    (
        "web/ok.ts",
        "export const add = (a: number, b: number): number => a + b;\n",
    ),
    (
        "web/ok.tsx",
        "export const A = () => <div className=\"x\">{1 + 1}</div>;\n",
    ),
    ("web/ok.js", "module.exports = { add: (a, b) => a + b };\n"),
    ("tool/ok.py", "def add(a, b):\n    return a + b\n"),
    (
        "cmd/ok.go",
        "package main\n\nfunc add(a, b int) int { return a + b }\n",
    ),
    (
        "java/Ok.java",
        "class Ok {\n  int add(int a, int b) { return a + b; }\n}\n",
    ),
    ("native/ok.c", "int add(int a, int b) { return a + b; }\n"),
    (
        "native/ok.cpp",
        "#include <vector>\nint size(const std::vector<int>& v) { return v.size(); }\n",
    ),
    ("conf/ok.json", "{ \"a\": [1, 2, {\"b\": null}] }\n"),
    (
        "conf/ok.toml",
        "[package]\nname = \"x\"\nversion = \"0.1.0\"\n",
    ),
    ("conf/ok.yaml", "a: 1\nb: [1, 2]\nc:\n  - d\n"),
    ("bin/ok.sh", "if [ -f x ]; then\n  echo hi\nfi\n"),
];

#[tokio::test]
async fn every_language_reports_the_exact_place_of_its_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(dir.path()).unwrap();
    write(dir.path(), "README.md", "# fixture\n");
    commit_all(&repo);
    for (path, source, ..) in BROKEN {
        write(dir.path(), path, source);
    }
    for (path, source) in VALID {
        write(dir.path(), path, source);
    }
    write(dir.path(), "notes.txt", "not a language the stage parses\n");
    let changes = ChangeSet::collect(dir.path(), "HEAD").unwrap();
    let input = VerificationInput {
        task_title: "t".into(),
        task_description: "d".into(),
        work_dir: dir.path().to_owned(),
        changed_files: changes.present_paths().map(str::to_owned).collect(),
        locked_paths: Vec::new(),
        base_commit: None,
    };
    let report = SyntaxVerifier::default().verify(&input).await.unwrap();
    assert_eq!(report.status, StageStatus::Failed);
    assert_eq!(report.kind, FailureKind::Syntax);
    for (path, _, line, column, message) in BROKEN {
        let found: Vec<_> = report
            .failures
            .iter()
            .filter(|f| f.file.as_deref() == Some(path))
            .collect();
        assert_eq!(found.len(), 1, "{path}: {found:?}");
        assert_eq!(
            (found[0].line, found[0].column),
            (Some(*line), Some(*column)),
            "{path}"
        );
        assert_eq!(found[0].message, *message, "{path}");
    }
    for (path, _) in VALID {
        assert!(
            report
                .failures
                .iter()
                .all(|f| f.file.as_deref() != Some(path)),
            "{path} is valid: {:?}",
            report.failures
        );
    }
    assert_eq!(report.failures.len(), BROKEN.len());
}

#[tokio::test]
async fn a_change_without_parsable_files_is_skipped_not_passed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "notes.txt", "text\n");
    let input = VerificationInput {
        task_title: "t".into(),
        task_description: "d".into(),
        work_dir: dir.path().to_owned(),
        changed_files: vec!["notes.txt".into(), "gone.rs".into()],
        locked_paths: Vec::new(),
        base_commit: None,
    };
    let report = SyntaxVerifier::default().verify(&input).await.unwrap();
    assert!(
        matches!(report.status, StageStatus::NotApplicable { .. }),
        "{report:?}"
    );

    write(dir.path(), "ok.rs", "fn main() {}\n");
    let input = VerificationInput {
        changed_files: vec!["ok.rs".into()],
        ..input
    };
    let report = SyntaxVerifier::default().verify(&input).await.unwrap();
    assert_eq!(report.status, StageStatus::Passed);
}

#[test]
fn size_caps_and_time_limits_hold() {
    let dir = tempfile::tempdir().unwrap();
    let big: String = (0..50_000).map(|i| format!("fn f{i}() {{}}\n")).collect();
    write(dir.path(), "big.rs", &big);
    let capped = SyntaxVerifier {
        limits: SyntaxLimits {
            max_file_bytes: 1024,
            ..SyntaxLimits::default()
        },
    };
    let (failures, checked) = capped.check_files(dir.path(), &["big.rs".into()]);
    assert_eq!((failures.len(), checked), (0, 0), "over the cap: skipped");

    let outcome = check_source(
        SourceLanguage::Rust,
        big.as_bytes(),
        Duration::from_nanos(1),
    );
    assert!(
        matches!(outcome, Err(ParseProblem::TimedOut(_))),
        "{outcome:?}"
    );
    let hurried = SyntaxVerifier {
        limits: SyntaxLimits {
            time_limit: Duration::from_nanos(1),
            ..SyntaxLimits::default()
        },
    };
    let (failures, checked) = hurried.check_files(dir.path(), &["big.rs".into()]);
    assert_eq!(checked, 1);
    assert!(failures[0].message.contains("longer than"), "{failures:?}");
    assert_eq!(SourceLanguage::of("Makefile"), None);
    assert_eq!(SourceLanguage::of("x.TSX"), Some(SourceLanguage::Tsx));
}
