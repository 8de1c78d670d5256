//! The JavaScript and TypeScript tools: tsc, eslint's JSON formatter, and the JSON report
//! that jest and vitest share.

use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use super::{Findings, Places, TestCounts, json_report, parse_place};
use crate::command::CommandOutput;

/// `src/a.ts(4,14): error TS2322: Type 'string' is not assignable to type 'number'.`
pub(super) fn tsc(output: &CommandOutput, places: &Places<'_>) -> Findings {
    static DIAGNOSTIC: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(.+?)\((\d+),(\d+)\): error (TS\d+): (.*)$").expect("valid pattern")
    });
    static GLOBAL: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^error (TS\d+): (.*)$").expect("valid pattern"));
    let mut failures = Vec::new();
    for line in output.stdout.lines().chain(output.stderr.lines()) {
        if let Some(found) = DIAGNOSTIC.captures(line) {
            failures.push(places.at(
                format!("{}: {}", &found[4], &found[5]),
                &found[1],
                found[2].parse().ok(),
                found[3].parse().ok(),
            ));
        } else if let Some(found) = GLOBAL.captures(line) {
            failures.push(places.failure(format!("{}: {}", &found[1], &found[2])));
        }
    }
    Findings {
        failures,
        ..Findings::default()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EslintFile {
    file_path: String,
    messages: Vec<EslintMessage>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EslintMessage {
    rule_id: Option<String>,
    /// 1 warning, 2 error.
    severity: u8,
    message: String,
    line: Option<u32>,
    column: Option<u32>,
}

/// eslint's errors (severity 2); warnings do not fail a change.
pub(super) fn eslint(output: &CommandOutput, places: &Places<'_>) -> Findings {
    let Some(files) = json_report::<Vec<EslintFile>>(&output.stdout) else {
        return Findings::default();
    };
    let failures = files
        .iter()
        .flat_map(|file| file.messages.iter().map(move |m| (file, m)))
        .filter(|(_, message)| message.severity >= 2)
        .map(|(file, message)| {
            let text = match &message.rule_id {
                Some(rule) => format!("{} ({rule})", message.message),
                None => message.message.clone(),
            };
            places.at(text, &file.file_path, message.line, message.column)
        })
        .collect();
    Findings {
        failures,
        ..Findings::default()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JestReport {
    num_total_tests: u32,
    num_failed_tests: u32,
    #[serde(default)]
    num_runtime_error_test_suites: u32,
    #[serde(default)]
    test_results: Vec<JestFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JestFile {
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    assertion_results: Vec<JestAssertion>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JestAssertion {
    full_name: String,
    status: String,
    #[serde(default)]
    failure_messages: Vec<String>,
    location: Option<JestLocation>,
}

#[derive(Debug, Deserialize)]
struct JestLocation {
    line: u32,
    column: u32,
}

/// The report of `jest --json` or `vitest run --reporter=json`: counts, each failed test
/// with the line of its failing assertion in its file, and files that failed to load.
pub(super) fn jest(output: &CommandOutput, places: &Places<'_>) -> Findings {
    let Some(report) = json_report::<JestReport>(&output.stdout) else {
        return Findings::default();
    };
    let mut failures = Vec::new();
    for file in &report.test_results {
        for test in file
            .assertion_results
            .iter()
            .filter(|t| t.status == "failed")
        {
            let first_message = test
                .failure_messages
                .first()
                .and_then(|m| m.lines().next())
                .unwrap_or("failed");
            let message = format!("{}: {first_message}", test.full_name);
            // The stack frame in the test file is where the assertion failed; the
            // reported location (jest's --testLocationInResults) is where the test starts.
            let place = test
                .failure_messages
                .iter()
                .find_map(|m| frame_in(m, &file.name))
                .or_else(|| test.location.as_ref().map(|l| (l.line, Some(l.column))));
            failures.push(match place {
                Some((line, column)) => places.at(message, &file.name, Some(line), column),
                None => places.at(message, &file.name, None, None),
            });
        }
        if file.status == "failed" && file.assertion_results.is_empty() {
            let first = file
                .message
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('●'))
                .unwrap_or("the test file failed to run");
            failures.push(places.at(first, &file.name, None, None));
        }
    }
    let broken_files = report.num_runtime_error_test_suites;
    Findings {
        failures,
        tests: Some(TestCounts {
            total: report.num_total_tests + broken_files,
            failed: report.num_failed_tests + broken_files,
        }),
        skipped: None,
    }
}

/// The line and column of the first stack frame in `stack` that points into `file`.
fn frame_in(stack: &str, file: &str) -> Option<(u32, Option<u32>)> {
    stack.lines().find_map(|line| {
        let start = line.find(file)?;
        let place = line[start..].trim_end_matches(')');
        parse_place(place).map(|(_, line, column)| (line, column))
    })
}

#[cfg(test)]
mod tests {
    use orchestrator_core::model::FailureKind;

    use super::*;
    use crate::output::tests::{output, places};

    #[test]
    fn tsc_diagnostics_keep_their_code_and_place() {
        let stdout = "src/a.ts(4,14): error TS2322: Type 'string' is not assignable to type 'number'.\n\
                      error TS5057: Cannot find a tsconfig.json file at the specified directory: '.'.\n";
        let found = tsc(&output(stdout, "", 2), &places(FailureKind::Type)).failures;
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].file.as_deref(), Some("src/a.ts"));
        assert_eq!((found[0].line, found[0].column), (Some(4), Some(14)));
        assert!(found[0].message.starts_with("TS2322: Type 'string'"));
        assert_eq!(found[1].file, None);
    }

    #[test]
    fn eslint_errors_fail_and_warnings_do_not() {
        let stdout = r#"[{"filePath":"/work/tree/src/b.js","messages":[{"ruleId":"no-unused-vars","severity":2,"message":"'unused' is assigned a value but never used.","line":1,"column":7},{"ruleId":"no-console","severity":1,"message":"Unexpected console statement.","line":2,"column":1}],"errorCount":1,"warningCount":1}]"#;
        let found = eslint(&output(stdout, "", 1), &places(FailureKind::Lint)).failures;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].file.as_deref(), Some("src/b.js"));
        assert_eq!((found[0].line, found[0].column), (Some(1), Some(7)));
        assert_eq!(
            found[0].message,
            "'unused' is assigned a value but never used. (no-unused-vars)"
        );
    }

    #[test]
    fn vitest_failures_are_placed_from_their_stack() {
        let stdout = r#"{"numTotalTests":2,"numFailedTests":1,"testResults":[{"name":"/work/tree/src/sum.test.js","status":"failed","message":"","assertionResults":[{"fullName":"adds","status":"passed","failureMessages":[]},{"fullName":"adds wrong","status":"failed","failureMessages":["AssertionError: expected 4 to be 5 // Object.is equality\n    at /work/tree/src/sum.test.js:3:46\n    at file:///x/node_modules/@vitest/runner/dist/chunk-hooks.js:155:11"]}]}]}"#;
        let found = jest(&output(stdout, "", 1), &places(FailureKind::Test));
        assert_eq!(
            found.tests,
            Some(TestCounts {
                total: 2,
                failed: 1
            })
        );
        let failure = &found.failures[0];
        assert_eq!(failure.file.as_deref(), Some("src/sum.test.js"));
        assert_eq!((failure.line, failure.column), (Some(3), Some(46)));
        assert_eq!(
            failure.message,
            "adds wrong: AssertionError: expected 4 to be 5 // Object.is equality"
        );
    }

    #[test]
    fn a_test_file_that_does_not_load_is_a_failure() {
        let stdout = r#"{"numTotalTests":0,"numFailedTests":0,"numRuntimeErrorTestSuites":1,"testResults":[{"name":"/work/tree/src/x.test.js","status":"failed","message":"  ● Test suite failed to run\n\n    Cannot find module './missing' from 'src/x.test.js'\n","assertionResults":[]}]}"#;
        let found = jest(&output(stdout, "", 1), &places(FailureKind::Test));
        assert_eq!(
            found.tests,
            Some(TestCounts {
                total: 1,
                failed: 1
            })
        );
        assert_eq!(
            found.failures[0].message,
            "Cannot find module './missing' from 'src/x.test.js'"
        );
    }
}
