//! The syntax stage: every changed file in a known language is parsed with tree-sitter,
//! and each ERROR or MISSING node becomes a failure naming file, line, column and the
//! offending text. Files are parsed in parallel on a bounded pool, each under a size cap
//! and a time limit.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestrator_core::model::{FailureKind, VerificationFailure};
use orchestrator_core::verify::{StageReport, StageStatus, VerificationInput, Verifier};
use tree_sitter::{Language, Node, ParseOptions, Parser};

/// Longest text quoted from an ERROR node.
const QUOTE_CHARS: usize = 60;

/// Languages the stage knows, by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceLanguage {
    Rust,
    TypeScript,
    Tsx,
    JavaScript,
    Python,
    Go,
    Java,
    C,
    Cpp,
    Json,
    Toml,
    Yaml,
    Bash,
}

impl SourceLanguage {
    /// The language of `path`, by its extension; `None` for files the stage skips.
    pub fn of(path: &str) -> Option<Self> {
        let extension = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
        Some(match extension.as_str() {
            "rs" => Self::Rust,
            "ts" | "mts" | "cts" => Self::TypeScript,
            "tsx" => Self::Tsx,
            "js" | "mjs" | "cjs" | "jsx" => Self::JavaScript,
            "py" | "pyi" => Self::Python,
            "go" => Self::Go,
            "java" => Self::Java,
            "c" | "h" => Self::C,
            "cc" | "cpp" | "cxx" | "hh" | "hpp" | "hxx" => Self::Cpp,
            "json" => Self::Json,
            "toml" => Self::Toml,
            "yaml" | "yml" => Self::Yaml,
            "sh" | "bash" => Self::Bash,
            _ => return None,
        })
    }

    /// The tree-sitter grammar the stage parses this language with.
    pub fn grammar(self) -> Language {
        match self {
            Self::Rust => tree_sitter_rust::LANGUAGE.into(),
            Self::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Self::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Self::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Self::Python => tree_sitter_python::LANGUAGE.into(),
            Self::Go => tree_sitter_go::LANGUAGE.into(),
            Self::Java => tree_sitter_java::LANGUAGE.into(),
            Self::C => tree_sitter_c::LANGUAGE.into(),
            Self::Cpp => tree_sitter_cpp::LANGUAGE.into(),
            Self::Json => tree_sitter_json::LANGUAGE.into(),
            Self::Toml => tree_sitter_toml_ng::LANGUAGE.into(),
            Self::Yaml => tree_sitter_yaml::LANGUAGE.into(),
            Self::Bash => tree_sitter_bash::LANGUAGE.into(),
        }
    }
}

/// One place a parser could not make sense of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based.
    pub line: u32,
    /// 1-based, in bytes.
    pub column: u32,
    /// What is wrong there: the unexpected text, or what is missing.
    pub message: String,
}

/// Why a file could not be checked at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseProblem {
    #[error("parsing took longer than {0:?}")]
    TimedOut(Duration),
    #[error("the grammar could not be loaded: {0}")]
    Grammar(String),
}

/// Parses `source` and returns its syntax errors, outermost first in document order.
pub fn check_source(
    language: SourceLanguage,
    source: &[u8],
    time_limit: Duration,
) -> Result<Vec<SyntaxError>, ParseProblem> {
    let mut parser = Parser::new();
    parser
        .set_language(&language.grammar())
        .map_err(|err| ParseProblem::Grammar(err.to_string()))?;
    let started = Instant::now();
    let mut give_up = |_: &tree_sitter::ParseState| {
        if started.elapsed() > time_limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let mut read = |offset: usize, _| source.get(offset..).unwrap_or_default();
    let tree = parser
        .parse_with_options(
            &mut read,
            None,
            Some(ParseOptions::new().progress_callback(&mut give_up)),
        )
        .ok_or(ParseProblem::TimedOut(time_limit))?;
    let mut errors = Vec::new();
    collect_errors(tree.root_node(), source, &mut errors);
    Ok(errors)
}

/// Adds the outermost ERROR and MISSING nodes under `node` (an error inside an error is
/// the same mistake).
fn collect_errors(node: Node<'_>, source: &[u8], errors: &mut Vec<SyntaxError>) {
    if node.is_missing() {
        errors.push(at(node, format!("missing {}", describe_missing(node))));
        return;
    }
    if node.is_error() {
        let text = node.utf8_text(source).unwrap_or_default();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let quoted: String = text.chars().take(QUOTE_CHARS).collect();
        let ellipsis = if text.chars().count() > QUOTE_CHARS {
            "…"
        } else {
            ""
        };
        errors.push(at(node, format!("unexpected `{quoted}{ellipsis}`")));
        return;
    }
    if !node.has_error() {
        return;
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        collect_errors(child, source, errors);
    }
}

fn describe_missing(node: Node<'_>) -> String {
    let kind = node.kind();
    if node.is_named() {
        kind.to_owned()
    } else {
        format!("`{kind}`")
    }
}

fn at(node: Node<'_>, message: String) -> SyntaxError {
    let position = node.start_position();
    SyntaxError {
        line: u32::try_from(position.row + 1).unwrap_or(u32::MAX),
        column: u32::try_from(position.column + 1).unwrap_or(u32::MAX),
        message,
    }
}

/// Settings of the syntax stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxLimits {
    /// Larger files are skipped (generated or vendored code, usually).
    pub max_file_bytes: u64,
    /// Parse time allowed per file.
    pub time_limit: Duration,
    /// Files parsed at once.
    pub workers: usize,
}

impl Default for SyntaxLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 1024 * 1024,
            time_limit: Duration::from_secs(5),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// The syntax stage as a [`Verifier`].
#[derive(Debug, Clone, Default)]
pub struct SyntaxVerifier {
    pub limits: SyntaxLimits,
}

/// What happened to one file.
enum FileOutcome {
    Checked(Vec<VerificationFailure>),
    Skipped,
}

impl SyntaxVerifier {
    /// Checks `files` (repository-relative) under `work_dir`; returns the failures and how
    /// many files were parsed.
    pub fn check_files(
        &self,
        work_dir: &Path,
        files: &[String],
    ) -> (Vec<VerificationFailure>, usize) {
        let queue = Mutex::new(files.iter());
        let results = Mutex::new(Vec::new());
        let workers = self.limits.workers.clamp(1, files.len().max(1));
        let work = || {
            loop {
                let next = queue.lock().map(|mut files| files.next().cloned());
                let Ok(Some(file)) = next else { break };
                let outcome = self.check_file(work_dir, &file);
                if let Ok(mut results) = results.lock() {
                    results.push((file, outcome));
                }
            }
        };
        // The calling thread is one of the workers: a single worker spawns nothing.
        std::thread::scope(|scope| {
            for _ in 1..workers {
                scope.spawn(work);
            }
            work();
        });
        let mut results = results.into_inner().unwrap_or_default();
        results.sort_by(|a, b| a.0.cmp(&b.0));
        let mut failures = Vec::new();
        let mut checked = 0;
        for (_, outcome) in results {
            if let FileOutcome::Checked(found) = outcome {
                checked += 1;
                failures.extend(found);
            }
        }
        (failures, checked)
    }

    fn check_file(&self, work_dir: &Path, file: &str) -> FileOutcome {
        let Some(language) = SourceLanguage::of(file) else {
            return FileOutcome::Skipped;
        };
        let path = work_dir.join(file);
        let too_big =
            std::fs::metadata(&path).map_or(true, |m| m.len() > self.limits.max_file_bytes);
        if too_big {
            return FileOutcome::Skipped;
        }
        let Ok(source) = std::fs::read(&path) else {
            return FileOutcome::Skipped;
        };
        let failure = |line, column, message| VerificationFailure {
            kind: FailureKind::Syntax,
            message,
            file: Some(file.to_owned()),
            line,
            column,
        };
        match check_source(language, &source, self.limits.time_limit) {
            Ok(errors) => FileOutcome::Checked(
                errors
                    .into_iter()
                    .map(|e| failure(Some(e.line), Some(e.column), e.message))
                    .collect(),
            ),
            Err(problem) => FileOutcome::Checked(vec![failure(
                None,
                None,
                format!("could not be checked: {problem}"),
            )]),
        }
    }
}

#[async_trait]
impl Verifier for SyntaxVerifier {
    fn name(&self) -> &str {
        "syntax"
    }

    async fn verify(&self, input: &VerificationInput) -> orchestrator_core::Result<StageReport> {
        let started = Instant::now();
        let verifier = self.clone();
        let work_dir = input.work_dir.clone();
        let files = input.changed_files.clone();
        let (failures, checked) =
            tokio::task::spawn_blocking(move || verifier.check_files(&work_dir, &files))
                .await
                .map_err(orchestrator_core::Error::backend)?;
        let status = if checked == 0 {
            StageStatus::NotApplicable {
                reason: "no changed file in a language the syntax stage parses".to_owned(),
            }
        } else if failures.is_empty() {
            StageStatus::Passed
        } else {
            StageStatus::Failed
        };
        Ok(StageReport::new(
            self.name(),
            FailureKind::Syntax,
            status,
            failures,
            started.elapsed(),
        ))
    }
}
