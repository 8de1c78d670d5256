//! The diff policy: changed files outside the task's locks (the runner turns them into
//! conflicts), optional limits on how much a change may touch, and likely secrets in the
//! lines it adds.

use std::sync::LazyLock;
use std::time::Instant;

use async_trait::async_trait;
use orchestrator_core::model::{FailureKind, VerificationFailure};
use orchestrator_core::verify::{StageReport, VerificationInput, Verifier};
use regex::Regex;

use crate::changes::{ChangeKind, ChangeSet, ChangedFile, paths_outside_locks};

/// Kinds of secrets recognized in added lines, with the pattern that finds them.
const SECRET_PATTERNS: &[(&str, &str)] = &[
    (
        "a private key",
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY",
    ),
    ("an AWS access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    (
        "a GitHub token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
    ),
    ("an Anthropic API key", r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
    ("an OpenAI API key", r"\bsk-(?:proj-)?[A-Za-z0-9]{32,}"),
    ("a Slack token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    ("a Google API key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
];

/// What the policy allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVerifier {
    /// Most files a change may touch.
    pub max_files: Option<usize>,
    /// Most lines a change may add and remove together (needs the base commit).
    pub max_changed_lines: Option<u32>,
    /// Whether to look for secrets in added lines.
    pub scan_secrets: bool,
}

impl Default for PolicyVerifier {
    fn default() -> Self {
        Self {
            max_files: None,
            max_changed_lines: None,
            scan_secrets: true,
        }
    }
}

/// [`SECRET_PATTERNS`], compiled once.
static SECRETS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    SECRET_PATTERNS
        .iter()
        .map(|(name, pattern)| (*name, Regex::new(pattern).expect("the patterns are valid")))
        .collect()
});

fn violation(message: String, file: Option<&str>, line: Option<u32>) -> VerificationFailure {
    VerificationFailure {
        kind: FailureKind::Policy,
        message,
        file: file.map(str::to_owned),
        line,
        column: None,
    }
}

impl PolicyVerifier {
    /// The changed files: from git when the base commit is known, else the paths given.
    fn changed_files(input: &VerificationInput) -> Result<Vec<ChangedFile>, String> {
        match &input.base_commit {
            Some(base) => ChangeSet::collect(&input.work_dir, base)
                .map(|set| set.files)
                .map_err(|err| err.to_string()),
            None => Ok(input
                .changed_files
                .iter()
                .map(|path| ChangedFile {
                    path: path.clone(),
                    old_path: None,
                    kind: ChangeKind::Modified,
                    binary: false,
                    changed_lines: Vec::new(),
                    insertions: 0,
                    deletions: 0,
                })
                .collect()),
        }
    }

    /// Paths written outside every lock of the task.
    fn outside_locks(input: &VerificationInput, files: &[ChangedFile]) -> Vec<VerificationFailure> {
        paths_outside_locks(files, &input.locked_paths)
            .into_iter()
            .map(|path| {
                violation(
                    format!("{path} changed outside the task's locks"),
                    Some(path),
                    None,
                )
            })
            .collect()
    }

    /// Added lines that look like secrets.
    fn secrets_in(input: &VerificationInput, files: &[ChangedFile]) -> Vec<VerificationFailure> {
        let mut found = Vec::new();
        for file in files
            .iter()
            .filter(|f| f.kind != ChangeKind::Deleted && !f.binary)
        {
            let Ok(text) = std::fs::read_to_string(input.work_dir.join(&file.path)) else {
                continue;
            };
            for (index, line) in text.lines().enumerate() {
                let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
                let added = file.changed_lines.is_empty()
                    || file
                        .changed_lines
                        .iter()
                        .any(|range| (range.start..=range.end).contains(&number));
                if !added {
                    continue;
                }
                if let Some((name, _)) = SECRETS.iter().find(|(_, re)| re.is_match(line)) {
                    found.push(violation(
                        format!(
                            "{} looks like {name}; keep secrets out of the repository",
                            file.path
                        ),
                        Some(&file.path),
                        Some(number),
                    ));
                }
            }
        }
        found
    }
}

#[async_trait]
impl Verifier for PolicyVerifier {
    fn name(&self) -> &str {
        "diff policy"
    }

    async fn verify(&self, input: &VerificationInput) -> orchestrator_core::Result<StageReport> {
        let started = Instant::now();
        let mut failures = Vec::new();
        let files = match Self::changed_files(input) {
            Ok(files) => files,
            Err(reason) => {
                failures.push(violation(
                    format!("the change could not be read: {reason}"),
                    None,
                    None,
                ));
                Vec::new()
            }
        };
        failures.extend(Self::outside_locks(input, &files));
        if let Some(max) = self.max_files
            && files.len() > max
        {
            failures.push(violation(
                format!("{} files changed; the limit is {max}", files.len()),
                None,
                None,
            ));
        }
        if let Some(max) = self.max_changed_lines {
            let lines: u32 = files.iter().map(|f| f.insertions + f.deletions).sum();
            if lines > max {
                failures.push(violation(
                    format!("{lines} lines changed; the limit is {max}"),
                    None,
                    None,
                ));
            }
        }
        if self.scan_secrets {
            failures.extend(Self::secrets_in(input, &files));
        }
        Ok(StageReport::judged(
            self.name(),
            FailureKind::Policy,
            failures,
            started.elapsed(),
        ))
    }
}
