//! A repository's own verification settings: the `[verify]` table of `orchestrator.toml`
//! at the root of the tree.
//!
//! ```toml
//! [verify]
//! timeout = 900                 # seconds, for every check's command (default 600)
//! disable = ["cargo-clippy"]    # detected checks to leave out
//! detect = true                 # false: run only the checks listed below
//! max_files = 40                # diff policy limits (default: none)
//! max_changed_lines = 1500
//! scan_secrets = true
//!
//! [verify.checks.pytest]        # change a detected check (a check named here is
//! command = ["pytest", "-x", "tests/unit"]  # required: it fails when it cannot run,
//! timeout = 300                 # unless `required = false`)
//!
//! [verify.checks.integration]   # or add one
//! kind = "tests"                # types | lint | tests
//! command = ["make", "integration"]
//! format = "exit-code"          # how its output is read (default exit-code)
//! ```
//!
//! When the attempt's base commit is known the file is read from that commit, so a
//! change cannot relax the checks that judge it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use orchestrator_core::model::FailureKind;
use serde::Deserialize;

use crate::check::CommandCheck;
use crate::detect::{KNOWN_CHECKS, detect_checks};
use crate::output::OutputFormat;
use crate::policy::PolicyVerifier;

/// The settings file's name at the root of the working tree.
pub const CONFIG_FILE: &str = "orchestrator.toml";

/// The longest time limit a check may be given: a day.
const MAX_TIMEOUT_SECS: u64 = 86_400;

/// Why the settings could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    /// Which file (and commit) the settings came from.
    pub origin: String,
    pub message: String,
}

/// The `[verify]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Seconds every check's command may run.
    pub timeout: Option<u64>,
    /// Whether checks are detected from the tree's manifests.
    #[serde(default = "detect_by_default")]
    pub detect: bool,
    /// Names of detected checks to leave out.
    #[serde(default)]
    pub disable: Vec<String>,
    /// Changed or added checks by name.
    #[serde(default)]
    pub checks: BTreeMap<String, CheckConfig>,
    pub max_files: Option<usize>,
    pub max_changed_lines: Option<u32>,
    pub scan_secrets: Option<bool>,
}

fn detect_by_default() -> bool {
    true
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            timeout: None,
            detect: true,
            disable: Vec::new(),
            checks: BTreeMap::new(),
            max_files: None,
            max_changed_lines: None,
            scan_secrets: None,
        }
    }
}

/// One entry of `[verify.checks]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// The program and its arguments (never run through a shell).
    pub command: Option<Vec<String>>,
    pub kind: Option<CheckKind>,
    pub format: Option<OutputFormat>,
    pub timeout: Option<u64>,
    /// Whether the check fails when it cannot run (default: yes, for a check named in
    /// the file; detected checks the file does not name are skipped then).
    pub required: Option<bool>,
}

/// What a configured check verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Types,
    Lint,
    Tests,
}

impl From<CheckKind> for FailureKind {
    fn from(kind: CheckKind) -> Self {
        match kind {
            CheckKind::Types => FailureKind::Type,
            CheckKind::Lint => FailureKind::Lint,
            CheckKind::Tests => FailureKind::Test,
        }
    }
}

/// The whole file; tables other than `[verify]` belong to other parts of the system.
#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    verify: VerifyConfig,
}

impl VerifyConfig {
    /// Reads the settings of the tree at `work_dir`: from `base_commit` when given (no
    /// file there means defaults), else from the working tree.
    pub fn load(work_dir: &Path, base_commit: Option<&str>) -> Result<Self, ConfigError> {
        let (origin, text) = match base_commit {
            Some(commit) => (
                format!("{CONFIG_FILE} at commit {commit}"),
                read_at_commit(work_dir, commit)?,
            ),
            None => {
                let path = work_dir.join(CONFIG_FILE);
                let text = match std::fs::read_to_string(&path) {
                    Ok(text) => Some(text),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                    Err(err) => {
                        return Err(ConfigError {
                            origin: path.display().to_string(),
                            message: format!("cannot be read: {err}"),
                        });
                    }
                };
                (path.display().to_string(), text)
            }
        };
        match text {
            Some(text) => Self::parse(&text).map_err(|message| ConfigError { origin, message }),
            None => Ok(Self::default()),
        }
    }

    /// Parses and validates the text of a settings file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: ConfigFile = toml::from_str(text).map_err(|err| err.to_string())?;
        file.verify.validate()?;
        Ok(file.verify)
    }

    fn validate(&self) -> Result<(), String> {
        check_timeout("verify.timeout", self.timeout)?;
        for (name, check) in &self.checks {
            let key = format!("verify.checks.{name}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "{key}: a check's name uses letters, digits, `-` and `_` only"
                ));
            }
            check_timeout(&format!("{key}.timeout"), check.timeout)?;
            if let Some(command) = &check.command
                && command
                    .first()
                    .is_none_or(|program| program.trim().is_empty())
            {
                return Err(format!(
                    "{key}.command: give the program and its arguments, e.g. [\"make\", \"test\"]"
                ));
            }
            let known = KNOWN_CHECKS.contains(&name.as_str());
            if !known && (check.command.is_none() || check.kind.is_none()) {
                return Err(format!(
                    "{key}: `{name}` is not a detected check ({}), so it needs `command` and \
                     `kind` (types, lint or tests)",
                    KNOWN_CHECKS.join(", ")
                ));
            }
        }
        for name in &self.disable {
            if !KNOWN_CHECKS.contains(&name.as_str()) && !self.checks.contains_key(name) {
                return Err(format!(
                    "verify.disable: no check is called `{name}`; the checks are {}",
                    KNOWN_CHECKS.join(", ")
                ));
            }
        }
        if self.max_files == Some(0) {
            return Err("verify.max_files: must be at least 1".into());
        }
        if self.max_changed_lines == Some(0) {
            return Err("verify.max_changed_lines: must be at least 1".into());
        }
        Ok(())
    }

    /// The checks for `work_dir`: detected ones with this configuration applied, then the
    /// added ones, without the disabled ones.
    pub fn checks(&self, work_dir: &Path) -> Vec<CommandCheck> {
        let mut checks = if self.detect {
            detect_checks(work_dir)
        } else {
            Vec::new()
        };
        if let Some(timeout) = self.timeout {
            for check in &mut checks {
                check.time_limit = Duration::from_secs(timeout);
            }
        }
        for (name, configured) in &self.checks {
            match checks.iter_mut().find(|c| &c.name == name) {
                Some(check) => configured.apply(check),
                None => {
                    // A check of another ecosystem than this tree's, or one of its own.
                    let (Some(command), Some(kind)) = (&configured.command, configured.kind) else {
                        continue;
                    };
                    let argv: Vec<&str> = command.iter().map(String::as_str).collect();
                    let mut check = CommandCheck::new(
                        name,
                        kind.into(),
                        &argv,
                        configured.format.unwrap_or(OutputFormat::ExitCode),
                    );
                    if let Some(timeout) = self.timeout {
                        check.time_limit = Duration::from_secs(timeout);
                    }
                    configured.apply(&mut check);
                    checks.push(check);
                }
            }
        }
        checks.retain(|check| !self.disable.contains(&check.name));
        checks
    }

    /// The diff policy these settings ask for.
    pub fn policy(&self) -> PolicyVerifier {
        let defaults = PolicyVerifier::default();
        PolicyVerifier {
            max_files: self.max_files,
            max_changed_lines: self.max_changed_lines,
            scan_secrets: self.scan_secrets.unwrap_or(defaults.scan_secrets),
        }
    }
}

impl CheckConfig {
    fn apply(&self, check: &mut CommandCheck) {
        if let Some(command) = &self.command {
            check.argv.clone_from(command);
        }
        if let Some(kind) = self.kind {
            check.kind = kind.into();
        }
        if let Some(format) = self.format {
            check.format = format;
        }
        if let Some(timeout) = self.timeout {
            check.time_limit = Duration::from_secs(timeout);
        }
        check.required = self.required.unwrap_or(true);
    }
}

fn check_timeout(key: &str, timeout: Option<u64>) -> Result<(), String> {
    match timeout {
        Some(secs) if secs == 0 || secs > MAX_TIMEOUT_SECS => Err(format!(
            "{key}: {secs} is out of range; give seconds from 1 to {MAX_TIMEOUT_SECS}"
        )),
        _ => Ok(()),
    }
}

/// The settings file's text at `commit`, or `None` when that commit has none.
fn read_at_commit(work_dir: &Path, commit: &str) -> Result<Option<String>, ConfigError> {
    let origin = format!("{CONFIG_FILE} at commit {commit}");
    let fail = |message: String| ConfigError {
        origin: origin.clone(),
        message,
    };
    let repo = git2::Repository::open(work_dir)
        .map_err(|err| fail(format!("the working tree is not a git repository: {err}")))?;
    let tree = repo
        .revparse_single(commit)
        .and_then(|object| object.peel_to_tree())
        .map_err(|err| fail(format!("the commit cannot be read: {err}")))?;
    let Ok(entry) = tree.get_path(Path::new(CONFIG_FILE)) else {
        return Ok(None);
    };
    let blob = entry
        .to_object(&repo)
        .and_then(|object| object.peel_to_blob())
        .map_err(|err| fail(format!("cannot be read: {err}")))?;
    String::from_utf8(blob.content().to_vec())
        .map(Some)
        .map_err(|_| fail("is not UTF-8 text".into()))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn detected_checks_are_changed_added_and_disabled() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("Cargo.toml"), "[package]\n").unwrap();
        let config = VerifyConfig::parse(
            r#"
            [runner]
            anything = "belongs elsewhere"

            [verify]
            timeout = 120
            disable = ["cargo-clippy"]
            max_files = 10

            [verify.checks.cargo-test]
            command = ["cargo", "test", "--lib"]
            timeout = 30

            [verify.checks.docs]
            kind = "lint"
            command = ["cargo", "doc", "--no-deps"]
            "#,
        )
        .unwrap();
        let checks = config.checks(dir.path());
        let summary: Vec<_> = checks
            .iter()
            .map(|c| (c.name.as_str(), c.time_limit.as_secs(), c.argv.join(" ")))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "cargo-check",
                    120,
                    "cargo check --all-targets --message-format=json".to_owned()
                ),
                ("cargo-test", 30, "cargo test --lib".to_owned()),
                ("docs", 120, "cargo doc --no-deps".to_owned()),
            ]
        );
        assert_eq!(checks[2].kind, FailureKind::Lint);
        assert_eq!(checks[2].format, OutputFormat::ExitCode);
        assert_eq!(config.policy().max_files, Some(10));
        assert!(config.policy().scan_secrets);
    }

    #[test]
    fn mistakes_are_named_with_their_key() {
        let cases = [
            (
                "[verify]\ntimeout = 0\n",
                "verify.timeout: 0 is out of range",
            ),
            ("[verify]\ntimeot = 5\n", "unknown field `timeot`"),
            (
                "[verify]\ndisable = [\"clippy\"]\n",
                "no check is called `clippy`",
            ),
            (
                "[verify.checks.smoke]\ncommand = [\"./smoke.sh\"]\n",
                "verify.checks.smoke: `smoke` is not a detected check",
            ),
            (
                "[verify.checks.pytest]\ncommand = []\n",
                "verify.checks.pytest.command: give the program",
            ),
            (
                "[verify.checks.pytest]\nformat = \"junit\"\n",
                "unknown variant `junit`",
            ),
            (
                "[verify.checks.x]\nkind = \"style\"\ncommand = [\"a\"]\n",
                "unknown variant `style`",
            ),
        ];
        for (text, expected) in cases {
            let err = VerifyConfig::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_base_commits_settings_win_over_the_working_tree() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        fs::write(dir.path().join(CONFIG_FILE), "[verify]\ntimeout = 60\n").unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new(CONFIG_FILE)).unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let base = repo
            .commit(Some("HEAD"), &signature, &signature, "base", &tree, &[])
            .unwrap()
            .to_string();
        // The change tries to switch the tests off.
        fs::write(
            dir.path().join(CONFIG_FILE),
            "[verify]\ntimeout = 60\ndisable = [\"cargo-test\"]\n",
        )
        .unwrap();
        let at_base = VerifyConfig::load(dir.path(), Some(&base)).unwrap();
        assert!(at_base.disable.is_empty());
        let in_tree = VerifyConfig::load(dir.path(), None).unwrap();
        assert_eq!(in_tree.disable, ["cargo-test"]);

        fs::write(dir.path().join(CONFIG_FILE), "[verify\n").unwrap();
        let err = VerifyConfig::load(dir.path(), None).unwrap_err();
        assert!(err.to_string().contains(CONFIG_FILE), "{err}");
        let err = VerifyConfig::load(dir.path(), Some("0123456")).unwrap_err();
        assert!(err.message.contains("the commit cannot be read"), "{err}");
    }
}
