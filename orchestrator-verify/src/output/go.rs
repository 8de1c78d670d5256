//! Go: the events of `go test -json`.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{Findings, Places, TestCounts, lines, parse_place};
use crate::command::CommandOutput;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TestEvent {
    action: String,
    #[serde(default)]
    package: String,
    test: Option<String>,
    output: Option<String>,
}

/// Counts of `go test -json`, each failed test with the first `file.go:line:` its output
/// names (the package directory joined in front), and build errors from standard error.
pub(super) fn tests(output: &CommandOutput, places: &Places<'_>) -> Findings {
    let mut counts = TestCounts::default();
    let mut seen_any = false;
    let mut outputs: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut failed = Vec::new();
    for event in output
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<TestEvent>(line).ok())
    {
        seen_any = true;
        let Some(test) = event.test else {
            continue;
        };
        match event.action.as_str() {
            "output" => outputs
                .entry((event.package, test))
                .or_default()
                .extend(event.output),
            "pass" => counts.total += 1,
            "fail" => {
                counts.total += 1;
                counts.failed += 1;
                failed.push((event.package, test));
            }
            _ => {}
        }
    }
    let module = module_path(places.work_dir);
    let mut failures = Vec::new();
    for key in failed {
        let printed = outputs.remove(&key).unwrap_or_default();
        let (package, test) = key;
        // `    calc_test.go:13: Add(2, 2) = 4, want 5`
        let place = printed.iter().find_map(|line| {
            let (place, message) = line.trim().split_once(": ")?;
            let (file, line_no, _) = parse_place(place)?;
            Some((file.to_owned(), line_no, message.trim().to_owned()))
        });
        let message = match &place {
            Some((_, _, said)) => format!("{test} failed ({package}): {said}"),
            None => format!("{test} failed ({package})"),
        };
        failures.push(match place {
            Some((file, line, _)) => {
                let file = match package_dir(module.as_deref(), &package) {
                    Some(dir) => format!("{dir}/{file}"),
                    None => file,
                };
                places.at(message, &file, Some(line), None)
            }
            None => places.failure(message),
        });
    }
    if !output.succeeded() {
        // Packages that did not build print compiler errors on standard error.
        failures.extend(lines(&output.stderr, places));
    }
    Findings {
        failures,
        tests: seen_any.then_some(counts),
        skipped: None,
    }
}

/// The module path that `go.mod` in `work_dir` declares.
fn module_path(work_dir: &Path) -> Option<String> {
    let manifest = std::fs::read_to_string(work_dir.join("go.mod")).ok()?;
    manifest.lines().find_map(|line| {
        let module = line.trim().strip_prefix("module")?.trim();
        Some(module.trim_matches('"').to_owned())
    })
}

/// The directory of `package` relative to the module root; `None` for the root itself
/// (or a package from elsewhere).
fn package_dir(module: Option<&str>, package: &str) -> Option<String> {
    let below = package.strip_prefix(module?)?.strip_prefix('/')?;
    (!below.is_empty()).then(|| below.to_owned())
}

#[cfg(test)]
mod tests {
    use orchestrator_core::model::FailureKind;

    use super::*;
    use crate::output::tests::{output, places};

    #[test]
    fn go_test_events_give_counts_and_failures() {
        let stdout = r#"{"Action":"run","Package":"example.com/fx","Test":"TestAdd"}
{"Action":"pass","Package":"example.com/fx","Test":"TestAdd","Elapsed":0}
{"Action":"run","Package":"example.com/fx","Test":"TestWrong"}
{"Action":"output","Package":"example.com/fx","Test":"TestWrong","Output":"=== RUN   TestWrong\n"}
{"Action":"output","Package":"example.com/fx","Test":"TestWrong","Output":"    calc_test.go:13: Add(2, 2) = 4, want 5\n"}
{"Action":"output","Package":"example.com/fx","Test":"TestWrong","Output":"--- FAIL: TestWrong (0.00s)\n"}
{"Action":"fail","Package":"example.com/fx","Test":"TestWrong","Elapsed":0}
{"Action":"fail","Package":"example.com/fx","Elapsed":0.002}
"#;
        let found = tests(&output(stdout, "", 1), &places(FailureKind::Test));
        assert_eq!(
            found.tests,
            Some(TestCounts {
                total: 2,
                failed: 1
            })
        );
        assert_eq!(found.failures.len(), 1);
        let failure = &found.failures[0];
        assert_eq!(
            failure.message,
            "TestWrong failed (example.com/fx): Add(2, 2) = 4, want 5"
        );
        assert_eq!(
            (failure.file.as_deref(), failure.line),
            (Some("calc_test.go"), Some(13))
        );
        assert_eq!(
            package_dir(Some("example.com/fx"), "example.com/fx/internal/calc").as_deref(),
            Some("internal/calc")
        );
        assert_eq!(package_dir(Some("example.com/fx"), "example.com/fx"), None);
    }

    #[test]
    fn a_package_that_does_not_build_reports_compiler_errors() {
        let stderr = "# example.com/fx [example.com/fx.test]\n./calc.go:12:28: cannot use \"s\" as int value in return statement\n";
        let found = tests(
            &output("FAIL\texample.com/fx [build failed]\n", stderr, 2),
            &places(FailureKind::Test),
        );
        assert_eq!(found.tests, None);
        assert_eq!(found.failures[0].file.as_deref(), Some("calc.go"));
        assert_eq!(found.failures[0].line, Some(12));
    }
}
