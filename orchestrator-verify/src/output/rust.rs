//! Cargo: rustc's JSON diagnostics and libtest's output.

use orchestrator_core::model::VerificationFailure;
use serde::Deserialize;

use super::{Findings, Places, TestCounts, parse_place};
use crate::command::CommandOutput;

#[derive(Debug, Deserialize)]
struct CompilerLine {
    reason: String,
    message: Option<CompilerMessage>,
}

#[derive(Debug, Deserialize)]
struct CompilerMessage {
    level: String,
    message: String,
    #[serde(default)]
    code: Option<DiagnosticCode>,
    #[serde(default)]
    spans: Vec<Span>,
}

#[derive(Debug, Deserialize)]
struct DiagnosticCode {
    code: String,
}

#[derive(Debug, Deserialize)]
struct Span {
    file_name: String,
    line_start: u32,
    column_start: u32,
    is_primary: bool,
}

/// The errors of `--message-format=json` output.
pub(super) fn diagnostics(output: &CommandOutput, places: &Places<'_>) -> Findings {
    if output.stderr.contains("no such command: `clippy`") {
        return Findings {
            skipped: Some("clippy is not installed (rustup component add clippy)".into()),
            ..Findings::default()
        };
    }
    let mut found = Vec::new();
    for line in output.stdout.lines().filter(|l| l.starts_with('{')) {
        let Ok(parsed) = serde_json::from_str::<CompilerLine>(line) else {
            continue;
        };
        let Some(message) = parsed
            .message
            .filter(|_| parsed.reason == "compiler-message")
        else {
            continue;
        };
        // Warnings do not fail a build; clippy runs with `-D warnings` to make its
        // lints errors.
        if message.level != "error" {
            continue;
        }
        if message.spans.is_empty() && message.message.starts_with("aborting due to") {
            continue;
        }
        let code = message
            .code
            .map(|c| format!("[{}] ", c.code))
            .unwrap_or_default();
        let text = format!("{}: {code}{}", message.level, message.message);
        let candidate = match message.spans.iter().find(|s| s.is_primary) {
            Some(span) => places.at(
                text,
                &span.file_name,
                Some(span.line_start),
                Some(span.column_start),
            ),
            None => places.failure(text),
        };
        // The same diagnostic comes once per target that compiles the file.
        if !found.contains(&candidate) {
            found.push(candidate);
        }
    }
    Findings {
        failures: found,
        ..Findings::default()
    }
}

/// Sums libtest's `test result:` lines and turns each failed test into a failure, with
/// the place of its panic when the output has one. A build that broke before any test
/// ran gives its `error` lines instead.
pub(super) fn tests(output: &CommandOutput, places: &Places<'_>) -> Findings {
    let mut counts = TestCounts::default();
    let mut summaries = 0;
    for line in output.stdout.lines() {
        let Some(summary) = line.strip_prefix("test result: ") else {
            continue;
        };
        summaries += 1;
        for part in summary.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else {
                continue;
            };
            let count: u32 = count.parse().unwrap_or(0);
            match label {
                "passed" => counts.total += count,
                "failed" => {
                    counts.total += count;
                    counts.failed += count;
                }
                _ => {}
            }
        }
    }
    let text = format!("{}\n{}", output.stdout, output.stderr);
    let mut failures: Vec<VerificationFailure> = text
        .lines()
        .filter_map(|line| line.strip_prefix("test ")?.strip_suffix(" ... FAILED"))
        .map(|name| {
            let message = format!("test {name} failed");
            match panic_place(&text, name) {
                Some((file, line, column)) => places.at(message, file, Some(line), column),
                None => places.failure(message),
            }
        })
        .collect();
    if failures.is_empty() && !output.succeeded() {
        failures = build_errors(&output.stderr, places);
    }
    Findings {
        failures,
        tests: (summaries > 0).then_some(counts),
        skipped: None,
    }
}

/// Where the test `name` panicked, from its captured output section.
fn panic_place<'t>(text: &'t str, name: &str) -> Option<(&'t str, u32, Option<u32>)> {
    let section = text.split(&format!("---- {name} stdout ----")).nth(1)?;
    let place = section
        .lines()
        .find_map(|l| l.split(" panicked at ").nth(1))?
        .trim_end_matches(':');
    parse_place(place)
}

/// `error…` lines of a human-readable build log, each with the `-->` place below it.
fn build_errors(stderr: &str, places: &Places<'_>) -> Vec<VerificationFailure> {
    let lines: Vec<&str> = stderr.lines().collect();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if !line.starts_with("error") || line.starts_with("error: could not compile") {
            continue;
        }
        let place = lines
            .get(index + 1)
            .and_then(|next| next.trim().strip_prefix("--> "))
            .and_then(|place| parse_place(place));
        found.push(match place {
            Some((file, line_no, column)) => places.at(*line, file, Some(line_no), column),
            None => places.failure(*line),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use orchestrator_core::model::FailureKind;

    use super::*;
    use crate::output::tests::{output, places};

    #[test]
    fn libtest_summaries_and_failures_are_read() {
        let stdout = "running 2 tests\ntest a ... ok\ntest tests::b ... FAILED\n\nfailures:\n\n\
                      ---- tests::b stdout ----\n\nthread 'tests::b' (7) panicked at src/lib.rs:12:9:\nboom\n\n\
                      test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n\
                      test result: ok. 3 passed; 0 failed; 0 ignored\n";
        let found = tests(&output(stdout, "", 101), &places(FailureKind::Test));
        assert_eq!(
            found.tests,
            Some(TestCounts {
                total: 5,
                failed: 1
            })
        );
        let failure = &found.failures[0];
        assert_eq!(failure.message, "test tests::b failed");
        assert_eq!(failure.file.as_deref(), Some("src/lib.rs"));
        assert_eq!((failure.line, failure.column), (Some(12), Some(9)));
    }

    #[test]
    fn a_broken_build_reports_its_errors() {
        let stderr = "   Compiling fx v0.1.0\nerror[E0308]: mismatched types\n --> src/lib.rs:2:5\n  |\nerror: could not compile `fx`\n";
        let found = tests(&output("", stderr, 101), &places(FailureKind::Test));
        assert_eq!(found.tests, None);
        assert_eq!(found.failures.len(), 1);
        assert_eq!(found.failures[0].message, "error[E0308]: mismatched types");
        assert_eq!(found.failures[0].line, Some(2));
    }

    #[test]
    fn compiler_json_becomes_failures() {
        let stdout = concat!(
            r#"{"reason":"compiler-artifact","package_id":"x"}"#,
            "\n",
            r#"{"reason":"compiler-message","message":{"level":"error","message":"mismatched types","code":{"code":"E0308"},"spans":[{"file_name":"src/lib.rs","line_start":2,"column_start":5,"is_primary":true}]}}"#,
            "\n",
            r#"{"reason":"compiler-message","message":{"level":"error","message":"aborting due to 1 previous error","code":null,"spans":[]}}"#,
            "\n",
        );
        let found = diagnostics(&output(stdout, "", 101), &places(FailureKind::Type)).failures;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].message, "error: [E0308] mismatched types");
        assert_eq!((found[0].line, found[0].column), (Some(2), Some(5)));
    }
}
