//! Isolated git worktrees, one per task, on branch `agent/<first 8 of the task id>` from
//! the repository's HEAD, in a directory the runner manages. A task's worktree is reused
//! by its later attempts and kept after it ends; only [`Worktrees::prune`] removes one,
//! once its branch is merged and nothing in it is uncommitted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::{
    BranchType, IndexAddOption, Oid, Repository, Signature, StatusOptions, WorktreeAddOptions,
    WorktreeLockStatus, WorktreePruneOptions,
};
use orchestrator_core::ids::TaskId;

/// Why a worktree could not be prepared or committed.
#[derive(Debug, thiserror::Error)]
#[error("{action}: {source}")]
pub struct WorktreeError {
    pub action: String,
    pub source: git2::Error,
}

fn failed(action: impl Into<String>) -> impl FnOnce(git2::Error) -> WorktreeError {
    let action = action.into();
    move |source| WorktreeError { action, source }
}

/// A task's working tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub path: PathBuf,
    pub branch: String,
    /// The commit the task's branch started from: its change is everything since.
    pub base_commit: String,
}

/// Where a task worktree stands, as far as removing it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorktreeState {
    /// Its branch's commits are all in the repository's HEAD and nothing is uncommitted:
    /// it can go.
    Merged,
    /// Its branch has `ahead` commits that the repository's HEAD does not.
    Unmerged { ahead: usize },
    /// Files changed since the branch's last commit (an agent may be at work in it).
    Uncommitted,
    /// Nothing committed on its branch yet (a task still running, or one that changed
    /// nothing).
    NoCommits,
    /// A runner is at work in it (git's worktree lock; a runner that died leaves it:
    /// `git worktree unlock <path>` once no runner works there).
    InUse,
    /// Its directory is gone; pruning forgets it and keeps the branch.
    Missing,
}

impl std::fmt::Display for WorktreeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Merged => f.write_str("merged"),
            Self::Unmerged { ahead } => write!(f, "{ahead} commit(s) not merged"),
            Self::Uncommitted => f.write_str("uncommitted changes"),
            Self::NoCommits => f.write_str("no commits yet"),
            Self::InUse => f.write_str("in use by a runner"),
            Self::Missing => f.write_str("directory missing"),
        }
    }
}

/// A task worktree found under the runner's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskWorktree {
    pub path: PathBuf,
    pub branch: String,
    pub state: WorktreeState,
}

/// Makes and finds task worktrees of one repository.
#[derive(Debug, Clone)]
pub struct Worktrees {
    repository: PathBuf,
    root: PathBuf,
    /// libgit2 cannot add two worktrees to one repository at the same time.
    adding: Arc<Mutex<()>>,
}

impl Worktrees {
    /// Worktrees of the repository at `repository`, kept under `root`.
    pub fn new(repository: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        Self {
            repository: repository.into(),
            root: root.into(),
            adding: Arc::default(),
        }
    }

    /// The repository the worktrees belong to.
    pub fn repository(&self) -> &Path {
        &self.repository
    }

    /// The short name of `task`'s worktree and branch.
    pub fn short_id(task: TaskId) -> String {
        task.to_string().chars().take(8).collect()
    }

    /// The task's worktree: created from HEAD on its first attempt, reused afterwards.
    pub fn prepare(&self, task: TaskId) -> Result<Workspace, WorktreeError> {
        // A poisoned lock only means another preparation panicked; the repository is
        // still consistent for git.
        let _adding = self
            .adding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let short = Self::short_id(task);
        let branch = format!("agent/{short}");
        let name = format!("agent-{short}");
        let path = self.root.join(&short);
        let base_file = self.root.join(format!("{short}.base"));
        let repo = self.open()?;
        if path.join(".git").exists()
            && let Ok(base_commit) = std::fs::read_to_string(&base_file)
        {
            return Ok(Workspace {
                path,
                branch,
                base_commit: base_commit.trim().to_owned(),
            });
        }
        std::fs::create_dir_all(&self.root).map_err(|err| WorktreeError {
            action: format!("create {}", self.root.display()),
            source: git2::Error::from_str(&err.to_string()),
        })?;
        let head = repo
            .head()
            .and_then(|head| head.peel_to_commit())
            .map_err(failed(
                "find the repository's HEAD commit (is there a first commit?)",
            ))?;
        let reference = match repo.find_branch(&branch, BranchType::Local) {
            Ok(existing) => existing.into_reference(),
            Err(_) => repo
                .branch(&branch, &head, false)
                .map_err(failed(format!("create branch {branch}")))?
                .into_reference(),
        };
        let base_commit = reference
            .peel_to_commit()
            .map_err(failed(format!("read branch {branch}")))?
            .id()
            .to_string();
        repo.worktree(
            &name,
            &path,
            Some(WorktreeAddOptions::new().reference(Some(&reference))),
        )
        .map_err(failed(format!("add worktree {}", path.display())))?;
        std::fs::write(&base_file, &base_commit).map_err(|err| WorktreeError {
            action: format!("write {}", base_file.display()),
            source: git2::Error::from_str(&err.to_string()),
        })?;
        Ok(Workspace {
            path,
            branch,
            base_commit,
        })
    }

    /// The task worktrees of the repository under the runner's directory, with their
    /// states, by branch name.
    pub fn list(&self) -> Result<Vec<TaskWorktree>, WorktreeError> {
        let repo = self.open()?;
        let head = repo
            .head()
            .and_then(|head| head.peel_to_commit())
            .map_err(failed("find the repository's HEAD commit"))?
            .id();
        let names = repo
            .worktrees()
            .map_err(failed("list the repository's worktrees"))?;
        let mut found = Vec::new();
        for name in names.iter().flatten() {
            let Some(short) = name.strip_prefix("agent-") else {
                continue;
            };
            let base_file = self.root.join(format!("{short}.base"));
            let Ok(base) = std::fs::read_to_string(&base_file) else {
                continue; // not one of this directory's task worktrees
            };
            let branch = format!("agent/{short}");
            let path = self.root.join(short);
            let locked = repo
                .find_worktree(name)
                .and_then(|w| w.is_locked())
                .map_err(failed(format!("read git's record of {}", path.display())))?;
            let state = if !path.join(".git").exists() {
                WorktreeState::Missing
            } else if matches!(locked, WorktreeLockStatus::Locked(_)) {
                WorktreeState::InUse
            } else {
                worktree_state(&repo, &path, &branch, base.trim(), head)?
            };
            found.push(TaskWorktree {
                path,
                branch,
                state,
            });
        }
        found.sort_by(|a, b| a.branch.cmp(&b.branch));
        Ok(found)
    }

    /// Removes the merged task worktrees — the directory, git's record of it, the branch
    /// — and forgets those whose directory is gone (their branches stay); returns them.
    /// The others are kept, and so is any worktree a runner holds.
    pub fn prune(&self) -> Result<Vec<TaskWorktree>, WorktreeError> {
        let _adding = self
            .adding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let repo = self.open()?;
        let removable: Vec<TaskWorktree> = self
            .list()?
            .into_iter()
            .filter(|w| matches!(w.state, WorktreeState::Merged | WorktreeState::Missing))
            .collect();
        let mut pruned = Vec::new();
        for worktree in removable {
            let short = worktree.branch.trim_start_matches("agent/");
            let merged = worktree.state == WorktreeState::Merged;
            let found = repo
                .find_worktree(&format!("agent-{short}"))
                .map_err(failed(format!(
                    "find git's record of {}",
                    worktree.path.display()
                )))?;
            if matches!(found.is_locked(), Ok(WorktreeLockStatus::Locked(_))) {
                continue; // a runner took it since it was listed
            }
            found
                .prune(Some(
                    WorktreePruneOptions::new()
                        .valid(merged)
                        .working_tree(merged),
                ))
                .map_err(failed(format!("remove {}", worktree.path.display())))?;
            if merged {
                repo.find_branch(&worktree.branch, BranchType::Local)
                    .and_then(|mut branch| branch.delete())
                    .map_err(failed(format!("delete branch {}", worktree.branch)))?;
            }
            // The base commit's note goes with its worktree; a leftover file is harmless.
            let _ = std::fs::remove_file(self.root.join(format!("{short}.base")));
            pruned.push(worktree);
        }
        Ok(pruned)
    }

    /// Marks `workspace` as in use (git's worktree lock) until the guard is dropped, so
    /// that a prune leaves it alone. A lock left by a runner that died is taken over: the
    /// task's claim, not the lock, decides who works there.
    pub fn hold(&self, workspace: &Workspace) -> Result<InUse, WorktreeError> {
        let repo = self.open()?;
        let name = format!("agent-{}", workspace.branch.trim_start_matches("agent/"));
        let worktree = repo.find_worktree(&name).map_err(failed(format!(
            "find git's record of {}",
            workspace.path.display()
        )))?;
        if let Ok(WorktreeLockStatus::Locked(_)) = worktree.is_locked() {
            worktree
                .unlock()
                .map_err(failed(format!("take over {}", workspace.path.display())))?;
        }
        worktree
            .lock(Some("an agent-orchestrator runner is working here"))
            .map_err(failed(format!("lock {}", workspace.path.display())))?;
        Ok(InUse {
            repository: self.repository.clone(),
            name,
        })
    }

    fn open(&self) -> Result<Repository, WorktreeError> {
        Repository::open(&self.repository).map_err(failed(format!(
            "open the repository {}",
            self.repository.display()
        )))
    }

    /// Commits everything in the worktree (`.gitignore` honoured) on its branch; `None`
    /// when nothing changed since the branch's last commit.
    pub fn commit(
        &self,
        workspace: &Workspace,
        message: &str,
    ) -> Result<Option<String>, WorktreeError> {
        let repo = Repository::open(&workspace.path).map_err(failed(format!(
            "open the worktree {}",
            workspace.path.display()
        )))?;
        let mut index = repo.index().map_err(failed("read the worktree's index"))?;
        index
            .add_all(["*"], IndexAddOption::DEFAULT, None)
            .and_then(|()| index.update_all(["*"], None))
            .and_then(|()| index.write())
            .map_err(failed("stage the worktree's changes"))?;
        let tree_id = index.write_tree().map_err(failed("write the tree"))?;
        let parent = repo
            .head()
            .and_then(|head| head.peel_to_commit())
            .map_err(failed("find the branch's last commit"))?;
        if parent.tree_id() == tree_id {
            return Ok(None);
        }
        let tree = repo.find_tree(tree_id).map_err(failed("read the tree"))?;
        let signature = repo
            .signature()
            .or_else(|_| Signature::now("agent-orchestrator", "agent-orchestrator@localhost"))
            .map_err(failed("make a commit signature"))?;
        let commit = repo
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                message,
                &tree,
                &[&parent],
            )
            .map_err(failed(format!("commit on {}", workspace.branch)))?;
        Ok(Some(commit.to_string()))
    }
}

/// A task worktree held by a runner; dropping it lets prunes have it again.
#[derive(Debug)]
pub struct InUse {
    repository: PathBuf,
    /// git's name for the worktree.
    name: String,
}

impl Drop for InUse {
    fn drop(&mut self) {
        // Gone or unlocked by hand already: nothing left to do.
        let _ = Repository::open(&self.repository)
            .and_then(|repo| repo.find_worktree(&self.name))
            .and_then(|worktree| worktree.unlock());
    }
}

/// Where the worktree at `path` on `branch` (started at `base`) stands against `head`.
fn worktree_state(
    repo: &Repository,
    path: &Path,
    branch: &str,
    base: &str,
    head: Oid,
) -> Result<WorktreeState, WorktreeError> {
    let checkout =
        Repository::open(path).map_err(failed(format!("open the worktree {}", path.display())))?;
    let statuses = checkout
        .statuses(Some(
            StatusOptions::new()
                .include_untracked(true)
                .include_ignored(false),
        ))
        .map_err(failed(format!("read the changes in {}", path.display())))?;
    if !statuses.is_empty() {
        return Ok(WorktreeState::Uncommitted);
    }
    let tip = repo
        .find_branch(branch, BranchType::Local)
        .and_then(|b| b.into_reference().peel_to_commit())
        .map_err(failed(format!("read branch {branch}")))?
        .id();
    if tip.to_string() == base {
        return Ok(WorktreeState::NoCommits);
    }
    let (ahead, _) = repo
        .graph_ahead_behind(tip, head)
        .map_err(failed(format!("compare {branch} with HEAD")))?;
    Ok(if ahead == 0 {
        WorktreeState::Merged
    } else {
        WorktreeState::Unmerged { ahead }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        std::fs::write(dir.path().join("README.md"), "hello\n").unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("README.md")).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = Signature::now("t", "t@example.com").unwrap();
        repo.commit(Some("HEAD"), &signature, &signature, "first", &tree, &[])
            .unwrap();
        dir
    }

    #[test]
    fn a_task_gets_its_own_branch_and_worktree_that_later_attempts_reuse() {
        let repo = repository();
        let root = tempfile::tempdir().unwrap();
        let worktrees = Worktrees::new(repo.path(), root.path());
        let task = TaskId::new();
        let workspace = worktrees.prepare(task).unwrap();
        let short = Worktrees::short_id(task);
        assert_eq!(workspace.branch, format!("agent/{short}"));
        assert!(workspace.path.join("README.md").is_file());

        assert_eq!(worktrees.commit(&workspace, "nothing").unwrap(), None);
        std::fs::write(workspace.path.join("new.txt"), "work\n").unwrap();
        let sha = worktrees.commit(&workspace, "Task work").unwrap().unwrap();
        let main = Repository::open(repo.path()).unwrap();
        let branch = main
            .find_branch(&workspace.branch, BranchType::Local)
            .unwrap();
        assert_eq!(branch.get().peel_to_commit().unwrap().id().to_string(), sha);
        // The repository's own checkout is untouched.
        assert!(!repo.path().join("new.txt").exists());

        let again = worktrees.prepare(task).unwrap();
        assert_eq!(again, workspace);
        assert!(again.path.join("new.txt").is_file());
    }

    /// Commits a file in `workspace` and returns the new tip.
    fn work(worktrees: &Worktrees, workspace: &Workspace, file: &str) -> Oid {
        std::fs::write(workspace.path.join(file), "work\n").unwrap();
        let sha = worktrees.commit(workspace, file).unwrap().unwrap();
        Oid::from_str(&sha).unwrap()
    }

    #[test]
    fn only_merged_clean_worktrees_are_pruned() {
        let repo = repository();
        let root = tempfile::tempdir().unwrap();
        let worktrees = Worktrees::new(repo.path(), root.path());
        let [merged, unmerged, dirty, fresh] = [(); 4].map(|()| {
            let workspace = worktrees.prepare(TaskId::new()).unwrap();
            (workspace.branch.clone(), workspace)
        });
        let merged_tip = work(&worktrees, &merged.1, "merged.txt");
        work(&worktrees, &unmerged.1, "unmerged.txt");
        let dirty_tip = work(&worktrees, &dirty.1, "dirty.txt");
        std::fs::write(dirty.1.path.join("more.txt"), "not committed\n").unwrap();
        // The repository's branch takes the first branch (a fast-forward), then merges
        // the dirty one.
        let main = Repository::open(repo.path()).unwrap();
        main.head()
            .unwrap()
            .set_target(merged_tip, "merge")
            .unwrap();
        let dirty_commit = main.find_commit(dirty_tip).unwrap();
        let merged_commit = main.find_commit(merged_tip).unwrap();
        let signature = Signature::now("t", "t@example.com").unwrap();
        main.commit(
            Some("HEAD"),
            &signature,
            &signature,
            "merge dirty",
            &merged_commit.tree().unwrap(),
            &[&merged_commit, &dirty_commit],
        )
        .unwrap();

        let states: Vec<(String, WorktreeState)> = worktrees
            .list()
            .unwrap()
            .into_iter()
            .map(|w| (w.branch, w.state))
            .collect();
        let state_of = |branch: &str| states.iter().find(|(b, _)| b == branch).unwrap().1;
        assert_eq!(states.len(), 4);
        assert_eq!(state_of(&merged.0), WorktreeState::Merged);
        assert_eq!(state_of(&unmerged.0), WorktreeState::Unmerged { ahead: 1 });
        assert_eq!(state_of(&dirty.0), WorktreeState::Uncommitted);
        assert_eq!(state_of(&fresh.0), WorktreeState::NoCommits);

        // A runner at work in a merged worktree keeps it.
        let in_use = worktrees.hold(&merged.1).unwrap();
        assert_eq!(
            worktrees.list().unwrap()[..]
                .iter()
                .find(|w| w.branch == merged.0)
                .unwrap()
                .state,
            WorktreeState::InUse
        );
        assert!(worktrees.prune().unwrap().is_empty());
        assert!(merged.1.path.join("merged.txt").is_file());
        drop(in_use);

        let pruned = worktrees.prune().unwrap();
        assert_eq!(pruned.len(), 1);
        assert_eq!(pruned[0].branch, merged.0);
        assert!(!merged.1.path.exists(), "the merged worktree is gone");
        assert!(main.find_branch(&merged.0, BranchType::Local).is_err());
        for kept in [&unmerged.1, &dirty.1, &fresh.1] {
            assert!(kept.path.join("README.md").is_file());
        }
        assert!(dirty.1.path.join("more.txt").is_file());
        assert_eq!(worktrees.list().unwrap().len(), 3);
        assert!(worktrees.prune().unwrap().is_empty());

        // A directory removed by hand is forgotten; its branch stays.
        std::fs::remove_dir_all(&unmerged.1.path).unwrap();
        let missing = worktrees.prune().unwrap();
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].state, WorktreeState::Missing);
        assert!(main.find_branch(&unmerged.0, BranchType::Local).is_ok());
        assert_eq!(worktrees.list().unwrap().len(), 2);
    }
}
