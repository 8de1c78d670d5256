//! Python: ruff's JSON output and pytest's summary.

use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use super::{Findings, Places, TestCounts, json_report};
use crate::command::CommandOutput;

/// pytest's exit status when it collected no tests.
const PYTEST_NO_TESTS: i32 = 5;

#[derive(Debug, Deserialize)]
struct RuffDiagnostic {
    code: Option<String>,
    message: String,
    filename: String,
    location: RuffLocation,
}

#[derive(Debug, Deserialize)]
struct RuffLocation {
    row: u32,
    column: u32,
}

/// Every diagnostic of `ruff check --output-format json`.
pub(super) fn ruff(output: &CommandOutput, places: &Places<'_>) -> Findings {
    let Some(diagnostics) = json_report::<Vec<RuffDiagnostic>>(&output.stdout) else {
        return Findings::default();
    };
    let failures = diagnostics
        .into_iter()
        .map(|d| {
            let message = match d.code {
                Some(code) => format!("{code} {}", d.message),
                None => d.message,
            };
            places.at(
                message,
                &d.filename,
                Some(d.location.row),
                Some(d.location.column),
            )
        })
        .collect();
    Findings {
        failures,
        ..Findings::default()
    }
}

/// pytest run with `-rfE`: the closing counts, each `FAILED`/`ERROR` line of the short
/// summary as a failure, placed at the line its traceback names in the test's file.
pub(super) fn pytest(output: &CommandOutput, places: &Places<'_>) -> Findings {
    static SUMMARY: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?m)^=*\s*((?:\d+ \w+(?:, )?)+) in [\d.]+s").expect("valid pattern")
    });
    static OUTCOME: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(FAILED|ERROR) (\S+?)(?: - (.*))?$").expect("valid pattern")
    });
    if output.exit_code == Some(PYTEST_NO_TESTS) {
        return Findings {
            skipped: Some("pytest collected no tests".into()),
            ..Findings::default()
        };
    }
    let text = &output.stdout;
    let mut counts = None;
    if let Some(summary) = SUMMARY.captures_iter(text).last() {
        let mut found = TestCounts::default();
        for part in summary[1].split(", ") {
            let Some((count, label)) = part.split_once(' ') else {
                continue;
            };
            let count: u32 = count.parse().unwrap_or(0);
            match label {
                "passed" | "xpassed" => found.total += count,
                "failed" | "error" | "errors" => {
                    found.total += count;
                    found.failed += count;
                }
                _ => {}
            }
        }
        counts = Some(found);
    }
    let failures = text
        .lines()
        .filter_map(|line| OUTCOME.captures(line))
        .map(|outcome| {
            let node = &outcome[2];
            let reason = outcome.get(3).map_or("", |m| m.as_str());
            let message = match &outcome[1] {
                "ERROR" => format!("{node} could not run: {reason}"),
                _ => format!("{node} failed: {reason}"),
            };
            let message = message.trim_end_matches(": ").to_owned();
            let file = node.split("::").next().unwrap_or(node);
            let function = node
                .rsplit("::")
                .next()
                .map(|name| name.split('[').next().unwrap_or(name))
                .filter(|_| node.contains("::"));
            let line = function.and_then(|function| traceback_line(text, file, function));
            places.at(message, file, line, None)
        })
        .collect();
    Findings {
        failures,
        tests: counts,
        skipped: None,
    }
}

/// The line of `file` that the traceback of `function` stops at (`--tb=short`:
/// `tests/test_calc.py:10: in test_add_wrong`).
fn traceback_line(text: &str, file: &str, function: &str) -> Option<u32> {
    let prefix = format!("{file}:");
    let suffix = format!(": in {function}");
    text.lines().find_map(|line| {
        line.strip_prefix(&prefix)?
            .strip_suffix(&suffix)?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use orchestrator_core::model::FailureKind;

    use super::*;
    use crate::output::tests::{output, places};

    #[test]
    fn ruff_diagnostics_are_placed() {
        let stdout = r#"[{"cell":null,"code":"F401","end_location":{"column":10,"row":1},"filename":"/work/tree/tests/test_calc.py","fix":null,"location":{"column":8,"row":1},"message":"`os` imported but unused","noqa_row":1,"url":"https://docs.astral.sh/ruff/rules/unused-import"}]"#;
        let found = ruff(&output(stdout, "", 1), &places(FailureKind::Lint)).failures;
        assert_eq!(found[0].file.as_deref(), Some("tests/test_calc.py"));
        assert_eq!((found[0].line, found[0].column), (Some(1), Some(8)));
        assert_eq!(found[0].message, "F401 `os` imported but unused");
    }

    #[test]
    fn pytest_counts_and_failures_are_read() {
        let stdout = ".FF                                                                      [100%]\n\
=================================== FAILURES ===================================\n\
________________________________ test_add_wrong ________________________________\n\
tests/test_calc.py:10: in test_add_wrong\n    assert add(2, 2) == 5\nE   assert 4 == 5\n\
_____________________________ TestGroup.test_inner _____________________________\n\
tests/test_calc.py:15: in test_inner\n    raise ValueError(\"boom\")\nE   ValueError: boom\n\
=========================== short test summary info ============================\n\
FAILED tests/test_calc.py::test_add_wrong - assert 4 == 5\n\
FAILED tests/test_calc.py::TestGroup::test_inner - ValueError: boom\n\
ERROR tests/test_db.py\n\
2 failed, 1 passed, 1 skipped, 1 error in 0.03s\n";
        let found = pytest(&output(stdout, "", 1), &places(FailureKind::Test));
        assert_eq!(
            found.tests,
            Some(TestCounts {
                total: 4,
                failed: 3
            })
        );
        let summary: Vec<_> = found
            .failures
            .iter()
            .map(|f| (f.message.as_str(), f.file.as_deref().unwrap(), f.line))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "tests/test_calc.py::test_add_wrong failed: assert 4 == 5",
                    "tests/test_calc.py",
                    Some(10)
                ),
                (
                    "tests/test_calc.py::TestGroup::test_inner failed: ValueError: boom",
                    "tests/test_calc.py",
                    Some(15)
                ),
                ("tests/test_db.py could not run", "tests/test_db.py", None),
            ]
        );
    }

    #[test]
    fn no_collected_tests_skip_the_stage() {
        let found = pytest(
            &output("no tests ran in 0.01s\n", "", PYTEST_NO_TESTS),
            &places(FailureKind::Test),
        );
        assert_eq!(found.skipped.as_deref(), Some("pytest collected no tests"));
    }
}
