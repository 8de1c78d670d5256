//! Reading what a check's command printed: each [`OutputFormat`] turns a tool's output
//! into structured failures (file, line, column, message) and, for test runners, counts.

mod go;
mod node;
mod python;
mod rust;

use std::path::Path;
use std::sync::LazyLock;

use orchestrator_core::model::{FailureKind, VerificationFailure};
use regex::Regex;
use serde::Deserialize;

use crate::command::CommandOutput;

/// How a check's output is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// rustc's `--message-format=json` diagnostics (`cargo check`, `cargo clippy`).
    CargoJson,
    /// libtest's `test … FAILED` lines and `test result:` summaries (`cargo test`).
    Libtest,
    /// `file(line,col): error TS…: message` (`tsc --pretty false`).
    Tsc,
    /// `eslint --format json`: errors fail, warnings do not.
    EslintJson,
    /// The JSON report of `jest --json` and `vitest run --reporter=json`.
    JestJson,
    /// `ruff check --output-format json`.
    RuffJson,
    /// pytest's short summary (`-rfE`) and final counts.
    Pytest,
    /// `go test -json` events.
    GoTestJson,
    /// Compiler-style lines `file:line[:column]: [error: ]message` (mypy, go build,
    /// go vet, and most other tools).
    Lines,
    /// Only the exit status; the end of the output explains a failure.
    ExitCode,
}

/// Tests a runner counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestCounts {
    pub total: u32,
    pub failed: u32,
}

/// What a command's output says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    pub failures: Vec<VerificationFailure>,
    /// Set by test runners' formats when the output has counts.
    pub tests: Option<TestCounts>,
    /// Set when the output shows that the check had nothing to do (no tests collected,
    /// a tool missing behind a wrapper): the stage is skipped with this reason.
    pub skipped: Option<String>,
}

/// Reads `output` as `format`; failures get `kind` and paths relative to `work_dir`.
pub fn read(
    format: OutputFormat,
    kind: FailureKind,
    output: &CommandOutput,
    work_dir: &Path,
) -> Findings {
    let places = Places { work_dir, kind };
    match format {
        OutputFormat::CargoJson => rust::diagnostics(output, &places),
        OutputFormat::Libtest => rust::tests(output, &places),
        OutputFormat::Tsc => node::tsc(output, &places),
        OutputFormat::EslintJson => node::eslint(output, &places),
        OutputFormat::JestJson => node::jest(output, &places),
        OutputFormat::RuffJson => python::ruff(output, &places),
        OutputFormat::Pytest => python::pytest(output, &places),
        OutputFormat::GoTestJson => go::tests(output, &places),
        OutputFormat::Lines => Findings {
            failures: lines(&format!("{}\n{}", output.stdout, output.stderr), &places),
            ..Findings::default()
        },
        OutputFormat::ExitCode => Findings::default(),
    }
}

/// Builds failures with paths made relative to the working tree.
struct Places<'a> {
    work_dir: &'a Path,
    kind: FailureKind,
}

impl Places<'_> {
    fn failure(&self, message: impl Into<String>) -> VerificationFailure {
        VerificationFailure {
            kind: self.kind,
            message: message.into(),
            file: None,
            line: None,
            column: None,
        }
    }

    fn at(
        &self,
        message: impl Into<String>,
        file: &str,
        line: Option<u32>,
        column: Option<u32>,
    ) -> VerificationFailure {
        VerificationFailure {
            file: Some(self.relative(file)),
            line,
            column,
            ..self.failure(message)
        }
    }

    /// `file` relative to the working tree when it lies inside it; `./` dropped.
    fn relative(&self, file: &str) -> String {
        let path = Path::new(file);
        let inside = path
            .strip_prefix(self.work_dir)
            .ok()
            .map(Path::to_owned)
            .or_else(|| {
                let root = self.work_dir.canonicalize().ok()?;
                path.strip_prefix(root).ok().map(Path::to_owned)
            });
        let relative = inside.map_or_else(|| file.to_owned(), |p| p.to_string_lossy().into_owned());
        relative
            .strip_prefix("./")
            .unwrap_or(&relative)
            .replace('\\', "/")
    }
}

/// Compiler-style lines: `file:line[:column]: message`, optionally behind a `vet: `
/// prefix; `note:` lines and lines that name no source position are left out.
fn lines(text: &str, places: &Places<'_>) -> Vec<VerificationFailure> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.strip_prefix("vet: ").unwrap_or(line).trim_end();
        let Some((file, line_no, column, message)) = split_position(line) else {
            continue;
        };
        let message = message.strip_prefix("error: ").unwrap_or(message);
        if message.starts_with("note: ") || message.is_empty() {
            continue;
        }
        let failure = places.at(message, file, Some(line_no), column);
        if !found.contains(&failure) {
            found.push(failure);
        }
    }
    found
}

/// `path:line[:column]: rest` into its parts. The path has no spaces and has an
/// extension, which keeps ordinary prose out.
fn split_position(line: &str) -> Option<(&str, u32, Option<u32>, &str)> {
    static POSITION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^([^\s:]+\.[^\s:]+):(\d+)(?::(\d+))?:(?:\s+(.*))?$").expect("valid pattern")
    });
    let found = POSITION.captures(line)?;
    let number = |index: usize| found.get(index).and_then(|m| m.as_str().parse().ok());
    Some((
        found.get(1)?.as_str(),
        number(2)?,
        number(3),
        found.get(4).map_or("", |m| m.as_str().trim()),
    ))
}

/// `path:line[:column]` (a place alone, as in a panic message or a stack frame).
fn parse_place(text: &str) -> Option<(&str, u32, Option<u32>)> {
    split_position(&format!("{text}:")).map(|(file, line, column, _)| {
        // `file` borrows the temporary; find the same prefix in `text`.
        (&text[..file.len()], line, column)
    })
}

/// The last `count` lines of `text`.
pub(crate) fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// The first JSON value in `text` that starts at the beginning of a line, for tools that
/// print a banner or log lines around their report.
fn json_report<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with('{') || line.starts_with('[') {
            let mut values = serde_json::Deserializer::from_str(&text[offset..]).into_iter::<T>();
            if let Some(Ok(value)) = values.next() {
                return Some(value);
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    pub(super) fn output(stdout: &str, stderr: &str, exit_code: i32) -> CommandOutput {
        CommandOutput {
            exit_code: Some(exit_code),
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
            truncated: false,
            timed_out: false,
            duration: Duration::ZERO,
        }
    }

    pub(super) fn places(kind: FailureKind) -> Places<'static> {
        Places {
            work_dir: Path::new("/work/tree"),
            kind,
        }
    }

    #[test]
    fn compiler_lines_from_mypy_and_go() {
        let text = "calc.py:6:12: error: Incompatible return value type (got \"str\", expected \"int\")  [return-value]\n\
                    calc.py:7: note: See https://mypy.readthedocs.io\n\
                    # example.com/fx\n\
                    ./calc.go:10:2: fmt.Printf format %d has arg \"x\" of wrong type string\n\
                    vet: ./calc.go:12:28: cannot use \"s\" as int value\n\
                    /work/tree/pkg/a.go:3: undefined: b\n\
                    Found 1 error in 1 file (checked 2 source files)\n";
        let found = lines(text, &places(FailureKind::Type));
        let summary: Vec<_> = found
            .iter()
            .map(|f| (f.file.as_deref().unwrap(), f.line, f.column))
            .collect();
        assert_eq!(
            summary,
            [
                ("calc.py", Some(6), Some(12)),
                ("calc.go", Some(10), Some(2)),
                ("calc.go", Some(12), Some(28)),
                ("pkg/a.go", Some(3), None),
            ]
        );
        assert!(
            found[0]
                .message
                .starts_with("Incompatible return value type")
        );
        assert_eq!(found[3].message, "undefined: b");
    }

    #[test]
    fn a_json_report_is_found_behind_a_banner() {
        let text = "> fx@1.0.0 test\nsome log: {not json\n{\"a\": 1}\ntrailing\n";
        let value: serde_json::Value = json_report(text).unwrap();
        assert_eq!(value["a"], 1);
        assert!(json_report::<serde_json::Value>("no json here").is_none());
    }
}
