//! Which checks a working tree gets: each ecosystem is recognized by its manifest
//! (`Cargo.toml`, `package.json`/`tsconfig.json`, Python project files, `go.mod`) and
//! brings its type, lint and test commands.

use std::path::Path;

use orchestrator_core::model::FailureKind;
use serde::Deserialize;

use crate::check::CommandCheck;
use crate::output::OutputFormat;

/// The npm scaffold's placeholder test script, which only fails.
const NPM_PLACEHOLDER_TEST: &str = "echo \"Error: no test specified\" && exit 1";

/// Where projects keep their own Node tools.
const NODE_TOOLS: &[&str] = &["node_modules/.bin"];

/// Where projects keep their own Python environment.
const PYTHON_TOOLS: &[&str] = &[".venv/bin", "venv/bin"];

/// The checks for the ecosystems found at the root of `work_dir`, in the order they run:
/// types, lint, then tests of each ecosystem.
pub fn detect_checks(work_dir: &Path) -> Vec<CommandCheck> {
    let mut checks = Vec::new();
    checks.extend(cargo(work_dir));
    checks.extend(node(work_dir));
    checks.extend(python(work_dir));
    checks.extend(go(work_dir));
    checks
}

/// Every check name detection can produce, for validating configuration.
pub const KNOWN_CHECKS: &[&str] = &[
    "cargo-check",
    "cargo-clippy",
    "cargo-test",
    "tsc",
    "eslint",
    "jest",
    "vitest",
    "npm-test",
    "ruff",
    "mypy",
    "pytest",
    "go-build",
    "go-vet",
    "go-test",
];

fn cargo(root: &Path) -> Vec<CommandCheck> {
    if !root.join("Cargo.toml").is_file() {
        return Vec::new();
    }
    vec![
        CommandCheck::new(
            "cargo-check",
            FailureKind::Type,
            &["cargo", "check", "--all-targets", "--message-format=json"],
            OutputFormat::CargoJson,
        ),
        CommandCheck::new(
            "cargo-clippy",
            FailureKind::Lint,
            &[
                "cargo",
                "clippy",
                "--all-targets",
                "--message-format=json",
                "--",
                "-D",
                "warnings",
            ],
            OutputFormat::CargoJson,
        ),
        CommandCheck::new(
            "cargo-test",
            FailureKind::Test,
            &["cargo", "test", "--no-fail-fast", "--color=never"],
            OutputFormat::Libtest,
        ),
    ]
}

/// The parts of `package.json` detection reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PackageJson {
    #[serde(default)]
    scripts: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    dependencies: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    dev_dependencies: serde_json::Map<String, serde_json::Value>,
    eslint_config: Option<serde_json::Value>,
    jest: Option<serde_json::Value>,
}

impl PackageJson {
    fn depends_on(&self, name: &str) -> bool {
        self.dependencies.contains_key(name) || self.dev_dependencies.contains_key(name)
    }

    fn test_script(&self) -> Option<&str> {
        self.scripts
            .get("test")
            .and_then(serde_json::Value::as_str)
            .filter(|script| script.trim() != NPM_PLACEHOLDER_TEST)
    }
}

fn node(root: &Path) -> Vec<CommandCheck> {
    let manifest = root.join("package.json");
    let has_tsconfig = root.join("tsconfig.json").is_file();
    if !manifest.is_file() && !has_tsconfig {
        return Vec::new();
    }
    // An unreadable package.json leaves only what the files show; `npm test` would
    // report the broken manifest itself.
    let package: PackageJson = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    let node_check = |name: &str, kind, argv: &[&str], format| {
        CommandCheck::new(name, kind, argv, format)
            .with_tool_dirs(NODE_TOOLS)
            .with_env("CI", "true")
            .with_env("FORCE_COLOR", "0")
    };
    let mut checks = Vec::new();
    if has_tsconfig {
        checks.push(node_check(
            "tsc",
            FailureKind::Type,
            &["tsc", "--noEmit", "--pretty", "false"],
            OutputFormat::Tsc,
        ));
    }
    let eslint_files = [
        "eslint.config.js",
        "eslint.config.mjs",
        "eslint.config.cjs",
        "eslint.config.ts",
        ".eslintrc",
        ".eslintrc.js",
        ".eslintrc.cjs",
        ".eslintrc.json",
        ".eslintrc.yml",
        ".eslintrc.yaml",
    ];
    if package.eslint_config.is_some() || eslint_files.iter().any(|f| root.join(f).is_file()) {
        checks.push(node_check(
            "eslint",
            FailureKind::Lint,
            &["eslint", "--format", "json", "."],
            OutputFormat::EslintJson,
        ));
    }
    if package.depends_on("vitest") {
        checks.push(node_check(
            "vitest",
            FailureKind::Test,
            &["vitest", "run", "--reporter=json"],
            OutputFormat::JestJson,
        ));
    } else if package.depends_on("jest") || package.jest.is_some() {
        checks.push(node_check(
            "jest",
            FailureKind::Test,
            &["jest", "--json", "--testLocationInResults", "--ci"],
            OutputFormat::JestJson,
        ));
    } else if package.test_script().is_some() {
        checks.push(node_check(
            "npm-test",
            FailureKind::Test,
            &["npm", "test", "--silent"],
            OutputFormat::ExitCode,
        ));
    }
    checks
}

fn python(root: &Path) -> Vec<CommandCheck> {
    let markers = [
        "pyproject.toml",
        "setup.py",
        "setup.cfg",
        "requirements.txt",
        "pytest.ini",
        "tox.ini",
    ];
    if !markers.iter().any(|m| root.join(m).is_file()) {
        return Vec::new();
    }
    let python_check = |name: &str, kind, argv: &[&str], format| {
        CommandCheck::new(name, kind, argv, format)
            .with_tool_dirs(PYTHON_TOOLS)
            .with_env("PYTHONDONTWRITEBYTECODE", "1")
    };
    let mut checks = Vec::new();
    if mypy_configured(root) {
        checks.push(python_check(
            "mypy",
            FailureKind::Type,
            &[
                "mypy",
                "--show-column-numbers",
                "--no-error-summary",
                "--no-color-output",
                "--cache-dir=/dev/null",
                ".",
            ],
            OutputFormat::Lines,
        ));
    }
    checks.push(python_check(
        "ruff",
        FailureKind::Lint,
        &[
            "ruff",
            "check",
            "--no-cache",
            "--output-format",
            "json",
            ".",
        ],
        OutputFormat::RuffJson,
    ));
    checks.push(python_check(
        "pytest",
        FailureKind::Test,
        &[
            "pytest",
            "-rfE",
            "--tb=short",
            "-q",
            "--color=no",
            "-p",
            "no:cacheprovider",
        ],
        OutputFormat::Pytest,
    ));
    checks
}

/// mypy runs only where the project configured it.
fn mypy_configured(root: &Path) -> bool {
    let has_section = |file: &str, section: &str| {
        std::fs::read_to_string(root.join(file)).is_ok_and(|text| text.contains(section))
    };
    root.join("mypy.ini").is_file()
        || root.join(".mypy.ini").is_file()
        || has_section("pyproject.toml", "[tool.mypy")
        || has_section("setup.cfg", "[mypy")
}

fn go(root: &Path) -> Vec<CommandCheck> {
    if !root.join("go.mod").is_file() {
        return Vec::new();
    }
    vec![
        CommandCheck::new(
            "go-build",
            FailureKind::Type,
            &["go", "build", "./..."],
            OutputFormat::Lines,
        ),
        CommandCheck::new(
            "go-vet",
            FailureKind::Lint,
            &["go", "vet", "./..."],
            OutputFormat::Lines,
        ),
        CommandCheck::new(
            "go-test",
            FailureKind::Test,
            &["go", "test", "-json", "-vet=off", "./..."],
            OutputFormat::GoTestJson,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn names(checks: &[CommandCheck]) -> Vec<&str> {
        checks.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn each_ecosystem_brings_its_checks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(detect_checks(root).is_empty());

        fs::write(root.join("Cargo.toml"), "[package]\n").unwrap();
        fs::write(root.join("go.mod"), "module example.com/x\n").unwrap();
        fs::write(root.join("pyproject.toml"), "[tool.mypy]\nstrict = true\n").unwrap();
        fs::write(root.join("tsconfig.json"), "{}").unwrap();
        fs::write(root.join("eslint.config.js"), "module.exports = [];").unwrap();
        fs::write(
            root.join("package.json"),
            r#"{"devDependencies": {"jest": "^29"}, "scripts": {"test": "jest"}}"#,
        )
        .unwrap();
        assert_eq!(
            names(&detect_checks(root)),
            [
                "cargo-check",
                "cargo-clippy",
                "cargo-test",
                "tsc",
                "eslint",
                "jest",
                "mypy",
                "ruff",
                "pytest",
                "go-build",
                "go-vet",
                "go-test"
            ]
        );
        for check in detect_checks(root) {
            assert!(
                KNOWN_CHECKS.contains(&check.name.as_str()),
                "{}",
                check.name
            );
        }
    }

    #[test]
    fn node_tests_prefer_vitest_then_jest_then_a_real_test_script() {
        let dir = tempfile::tempdir().unwrap();
        let write = |json: &str| fs::write(dir.path().join("package.json"), json).unwrap();
        write(r#"{"devDependencies": {"vitest": "^3", "jest": "^29"}}"#);
        assert_eq!(names(&detect_checks(dir.path())), ["vitest"]);
        write(r#"{"scripts": {"test": "mocha"}}"#);
        assert_eq!(names(&detect_checks(dir.path())), ["npm-test"]);
        write(r#"{"scripts": {"test": "echo \"Error: no test specified\" && exit 1"}}"#);
        assert!(detect_checks(dir.path()).is_empty());
    }

    #[test]
    fn project_tools_are_found_before_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("tsconfig.json"), "{}").unwrap();
        let tsc = &detect_checks(dir.path())[0];
        assert_eq!(tsc.spec(dir.path()).program, "tsc");
        fs::create_dir_all(dir.path().join("node_modules/.bin")).unwrap();
        fs::write(dir.path().join("node_modules/.bin/tsc"), "").unwrap();
        assert_eq!(
            tsc.spec(dir.path()).program,
            dir.path().join("node_modules/.bin/tsc").to_string_lossy()
        );
    }
}
