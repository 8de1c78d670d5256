//! The change an attempt made: every file that differs between the task's base commit and
//! the working tree — committed, staged, unstaged or untracked, `.gitignore` honoured —
//! with renames detected, binary files marked, and the line ranges that changed.

use std::path::{Path, PathBuf};

use git2::{Delta, DiffFindOptions, DiffOptions, Repository};
use orchestrator_core::lock::LockPath;
use serde::Serialize;

/// Why a change set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChangeSetError {
    #[error("{path} is not inside a git repository: {source}")]
    NotARepository { path: PathBuf, source: git2::Error },
    #[error("the base {base:?} does not name a commit in {path}: {source}")]
    UnknownBase {
        base: String,
        path: PathBuf,
        source: git2::Error,
    },
    #[error("comparing {path} with its base failed: {source}")]
    Diff { path: PathBuf, source: git2::Error },
}

/// How a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    Renamed,
}

/// Lines `start..=end` (1-based) of a file's new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LineRange {
    pub start: u32,
    pub end: u32,
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangedFile {
    /// Repository-relative path, `/`-separated (the old path for a deleted file).
    pub path: String,
    /// The path before a rename.
    pub old_path: Option<String>,
    pub kind: ChangeKind,
    /// Binary files carry no line ranges and are not parsed.
    pub binary: bool,
    /// Added or changed lines of the new version (empty for deletions).
    pub changed_lines: Vec<LineRange>,
    /// Lines added and removed.
    pub insertions: u32,
    pub deletions: u32,
}

/// Every file an attempt changed, in path order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSet {
    pub files: Vec<ChangedFile>,
}

impl ChangeSet {
    /// Compares the files of the working tree at `work_dir` as they are (staged or not,
    /// untracked ones included, ignored ones left out) with the commit `base` names (a
    /// sha, a branch, `HEAD~2`, …). What the index says does not matter: a file taken out
    /// of it but still in the tree is compared by its content.
    pub fn collect(work_dir: &Path, base: &str) -> Result<Self, ChangeSetError> {
        let repo = open(work_dir)?;
        let diff = diff_against(&repo, base, 0, work_dir)?;
        let failed = |source| ChangeSetError::Diff {
            path: work_dir.to_owned(),
            source,
        };
        let mut files: Vec<ChangedFile> = Vec::new();
        for (index, delta) in diff.deltas().enumerate() {
            let kind = match delta.status() {
                Delta::Added | Delta::Untracked | Delta::Copied => ChangeKind::Added,
                Delta::Deleted => ChangeKind::Deleted,
                Delta::Renamed => ChangeKind::Renamed,
                Delta::Modified | Delta::Typechange => ChangeKind::Modified,
                Delta::Unmodified | Delta::Ignored | Delta::Unreadable | Delta::Conflicted => {
                    continue;
                }
            };
            let new_path = delta.new_file().path().map(path_text);
            let old_path = delta.old_file().path().map(path_text);
            let path = match kind {
                ChangeKind::Deleted => old_path.clone(),
                _ => new_path,
            }
            .unwrap_or_default();
            let mut file = ChangedFile {
                path,
                old_path: (kind == ChangeKind::Renamed).then_some(old_path).flatten(),
                kind,
                binary: delta.flags().is_binary(),
                changed_lines: Vec::new(),
                insertions: 0,
                deletions: 0,
            };
            if let Some(patch) = git2::Patch::from_diff(&diff, index).map_err(failed)? {
                file.binary |= patch.delta().flags().is_binary();
                if !file.binary {
                    let (_, insertions, deletions) = patch.line_stats().map_err(failed)?;
                    file.insertions = u32::try_from(insertions).unwrap_or(u32::MAX);
                    file.deletions = u32::try_from(deletions).unwrap_or(u32::MAX);
                    for hunk in 0..patch.num_hunks() {
                        let (hunk, _) = patch.hunk(hunk).map_err(failed)?;
                        if hunk.new_lines() > 0 {
                            file.changed_lines.push(LineRange {
                                start: hunk.new_start(),
                                end: hunk.new_start() + hunk.new_lines() - 1,
                            });
                        }
                    }
                }
            }
            if file.binary {
                file.changed_lines.clear();
            }
            files.push(file);
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Self { files })
    }

    /// Paths of the files that exist after the change (everything but deletions).
    pub fn present_paths(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .filter(|file| file.kind != ChangeKind::Deleted)
            .map(|file| file.path.as_str())
    }
}

/// Every path `files` touch (new paths, deleted paths and rename sources) that no lock
/// in `locked_paths` covers, in order, each once.
pub fn paths_outside_locks<'f>(files: &'f [ChangedFile], locked_paths: &[String]) -> Vec<&'f str> {
    let locks: Vec<LockPath> = locked_paths
        .iter()
        .filter_map(|path| LockPath::parse(path).ok())
        .collect();
    let mut outside: Vec<&str> = Vec::new();
    for path in files
        .iter()
        .flat_map(|file| std::iter::once(file.path.as_str()).chain(file.old_path.as_deref()))
    {
        let covered = LockPath::parse(path)
            .is_ok_and(|changed| locks.iter().any(|lock| lock.overlaps(&changed)));
        if !covered && !outside.contains(&path) {
            outside.push(path);
        }
    }
    outside
}

/// The change as a unified diff (three lines of context, binary files named only), cut
/// at `max_bytes`; the flag tells whether it was cut.
pub fn patch_text(
    work_dir: &Path,
    base: &str,
    max_bytes: usize,
) -> Result<(String, bool), ChangeSetError> {
    let repo = open(work_dir)?;
    let diff = diff_against(&repo, base, 3, work_dir)?;
    let mut text = String::new();
    let mut cut = false;
    let printed = diff.print(git2::DiffFormat::Patch, |_, _, line| {
        let prefix = match line.origin() {
            origin @ ('+' | '-' | ' ') => Some(origin),
            _ => None,
        };
        let content = String::from_utf8_lossy(line.content());
        text.extend(prefix);
        let room = max_bytes.saturating_sub(text.len());
        if content.len() <= room {
            text.push_str(&content);
            return true;
        }
        let mut end = room;
        while !content.is_char_boundary(end) {
            end -= 1;
        }
        text.push_str(&content[..end]);
        cut = true;
        false
    });
    // Stopping early is how the cap ends the walk, not a failure.
    if !cut {
        printed.map_err(|source| ChangeSetError::Diff {
            path: work_dir.to_owned(),
            source,
        })?;
    }
    Ok((text, cut))
}

fn open(work_dir: &Path) -> Result<Repository, ChangeSetError> {
    Repository::open(work_dir).map_err(|source| ChangeSetError::NotARepository {
        path: work_dir.to_owned(),
        source,
    })
}

/// The working tree's files against the commit `base` names, renames found, with
/// `context` lines around each change.
fn diff_against<'r>(
    repo: &'r Repository,
    base: &str,
    context: u32,
    work_dir: &Path,
) -> Result<git2::Diff<'r>, ChangeSetError> {
    let base_tree = repo
        .revparse_single(base)
        .and_then(|object| object.peel_to_tree())
        .map_err(|source| ChangeSetError::UnknownBase {
            base: base.to_owned(),
            path: work_dir.to_owned(),
            source,
        })?;
    let failed = |source| ChangeSetError::Diff {
        path: work_dir.to_owned(),
        source,
    };
    let mut options = DiffOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .show_untracked_content(true)
        .context_lines(context);
    let mut diff = repo
        .diff_tree_to_workdir(Some(&base_tree), Some(&mut options))
        .map_err(failed)?;
    diff.find_similar(Some(
        DiffFindOptions::new()
            .renames(true)
            .for_untracked(true)
            .renames_from_rewrites(true),
    ))
    .map_err(failed)?;
    Ok(diff)
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use std::fs;

    use git2::{IndexAddOption, Signature};

    use super::*;

    /// A repository with a first commit of `files`, returning its directory.
    fn repository(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Repository) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        for (path, content) in files {
            let full = dir.path().join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, content).unwrap();
        }
        commit_all(&repo, "base");
        (dir, repo)
    }

    fn commit_all(repo: &Repository, message: &str) {
        let mut index = repo.index().unwrap();
        index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = Signature::now("test", "test@example.com").unwrap();
        let parents: Vec<_> = repo
            .head()
            .ok()
            .and_then(|head| head.peel_to_commit().ok())
            .into_iter()
            .collect();
        let parents: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(
            Some("HEAD"),
            &signature,
            &signature,
            message,
            &tree,
            &parents,
        )
        .unwrap();
    }

    fn file<'a>(set: &'a ChangeSet, path: &str) -> &'a ChangedFile {
        set.files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path} not in {set:#?}"))
    }

    #[test]
    fn committed_staged_unstaged_untracked_renamed_binary_and_deleted() {
        let long: String = (1..=40)
            .map(|i| format!("line {i} of the moved file\n"))
            .collect();
        let (dir, repo) = repository(&[
            ("src/lib.rs", b"fn a() {}\nfn b() {}\nfn c() {}\n"),
            ("src/old_name.rs", long.as_bytes()),
            ("docs/gone.md", b"bye\n"),
            ("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00binary"),
            (".gitignore", b"target/\n"),
        ]);
        let base = repo
            .head()
            .unwrap()
            .peel_to_commit()
            .unwrap()
            .id()
            .to_string();
        let root = dir.path();

        fs::write(root.join("src/committed.rs"), "pub fn committed() {}\n").unwrap();
        commit_all(&repo, "work");
        fs::write(
            root.join("src/lib.rs"),
            "fn a() {}\nfn b2() {}\nfn c() {}\nfn d() {}\n",
        )
        .unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("src/lib.rs")).unwrap();
        index.write().unwrap();
        fs::write(
            root.join("src/lib.rs"),
            "fn a() {}\nfn b2() {}\nfn c() {}\nfn d() {}\nfn e() {}\n",
        )
        .unwrap();
        fs::rename(root.join("src/old_name.rs"), root.join("src/new_name.rs")).unwrap();
        fs::remove_file(root.join("docs/gone.md")).unwrap();
        fs::write(
            root.join("logo.png"),
            b"\x89PNG\r\n\x1a\n\x00\x00\x00changed",
        )
        .unwrap();
        fs::write(root.join("notes.txt"), "untracked\n").unwrap();
        fs::create_dir_all(root.join("target")).unwrap();
        fs::write(root.join("target/ignored.o"), "ignored").unwrap();

        let set = ChangeSet::collect(root, &base).unwrap();
        let paths: Vec<&str> = set.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "docs/gone.md",
                "logo.png",
                "notes.txt",
                "src/committed.rs",
                "src/lib.rs",
                "src/new_name.rs"
            ]
        );
        let lib = file(&set, "src/lib.rs");
        assert_eq!(lib.kind, ChangeKind::Modified);
        assert_eq!(
            lib.changed_lines,
            [
                LineRange { start: 2, end: 2 },
                LineRange { start: 4, end: 5 }
            ],
            "staged and unstaged edits together"
        );
        assert_eq!((lib.insertions, lib.deletions), (3, 1));
        let renamed = file(&set, "src/new_name.rs");
        assert_eq!(renamed.kind, ChangeKind::Renamed);
        assert_eq!(renamed.old_path.as_deref(), Some("src/old_name.rs"));
        assert!(
            renamed.changed_lines.is_empty(),
            "a pure rename changes no line"
        );
        assert_eq!(file(&set, "docs/gone.md").kind, ChangeKind::Deleted);
        let logo = file(&set, "logo.png");
        assert!(logo.binary && logo.changed_lines.is_empty());
        let untracked = file(&set, "notes.txt");
        assert_eq!(untracked.kind, ChangeKind::Added);
        assert_eq!(untracked.changed_lines, [LineRange { start: 1, end: 1 }]);
        assert_eq!(file(&set, "src/committed.rs").kind, ChangeKind::Added);
        assert!(!set.present_paths().any(|p| p == "docs/gone.md"));
    }

    #[test]
    fn a_file_taken_out_of_the_index_is_judged_by_its_content() {
        let (dir, repo) = repository(&[("app/main.py", b"def main():\n    return 1\n")]);
        let mut index = repo.index().unwrap();
        index.remove_path(Path::new("app/main.py")).unwrap();
        index.write().unwrap();
        fs::write(dir.path().join("app/main.py"), "def main(:\n    return 1\n").unwrap();
        let set = ChangeSet::collect(dir.path(), "HEAD").unwrap();
        let main = file(&set, "app/main.py");
        assert_eq!(main.kind, ChangeKind::Modified);
        assert_eq!(main.changed_lines, [LineRange { start: 1, end: 1 }]);
    }

    #[test]
    fn bad_places_and_bases_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = ChangeSet::collect(dir.path(), "HEAD").unwrap_err();
        assert!(
            matches!(err, ChangeSetError::NotARepository { .. }),
            "{err}"
        );
        let (dir, _repo) = repository(&[("a.txt", b"a\n")]);
        let err = ChangeSet::collect(dir.path(), "no-such-branch").unwrap_err();
        assert!(err.to_string().contains("no-such-branch"), "{err}");
        let unchanged = ChangeSet::collect(dir.path(), "HEAD").unwrap();
        assert!(unchanged.files.is_empty());
    }
}
