//! The Cargo stages: `cargo check` (types), `cargo clippy` (lint) and `cargo test`
//! (tests), each in the working tree when it has a `Cargo.toml`, with the compiler's
//! JSON diagnostics and libtest's summary lines parsed into structured failures.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestrator_core::model::{FailureKind, VerificationFailure};
use orchestrator_core::verify::{StageReport, StageStatus, VerificationInput, Verifier};
use serde::Deserialize;

use crate::command::{CommandError, CommandOutput, CommandSpec, run};

/// Which Cargo check a [`CargoVerifier`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CargoStage {
    Check,
    Clippy,
    Test,
}

/// One Cargo stage as a [`Verifier`].
#[derive(Debug, Clone)]
pub struct CargoVerifier {
    pub stage: CargoStage,
    pub time_limit: Duration,
}

impl CargoVerifier {
    pub fn new(stage: CargoStage) -> Self {
        Self {
            stage,
            time_limit: Duration::from_secs(600),
        }
    }

    fn command(&self, input: &VerificationInput) -> CommandSpec {
        let args: &[&str] = match self.stage {
            CargoStage::Check => &["check", "--all-targets", "--message-format=json"],
            CargoStage::Clippy => &[
                "clippy",
                "--all-targets",
                "--message-format=json",
                "--",
                "-D",
                "warnings",
            ],
            CargoStage::Test => &["test", "--no-fail-fast", "--color=never"],
        };
        CommandSpec {
            time_limit: self.time_limit,
            ..CommandSpec::new("cargo", args, input.work_dir.clone())
        }
    }

    fn kind(&self) -> FailureKind {
        match self.stage {
            CargoStage::Check => FailureKind::Type,
            CargoStage::Clippy => FailureKind::Lint,
            CargoStage::Test => FailureKind::Test,
        }
    }
}

fn skipped(reason: impl Into<String>) -> StageStatus {
    StageStatus::Skipped {
        reason: reason.into(),
    }
}

#[async_trait]
impl Verifier for CargoVerifier {
    fn name(&self) -> &str {
        match self.stage {
            CargoStage::Check => "cargo check",
            CargoStage::Clippy => "cargo clippy",
            CargoStage::Test => "cargo test",
        }
    }

    async fn verify(&self, input: &VerificationInput) -> orchestrator_core::Result<StageReport> {
        let started = Instant::now();
        let mut report = StageReport::new(
            self.name(),
            self.kind(),
            StageStatus::Passed,
            Vec::new(),
            Duration::ZERO,
        );
        if !input.work_dir.join("Cargo.toml").is_file() {
            report.status = skipped("no Cargo.toml in the working tree");
            return Ok(report);
        }
        let spec = self.command(input);
        match run(&spec).await {
            Err(CommandError::NotInstalled(tool)) => {
                report.status = skipped(format!("`{tool}` is not installed"));
            }
            Err(err) => return Err(orchestrator_core::Error::backend(err)),
            Ok(output) if output.timed_out => {
                report.status = StageStatus::Failed;
                report.kind = FailureKind::Timeout;
                report.failures.push(failure(
                    FailureKind::Timeout,
                    format!("`{}` ran out of its {:?}", spec.display(), spec.time_limit),
                    None,
                ));
            }
            Ok(output) => self.read_output(&output, &mut report),
        }
        report.duration = started.elapsed();
        Ok(report)
    }
}

impl CargoVerifier {
    fn read_output(&self, output: &CommandOutput, report: &mut StageReport) {
        if self.stage == CargoStage::Clippy && output.stderr.contains("no such command: `clippy`") {
            report.status = skipped("clippy is not installed (rustup component add clippy)");
            return;
        }
        match self.stage {
            CargoStage::Check | CargoStage::Clippy => {
                report.failures = diagnostics(&output.stdout, self.kind());
            }
            CargoStage::Test => {
                let tests = test_results(&output.stdout, &output.stderr);
                report.tests_total = Some(tests.passed + tests.failed);
                report.tests_failed = Some(tests.failed);
                report.failures = tests.failures;
                if !output.succeeded() && report.failures.is_empty() {
                    // It failed before running tests: the build broke.
                    report.failures = diagnostics_from_text(&output.stderr);
                }
            }
        }
        report.status = if output.succeeded() && report.failures.is_empty() {
            StageStatus::Passed
        } else {
            if report.failures.is_empty() {
                report.failures.push(failure(
                    self.kind(),
                    format!(
                        "{} exited with {:?}: {}",
                        self.name(),
                        output.exit_code,
                        last_lines(&output.stderr, 5)
                    ),
                    None,
                ));
            }
            StageStatus::Failed
        };
    }
}

fn failure(
    kind: FailureKind,
    message: String,
    place: Option<(String, u32, u32)>,
) -> VerificationFailure {
    let (file, line, column) = match place {
        Some((file, line, column)) => (Some(file), Some(line), Some(column)),
        None => (None, None, None),
    };
    VerificationFailure {
        kind,
        message,
        file,
        line,
        column,
    }
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

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

/// Errors and warnings from `--message-format=json` output.
pub fn diagnostics(stdout: &str, kind: FailureKind) -> Vec<VerificationFailure> {
    let mut found = Vec::new();
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let Ok(parsed) = serde_json::from_str::<CompilerLine>(line) else {
            continue;
        };
        let Some(message) = parsed
            .message
            .filter(|_| parsed.reason == "compiler-message")
        else {
            continue;
        };
        if !matches!(message.level.as_str(), "error" | "warning") {
            continue;
        }
        if message.spans.is_empty() && message.message.starts_with("aborting due to") {
            continue;
        }
        let place = message
            .spans
            .iter()
            .find(|s| s.is_primary)
            .map(|s| (s.file_name.clone(), s.line_start, s.column_start));
        let code = message
            .code
            .map(|c| format!("[{}] ", c.code))
            .unwrap_or_default();
        let text = format!("{}: {code}{}", message.level, message.message);
        // The same diagnostic comes once per target that compiles the file.
        let candidate = failure(kind, text, place);
        if !found.contains(&candidate) {
            found.push(candidate);
        }
    }
    found
}

/// `error...` lines of a human-readable build log, for builds that broke before tests.
fn diagnostics_from_text(stderr: &str) -> Vec<VerificationFailure> {
    let lines: Vec<&str> = stderr.lines().collect();
    let mut found = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if !line.starts_with("error") || line.starts_with("error: could not compile") {
            continue;
        }
        let place = lines
            .get(index + 1)
            .and_then(|next| next.trim().strip_prefix("--> "))
            .and_then(parse_place);
        found.push(failure(FailureKind::Type, (*line).to_owned(), place));
    }
    found
}

/// `src/lib.rs:10:5` into its parts.
fn parse_place(text: &str) -> Option<(String, u32, u32)> {
    let mut parts = text.trim().rsplitn(3, ':');
    let column = parts.next()?.parse().ok()?;
    let line = parts.next()?.parse().ok()?;
    Some((parts.next()?.to_owned(), line, column))
}

/// What libtest printed.
#[derive(Debug, Default)]
struct TestResults {
    passed: u32,
    failed: u32,
    failures: Vec<VerificationFailure>,
}

/// Sums libtest's `test result:` lines and turns each failed test into a failure, with
/// the place of its panic when the output has one.
fn test_results(stdout: &str, stderr: &str) -> TestResults {
    let mut results = TestResults::default();
    for line in stdout.lines() {
        if let Some(summary) = line.strip_prefix("test result: ") {
            for part in summary.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(label), Some(count)) = (words.next(), words.next()) else {
                    continue;
                };
                let count: u32 = count.trim_start_matches("ok. ").parse().unwrap_or(0);
                match label {
                    "passed" => results.passed += count,
                    "failed" => results.failed += count,
                    _ => {}
                }
            }
        }
    }
    let output = format!("{stdout}\n{stderr}");
    for line in output.lines() {
        let Some(name) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.strip_suffix(" ... FAILED"))
        else {
            continue;
        };
        let panic_place = output
            .split(&format!("---- {name} stdout ----"))
            .nth(1)
            .and_then(|section| {
                section
                    .lines()
                    .find_map(|l| l.split(" panicked at ").nth(1))
                    .map(|rest| rest.trim_end_matches(':').to_owned())
            })
            .and_then(|place| parse_place(&place));
        results.failures.push(failure(
            FailureKind::Test,
            format!("test {name} failed"),
            panic_place,
        ));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_summaries_and_failures_are_read() {
        let stdout = "running 2 tests\ntest a ... ok\ntest tests::b ... FAILED\n\nfailures:\n\n\
                      ---- tests::b stdout ----\n\nthread 'tests::b' (7) panicked at src/lib.rs:12:9:\nboom\n\n\
                      test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n\
                      test result: ok. 3 passed; 0 failed; 0 ignored\n";
        let results = test_results(stdout, "");
        assert_eq!((results.passed, results.failed), (4, 1));
        assert_eq!(results.failures[0].message, "test tests::b failed");
        assert_eq!(results.failures[0].file.as_deref(), Some("src/lib.rs"));
        assert_eq!(
            (results.failures[0].line, results.failures[0].column),
            (Some(12), Some(9))
        );
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
        let found = diagnostics(stdout, FailureKind::Type);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].message, "error: [E0308] mismatched types");
        assert_eq!((found[0].line, found[0].column), (Some(2), Some(5)));
        assert_eq!(
            parse_place("C:/x/src/a.rs:3:4"),
            Some(("C:/x/src/a.rs".into(), 3, 4))
        );
    }
}
