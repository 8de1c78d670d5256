//! The change an attempt made: every file that differs between the task's base commit and
//! the working tree — committed, staged, unstaged or untracked, `.gitignore` honoured —
//! with renames detected, binary files marked, and the line ranges that changed; and the
//! report of a committed change a runner sends with its completion ([`change_report`]).

use std::path::{Path, PathBuf};

use git2::{Delta, Diff, DiffFindOptions, DiffOptions, Repository};
use orchestrator_core::lock::LockPath;
use orchestrator_core::model::{ChangeReport, FileChange, FileChangeStatus, MAX_CHANGED_FILES};
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
        Self::of_diff(&diff).map_err(diff_failed(work_dir))
    }

    /// The files `diff` (taken without context lines) changes.
    fn of_diff(diff: &Diff<'_>) -> Result<Self, git2::Error> {
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
            if let Some(patch) = git2::Patch::from_diff(diff, index)? {
                file.binary |= patch.delta().flags().is_binary();
                if !file.binary {
                    let (_, insertions, deletions) = patch.line_stats()?;
                    file.insertions = u32::try_from(insertions).unwrap_or(u32::MAX);
                    file.deletions = u32::try_from(deletions).unwrap_or(u32::MAX);
                    for hunk in 0..patch.num_hunks() {
                        let (hunk, _) = patch.hunk(hunk)?;
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
/// at `max_bytes` (see [`print_patch`]); the flag tells whether it was cut.
pub fn patch_text(
    work_dir: &Path,
    base: &str,
    max_bytes: usize,
) -> Result<(String, bool), ChangeSetError> {
    let repo = open(work_dir)?;
    let diff = diff_against(&repo, base, 3, work_dir)?;
    print_patch(&diff, max_bytes).map_err(diff_failed(work_dir))
}

/// What the commits on `repo`'s HEAD changed since commit `base` (anything `git
/// rev-parse` takes), as a runner reports it: the files in path order with their line
/// counts (the first [`MAX_CHANGED_FILES`], the others counted), and the unified patch cut
/// at `max_patch_bytes` (see [`print_patch`]).
pub fn change_report(
    repo: &Repository,
    base: &str,
    max_patch_bytes: u32,
) -> Result<ChangeReport, ChangeSetError> {
    let place = repo.workdir().unwrap_or_else(|| repo.path());
    let set = ChangeSet::of_diff(&diff_head(repo, base, 0)?).map_err(diff_failed(place))?;
    let cap = usize::try_from(max_patch_bytes).unwrap_or(usize::MAX);
    let (patch, truncated) =
        print_patch(&diff_head(repo, base, 3)?, cap).map_err(diff_failed(place))?;
    let omitted_files = set.files.len().saturating_sub(MAX_CHANGED_FILES);
    let files = set
        .files
        .iter()
        .take(MAX_CHANGED_FILES)
        .map(|file| FileChange {
            path: file.path.clone(),
            old_path: file.old_path.clone(),
            status: match file.kind {
                ChangeKind::Added => FileChangeStatus::Added,
                ChangeKind::Modified => FileChangeStatus::Modified,
                ChangeKind::Deleted => FileChangeStatus::Deleted,
                ChangeKind::Renamed => FileChangeStatus::Renamed,
            },
            insertions: file.insertions,
            deletions: file.deletions,
            binary: file.binary,
        })
        .collect();
    Ok(ChangeReport {
        files,
        omitted_files: u32::try_from(omitted_files).unwrap_or(u32::MAX),
        patch,
        truncated,
        max_patch_bytes,
    })
}

/// `diff` as a unified patch in git's format, at most `max_bytes` long: it ends before
/// the first file header or line that would pass them, so it is always whole lines of
/// UTF-8 (bytes that are not are replaced, as are NUL characters); the flag tells whether
/// it was cut.
fn print_patch(diff: &Diff<'_>, max_bytes: usize) -> Result<(String, bool), git2::Error> {
    let mut text = String::new();
    let mut cut = false;
    let printed = diff.print(git2::DiffFormat::Patch, |_, _, line| {
        let prefix = match line.origin() {
            origin @ ('+' | '-' | ' ') => Some(origin),
            _ => None,
        };
        let content = String::from_utf8_lossy(line.content()).replace('\0', "\u{FFFD}");
        let length = prefix.map_or(0, char::len_utf8) + content.len();
        if text.len() + length > max_bytes {
            cut = true;
            return false;
        }
        text.extend(prefix);
        text.push_str(&content);
        true
    });
    // Stopping early is how the cap ends the walk, not a failure.
    if !cut {
        printed?;
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
) -> Result<Diff<'r>, ChangeSetError> {
    let base_tree = base_tree(repo, base, work_dir)?;
    let mut options = DiffOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .show_untracked_content(true)
        .context_lines(context);
    repo.diff_tree_to_workdir(Some(&base_tree), Some(&mut options))
        .and_then(found_renames)
        .map_err(diff_failed(work_dir))
}

/// The tree of `repo`'s HEAD against that of the commit `base` names, renames found, with
/// `context` lines around each change.
fn diff_head<'r>(
    repo: &'r Repository,
    base: &str,
    context: u32,
) -> Result<Diff<'r>, ChangeSetError> {
    let place = repo.workdir().unwrap_or_else(|| repo.path());
    let base_tree = base_tree(repo, base, place)?;
    repo.head()
        .and_then(|head| head.peel_to_tree())
        .and_then(|head_tree| {
            repo.diff_tree_to_tree(
                Some(&base_tree),
                Some(&head_tree),
                Some(DiffOptions::new().context_lines(context)),
            )
        })
        .and_then(found_renames)
        .map_err(diff_failed(place))
}

/// The tree of the commit `base` names in `repo` (at `place`).
fn base_tree<'r>(
    repo: &'r Repository,
    base: &str,
    place: &Path,
) -> Result<git2::Tree<'r>, ChangeSetError> {
    repo.revparse_single(base)
        .and_then(|object| object.peel_to_tree())
        .map_err(|source| ChangeSetError::UnknownBase {
            base: base.to_owned(),
            path: place.to_owned(),
            source,
        })
}

/// `diff` with deletions and additions of the same or similar content paired as renames.
fn found_renames(mut diff: Diff<'_>) -> Result<Diff<'_>, git2::Error> {
    diff.find_similar(Some(
        DiffFindOptions::new()
            .renames(true)
            .for_untracked(true)
            .renames_from_rewrites(true),
    ))?;
    Ok(diff)
}

/// A failed comparison of what is at `place` with its base.
fn diff_failed(place: &Path) -> impl Fn(git2::Error) -> ChangeSetError + '_ {
    move |source| ChangeSetError::Diff {
        path: place.to_owned(),
        source,
    }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

#[cfg(test)]
mod tests {
    use std::fs;

    use git2::{IndexAddOption, Signature};
    use orchestrator_core::model::MAX_PATCH_BYTES;

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

    /// A repository of a source file, a file to move, one to delete and a binary one,
    /// with the sha of its first commit.
    fn base_repository() -> (tempfile::TempDir, Repository, String) {
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
        (dir, repo, base)
    }

    /// Moves, deletes and changes the binary file of [`base_repository`] in `root`.
    fn move_delete_and_change_the_binary(root: &Path) {
        fs::rename(root.join("src/old_name.rs"), root.join("src/new_name.rs")).unwrap();
        fs::remove_file(root.join("docs/gone.md")).unwrap();
        fs::write(
            root.join("logo.png"),
            b"\x89PNG\r\n\x1a\n\x00\x00\x00changed",
        )
        .unwrap();
    }

    #[test]
    fn committed_staged_unstaged_untracked_renamed_binary_and_deleted() {
        let (dir, repo, base) = base_repository();
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
        move_delete_and_change_the_binary(root);
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

    /// [`base_repository`] whose HEAD commit, after the base, adds, modifies, renames and
    /// deletes text files and changes the binary one; with the base's sha.
    fn committed_change() -> (tempfile::TempDir, Repository, String) {
        let (dir, repo, base) = base_repository();
        let root = dir.path();
        fs::write(
            root.join("src/lib.rs"),
            "fn a() {}\nfn b2() {}\nfn c() {}\nfn ü() {}\n",
        )
        .unwrap();
        move_delete_and_change_the_binary(root);
        fs::write(root.join("notes.txt"), "ünïcødé 🦀\n").unwrap();
        commit_all(&repo, "work");
        (dir, repo, base)
    }

    fn reported<'a>(report: &'a ChangeReport, path: &str) -> &'a FileChange {
        report
            .files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path} not in {:#?}", report.files))
    }

    #[test]
    fn a_commit_is_reported_with_its_files_stats_and_patch() {
        let (_dir, repo, base) = committed_change();
        let report = change_report(&repo, &base, 256 * 1024).unwrap();
        let paths: Vec<&str> = report.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "docs/gone.md",
                "logo.png",
                "notes.txt",
                "src/lib.rs",
                "src/new_name.rs"
            ]
        );
        let lib = reported(&report, "src/lib.rs");
        assert_eq!(lib.status, FileChangeStatus::Modified);
        assert_eq!((lib.insertions, lib.deletions, lib.binary), (2, 1, false));
        let renamed = reported(&report, "src/new_name.rs");
        assert_eq!(renamed.status, FileChangeStatus::Renamed);
        assert_eq!(renamed.old_path.as_deref(), Some("src/old_name.rs"));
        let gone = reported(&report, "docs/gone.md");
        assert_eq!(
            (gone.status, gone.deletions),
            (FileChangeStatus::Deleted, 1)
        );
        let logo = reported(&report, "logo.png");
        assert_eq!(logo.status, FileChangeStatus::Modified);
        assert!(logo.binary && logo.insertions == 0 && logo.deletions == 0);
        assert_eq!(
            reported(&report, "notes.txt").status,
            FileChangeStatus::Added
        );
        assert_eq!(report.omitted_files, 0);
        assert!(!report.truncated);
        assert_eq!(report.max_patch_bytes, 256 * 1024);

        let patch = &report.patch;
        assert!(
            patch.starts_with("diff --git a/docs/gone.md b/docs/gone.md\n"),
            "{patch}"
        );
        for expected in [
            "diff --git a/src/lib.rs b/src/lib.rs\n",
            "--- a/src/lib.rs\n+++ b/src/lib.rs\n",
            "@@ -1,3 +1,4 @@\n fn a() {}\n-fn b() {}\n+fn b2() {}\n fn c() {}\n+fn ü() {}\n",
            "diff --git a/src/old_name.rs b/src/new_name.rs\n",
            "rename from src/old_name.rs\nrename to src/new_name.rs\n",
            "Binary files a/logo.png and b/logo.png differ\n",
            "+++ b/notes.txt\n@@ -0,0 +1 @@\n+ünïcødé 🦀\n",
        ] {
            assert!(patch.contains(expected), "{expected:?} not in:\n{patch}");
        }
        assert!(!patch.contains("PNG"), "binary content is not shown");
    }

    #[test]
    fn a_patch_over_its_cap_ends_after_the_last_whole_line_that_fits() {
        let (_dir, repo, base) = committed_change();
        let whole = change_report(&repo, &base, MAX_PATCH_BYTES).unwrap().patch;
        let line_ends: Vec<usize> = whole.match_indices('\n').map(|(at, _)| at + 1).collect();
        // Every cap from one byte below a line's end (inside `ü` and `🦀` too) to the end.
        for cap in 1..whole.len() {
            let report = change_report(&repo, &base, u32::try_from(cap).unwrap()).unwrap();
            assert!(report.truncated, "cut at {cap}");
            assert!(report.patch.len() <= cap);
            assert!(whole.starts_with(&report.patch), "a beginning of the patch");
            assert!(
                report.patch.is_empty() || report.patch.ends_with('\n'),
                "whole lines at {cap}: {:?}",
                report.patch
            );
            let fits = line_ends.iter().filter(|end| **end <= cap).max();
            assert!(
                report.patch.len() <= fits.copied().unwrap_or(0),
                "nothing past the last line end within the cap"
            );
            assert_eq!(report.files.len(), 5, "the files are all listed");
        }
        let exact = change_report(&repo, &base, u32::try_from(whole.len()).unwrap()).unwrap();
        assert!(!exact.truncated && exact.patch == whole);
        // A file header is whole or absent: the cap one byte into the second file.
        let second = whole.find("diff --git a/logo.png").unwrap();
        let cut = change_report(&repo, &base, u32::try_from(second + 1).unwrap()).unwrap();
        assert_eq!(cut.patch, whole[..second]);
    }

    #[test]
    fn files_past_the_limit_are_counted_and_nul_characters_never_reach_the_patch() {
        let (dir, repo) = repository(&[("README.md", b"hello\n")]);
        let base = repo
            .head()
            .unwrap()
            .peel_to_commit()
            .unwrap()
            .id()
            .to_string();
        for index in 0..=MAX_CHANGED_FILES {
            fs::write(dir.path().join(format!("f{index:05}.txt")), "x\n").unwrap();
        }
        // Past the bytes git looks at for NULs, the file still counts as text.
        let mut late_nul = "text\n".repeat(2_000).into_bytes();
        late_nul.extend_from_slice(b"a\x00b\n");
        fs::write(dir.path().join("late_nul.txt"), late_nul).unwrap();
        commit_all(&repo, "many");
        let report = change_report(&repo, &base, MAX_PATCH_BYTES).unwrap();
        assert_eq!(report.files.len(), MAX_CHANGED_FILES);
        assert_eq!(report.omitted_files, 2);
        assert_eq!(report.files[0].path, "f00000.txt");
        assert!(
            report.patch.contains("+a\u{FFFD}b\n"),
            "{}",
            &report.patch[report.patch.len() - 200..]
        );
        assert!(!report.patch.contains('\0'));
        report.validate().unwrap();
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
