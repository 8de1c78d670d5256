//! The syntax stage against raw tree-sitter parsing of the same files, in the same run.
//!
//! `cargo bench -p orchestrator-benches --bench syntax_stage`. The change set is a
//! typical one made of this repository's own sources: 20 files of 7-16 KB in the
//! languages the stage knows, copied into a temporary working tree.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orchestrator_core::verify::{VerificationInput, Verifier};
use orchestrator_verify::{SourceLanguage, SyntaxLimits, SyntaxVerifier};
use tree_sitter::Parser;

/// Files in the change set.
const FILES: usize = 20;

/// A working tree holding the change set, and the files' repository-relative paths.
struct ChangeSet {
    tree: tempfile::TempDir,
    files: Vec<String>,
    sources: Vec<(SourceLanguage, Vec<u8>)>,
}

impl ChangeSet {
    fn bytes(&self) -> u64 {
        self.sources.iter().map(|(_, s)| s.len() as u64).sum()
    }
}

/// Source files of the workspace under `dir`, recursively, in path order.
fn sources_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        if path.is_dir() {
            sources_under(&path, found);
        } else if SourceLanguage::of(name).is_some() {
            found.push(path);
        }
    }
}

fn change_set() -> ChangeSet {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut candidates = Vec::new();
    sources_under(&workspace, &mut candidates);
    let tree = tempfile::tempdir().expect("temporary directory");
    let mut files = Vec::new();
    let mut sources = Vec::new();
    for path in candidates {
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        if !(7_000..=16_384).contains(&size) {
            continue;
        }
        let name = format!(
            "f{:02}_{}",
            files.len(),
            path.file_name().unwrap().to_string_lossy()
        );
        let source = std::fs::read(&path).expect("readable source");
        std::fs::write(tree.path().join(&name), &source).expect("copy");
        sources.push((SourceLanguage::of(&name).expect("known"), source));
        files.push(name);
        if files.len() == FILES {
            break;
        }
    }
    ChangeSet {
        tree,
        files,
        sources,
    }
}

/// Raw tree-sitter: a parser per file, parsing from memory, nothing else.
fn parse_raw(sources: &[(SourceLanguage, Vec<u8>)]) -> u64 {
    let mut nodes = 0;
    for (language, source) in sources {
        let mut parser = Parser::new();
        parser.set_language(&language.grammar()).expect("grammar");
        let tree = parser.parse(source, None).expect("parsed");
        nodes += u64::from(tree.root_node().child_count());
    }
    nodes
}

fn syntax_stage(c: &mut Criterion) {
    let set = change_set();
    eprintln!(
        "change set: {} files, {} bytes",
        set.files.len(),
        set.bytes()
    );
    let mut group = c.benchmark_group("syntax");
    group.throughput(Throughput::Bytes(set.bytes()));
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("raw_tree_sitter_1_thread", |b| {
        b.iter(|| parse_raw(&set.sources));
    });
    for workers in [1, 2] {
        let stage = SyntaxVerifier {
            limits: SyntaxLimits {
                workers,
                ..SyntaxLimits::default()
            },
        };
        group.bench_function(format!("stage_{workers}_workers"), |b| {
            b.iter(|| stage.check_files(set.tree.path(), &set.files));
        });
    }
    // The whole stage as a pipeline runs it: a Verifier on the async runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let input = VerificationInput {
        task_title: "bench".into(),
        task_description: String::new(),
        work_dir: set.tree.path().to_owned(),
        changed_files: set.files.clone(),
        locked_paths: Vec::new(),
        base_commit: None,
    };
    let stage = SyntaxVerifier::default();
    group.bench_function("verifier_default_limits", |b| {
        b.to_async(&runtime)
            .iter(|| async { stage.verify(&input).await.expect("verified") });
    });
    group.finish();
}

criterion_group!(benches, syntax_stage);
criterion_main!(benches);
