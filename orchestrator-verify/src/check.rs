//! A check that runs a tool's command in the working tree and reads its output: the
//! type, lint and test stages of every ecosystem are [`CommandCheck`]s.

use std::path::Path;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestrator_core::model::{FailureKind, VerificationFailure};
use orchestrator_core::verify::{StageReport, StageStatus, VerificationInput, Verifier};

use crate::command::{CommandError, CommandOutput, CommandSpec, run};
use crate::output::{self, OutputFormat, last_lines};
use crate::tool_integrity::check_installed;

/// How long a check's command may run unless configured otherwise.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(600);

/// Bytes kept of each of a check's output streams unless configured otherwise.
pub const DEFAULT_OUTPUT_CAP: usize = 4 * 1024 * 1024;

/// One command-line check as a [`Verifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandCheck {
    /// The check's name in reports and in `orchestrator.toml` (`cargo-test`, `eslint`).
    pub name: String,
    /// Types, lint or tests: how the result is weighted and retried.
    pub kind: FailureKind,
    /// The program and its arguments; never passed through a shell.
    pub argv: Vec<String>,
    /// Directories of the working tree searched for the program before `PATH`
    /// (`node_modules/.bin`, `.venv/bin`), so a project's own tool versions win.
    pub tool_dirs: Vec<String>,
    /// Variables set for the command on top of the scrubbed environment.
    pub env: Vec<(String, String)>,
    pub format: OutputFormat,
    pub time_limit: Duration,
    pub output_cap: usize,
    /// The configuration requires this check: when it cannot run, it fails instead of
    /// being skipped.
    pub required: bool,
}

impl CommandCheck {
    /// A check running `argv` with the default limits.
    pub fn new(name: &str, kind: FailureKind, argv: &[&str], format: OutputFormat) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            tool_dirs: Vec::new(),
            env: Vec::new(),
            format,
            time_limit: DEFAULT_TIME_LIMIT,
            output_cap: DEFAULT_OUTPUT_CAP,
            required: false,
        }
    }

    /// Looks for the program in `dirs` of the working tree first.
    pub fn with_tool_dirs(mut self, dirs: &[&str]) -> Self {
        self.tool_dirs = dirs.iter().map(|d| (*d).to_owned()).collect();
        self
    }

    /// Sets `name=value` for the command.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The command as it runs in `work_dir`.
    pub fn spec(&self, work_dir: &Path) -> CommandSpec {
        self.resolved_spec(work_dir).0
    }

    /// [`CommandCheck::spec`], and the tool directory of the working tree its program was
    /// found in, if it was.
    fn resolved_spec(&self, work_dir: &Path) -> (CommandSpec, Option<&str>) {
        let (program, args) = self
            .argv
            .split_first()
            .map_or(("", &[][..]), |(p, a)| (p.as_str(), a));
        let (resolved, tool_dir) = self.resolve(program, work_dir);
        let spec = CommandSpec {
            program: resolved,
            args: args.to_vec(),
            work_dir: work_dir.to_owned(),
            time_limit: self.time_limit,
            output_cap: self.output_cap,
            env: self.env.clone(),
        };
        (spec, tool_dir)
    }

    /// A bare program name is looked up in the tool directories, then on `PATH`; a
    /// relative path is taken from the working tree. Also the tool directory it was
    /// found in, if it was.
    fn resolve<'a>(&'a self, program: &str, work_dir: &Path) -> (String, Option<&'a str>) {
        let path = Path::new(program);
        if path.is_absolute() {
            return (program.to_owned(), None);
        }
        if program.contains('/') {
            return (work_dir.join(path).to_string_lossy().into_owned(), None);
        }
        self.tool_dirs
            .iter()
            .map(|dir| (work_dir.join(dir).join(program), dir))
            .find(|(candidate, _)| candidate.is_file())
            .map_or_else(
                || (program.to_owned(), None),
                |(found, dir)| (found.to_string_lossy().into_owned(), Some(dir.as_str())),
            )
    }

    /// Ends `report` as failed with `message` (of the check's kind).
    fn fail(&self, report: &mut StageReport, message: String) {
        report.status = StageStatus::Failed;
        report.failures.push(VerificationFailure {
            kind: self.kind,
            message,
            file: None,
            line: None,
            column: None,
        });
    }

    /// A skip, or for a required check a failure saying why it could not run.
    fn skip(&self, report: &mut StageReport, reason: String) {
        if self.required {
            self.fail(
                report,
                format!(
                    "the `{}` check is required by orchestrator.toml but could not run: \
                     {reason} (make it runnable, or set `required = false` for it)",
                    self.name
                ),
            );
        } else {
            report.status = StageStatus::Skipped { reason };
        }
    }

    fn not_installed(&self, tool: &str) -> String {
        if self.tool_dirs.is_empty() {
            format!("`{tool}` is not installed (not found on PATH)")
        } else {
            format!(
                "`{tool}` is not installed (not found in {} nor on PATH)",
                self.tool_dirs.join(", ")
            )
        }
    }

    /// Judges a finished command from its output.
    fn judge(&self, output: &CommandOutput, work_dir: &Path, report: &mut StageReport) {
        let findings = output::read(self.format, self.kind, output, work_dir);
        if let Some(reason) = findings.skipped {
            self.skip(report, reason);
            return;
        }
        if let Some(tests) = findings.tests {
            report.tests_total = Some(tests.total);
            report.tests_failed = Some(tests.failed);
        }
        // Formats that only scrape lines cannot tell warnings from errors: the exit
        // status decides for them.
        let exit_decides = matches!(self.format, OutputFormat::Lines | OutputFormat::ExitCode);
        if output.succeeded() && (exit_decides || findings.failures.is_empty()) {
            report.status = StageStatus::Passed;
            return;
        }
        report.status = StageStatus::Failed;
        report.failures = findings.failures;
        if report.failures.is_empty() {
            let status = output.exit_code.map_or_else(
                || "died by a signal".to_owned(),
                |code| format!("exited with {code}"),
            );
            let cut = if output.truncated {
                format!(" (output cut at {} bytes)", self.output_cap)
            } else {
                String::new()
            };
            let said = last_lines(&format!("{}\n{}", output.stdout, output.stderr), 8);
            report.failures.push(VerificationFailure {
                kind: self.kind,
                message: format!("`{}` {status}{cut}:\n{said}", self.argv.join(" ")),
                file: None,
                line: None,
                column: None,
            });
        }
    }
}

#[async_trait]
impl Verifier for CommandCheck {
    fn name(&self) -> &str {
        &self.name
    }

    async fn verify(&self, input: &VerificationInput) -> orchestrator_core::Result<StageReport> {
        let started = Instant::now();
        let mut report = StageReport::new(
            &self.name,
            self.kind,
            StageStatus::Passed,
            Vec::new(),
            Duration::ZERO,
        );
        let (spec, tool_dir) = self.resolved_spec(&input.work_dir);
        let program = self.argv.first().map_or("", String::as_str);
        if let Some(tool_dir) = tool_dir
            && let Err(reason) = check_installed(&input.work_dir, tool_dir, program)
        {
            self.fail(&mut report, reason);
            report.duration = started.elapsed();
            return Ok(report);
        }
        match run(&spec).await {
            Err(CommandError::NotInstalled(tool)) => {
                self.skip(&mut report, self.not_installed(&tool));
            }
            Err(err) => return Err(orchestrator_core::Error::backend(err)),
            Ok(output) if output.timed_out => {
                report.status = StageStatus::Failed;
                report.kind = FailureKind::Timeout;
                report.failures.push(VerificationFailure {
                    kind: FailureKind::Timeout,
                    message: format!(
                        "`{}` ran out of its {} s",
                        self.argv.join(" "),
                        self.time_limit.as_secs_f64()
                    ),
                    file: None,
                    line: None,
                    column: None,
                });
            }
            Ok(output) => self.judge(&output, &input.work_dir, &mut report),
        }
        report.duration = started.elapsed();
        Ok(report)
    }
}
