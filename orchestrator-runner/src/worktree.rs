//! Isolated git worktrees, one per task, on branch `agent/<first 8 of the task id>` from
//! the repository's HEAD, in a directory the runner manages. A task's worktree is reused
//! by its later attempts and kept after it ends; the runner never deletes one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::{IndexAddOption, Repository, Signature, WorktreeAddOptions};
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
        let repo = Repository::open(&self.repository).map_err(failed(format!(
            "open the repository {}",
            self.repository.display()
        )))?;
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
        let reference = match repo.find_branch(&branch, git2::BranchType::Local) {
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
            .find_branch(&workspace.branch, git2::BranchType::Local)
            .unwrap();
        assert_eq!(branch.get().peel_to_commit().unwrap().id().to_string(), sha);
        // The repository's own checkout is untouched.
        assert!(!repo.path().join("new.txt").exists());

        let again = worktrees.prepare(task).unwrap();
        assert_eq!(again, workspace);
        assert!(again.path.join("new.txt").is_file());
    }
}
