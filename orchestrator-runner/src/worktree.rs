//! Isolated git worktrees, one per task, on branch `agent/<first 8 of the task id>` from
//! the repository's HEAD (more of the id when another task has that name), in a
//! directory the runner manages. A task's worktree is reused by its later attempts and
//! kept after it ends; only [`Worktrees::prune`] removes one, once its branch is merged
//! and nothing in it is uncommitted.
//!
//! Beside each worktree a record (`<name>.base`) keeps the commit its branch started
//! from and the task it belongs to. The record is written before the worktree is added,
//! so a runner that dies in between leaves something the next attempt repairs.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::{
    BranchType, IndexAddOption, Oid, Repository, Signature, StatusOptions, WorktreeAddOptions,
    WorktreeLockStatus, WorktreePruneOptions,
};
use orchestrator_core::ids::TaskId;
use orchestrator_core::model::ChangeReport;
use orchestrator_verify::{ChangeSetError, change_report};

/// Why a worktree could not be prepared, held or committed, or its change read.
#[derive(Debug, thiserror::Error)]
pub enum WorktreeError {
    /// A git operation failed.
    #[error("{action}: {source}")]
    Git { action: String, source: git2::Error },
    /// An attempt is at work in the worktree: another attempt of this runner, or a
    /// runner process that is still alive.
    #[error("{} is in use by {holder}", path.display())]
    Busy { path: PathBuf, holder: String },
    /// The change on a task's branch could not be read.
    #[error(transparent)]
    Change(#[from] ChangeSetError),
}

fn failed(action: impl Into<String>) -> impl FnOnce(git2::Error) -> WorktreeError {
    let action = action.into();
    move |source| WorktreeError::Git { action, source }
}

fn io_failed(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> WorktreeError {
    let action = action.into();
    move |err| WorktreeError::Git {
        action,
        source: git2::Error::from_str(&err.to_string()),
    }
}

/// How many characters of the task id (without its dashes) name a worktree: the first 8
/// when no other task has them, else more.
const NAME_LENGTHS: [usize; 4] = [8, 12, 16, 32];

/// What the runner knows of a task worktree, kept beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    /// The commit the task's branch started from.
    base: String,
    /// The task the worktree belongs to (absent in records of older runners, which named
    /// worktrees by the first 8 characters only).
    task: Option<TaskId>,
}

impl Record {
    fn read(path: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        let base = lines.next()?.trim().to_owned();
        let task = lines.next().and_then(|line| line.trim().parse().ok());
        (!base.is_empty()).then_some(Self { base, task })
    }

    fn write(&self, path: &Path) -> Result<(), WorktreeError> {
        let task = self.task.map(|t| t.to_string()).unwrap_or_default();
        std::fs::write(path, format!("{}\n{task}\n", self.base))
            .map_err(io_failed(format!("write {}", path.display())))
    }

    /// Whether the record is `task`'s (an older record only says so by its name).
    fn belongs_to(&self, task: TaskId, name: &str) -> bool {
        match self.task {
            Some(owner) => owner == task,
            None => name.len() == NAME_LENGTHS[0],
        }
    }
}

/// The worktree checked out at `path` whose git directory is `git_dir`, opened through
/// that directory: the `.git` link in the tree is not read.
fn open_checkout(git_dir: &Path, path: &Path) -> Result<Repository, WorktreeError> {
    Repository::open(git_dir)
        .and_then(|repo| repo.set_workdir(path, false).map(|()| repo))
        .map_err(failed(format!("open the worktree {}", path.display())))
}

/// The git directory of the worktree `names` in `repo`.
fn git_dir(repo: &Repository, names: &Names) -> PathBuf {
    repo.path().join("worktrees").join(&names.git_name)
}

/// The places of the worktree named `name` under `root`.
struct Names {
    name: String,
    path: PathBuf,
    branch: String,
    /// git's name for the worktree.
    git_name: String,
    record: PathBuf,
}

impl Names {
    fn new(root: &Path, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            path: root.join(name),
            branch: format!("agent/{name}"),
            git_name: format!("agent-{name}"),
            record: root.join(format!("{name}.base")),
        }
    }
}

/// A task's working tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub path: PathBuf,
    pub branch: String,
    /// The commit the task's branch started from: its change is everything since.
    pub base_commit: String,
    /// The worktree's own git directory in the repository (`.git/worktrees/<name>`), as
    /// the runner knows it: never read from the `.git` link in the tree, which an agent
    /// can rewrite.
    pub git_dir: PathBuf,
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
    /// A runner is at work in it (git's worktree lock naming a live runner process;
    /// a lock of a runner that died does not count).
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
    /// The task it belongs to, where its record says (records of older runners do not).
    pub task: Option<TaskId>,
}

/// The folder, under a directory of worktrees, for those of `repository` (canonical):
/// its name and a hash of its path, so that repositories of one name in different places
/// get folders of their own.
pub fn repository_folder(repository: &Path) -> String {
    let hash = orchestrator_core::fingerprint::fnv1a(repository.to_string_lossy().as_bytes());
    let name = repository
        .file_name()
        .map_or_else(|| "repository".into(), |n| n.to_string_lossy().into_owned());
    format!("{name}-{:08x}", hash as u32)
}

/// Makes and finds task worktrees of one repository.
#[derive(Debug, Clone)]
pub struct Worktrees {
    repository: PathBuf,
    root: PathBuf,
    /// libgit2 cannot add two worktrees to one repository at the same time.
    adding: Arc<Mutex<()>>,
    /// The worktrees (git's names) attempts of this process hold.
    held: Arc<Mutex<HashSet<String>>>,
}

impl Worktrees {
    /// Worktrees of the repository at `repository`, kept under `root`.
    pub fn new(repository: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        Self {
            repository: repository.into(),
            root: root.into(),
            adding: Arc::default(),
            held: Arc::default(),
        }
    }

    /// The repository the worktrees belong to.
    pub fn repository(&self) -> &Path {
        &self.repository
    }

    /// The short name of `task`'s worktree and branch when no other task has it.
    pub fn short_id(task: TaskId) -> String {
        task.to_string().chars().take(NAME_LENGTHS[0]).collect()
    }

    /// The name of `task`'s worktree: the shortest prefix of its id that is its own or
    /// still free (no record, and no branch of that name but one of the task's own).
    fn name_for(&self, repo: &Repository, task: TaskId) -> Result<Names, WorktreeError> {
        let id: String = task.to_string().chars().filter(|c| *c != '-').collect();
        for length in NAME_LENGTHS {
            let names = Names::new(&self.root, &id[..length.min(id.len())]);
            match Record::read(&names.record) {
                Some(record) if record.belongs_to(task, &names.name) => return Ok(names),
                Some(_) => continue,
                None => {}
            }
            let branch = repo.find_branch(&names.branch, BranchType::Local);
            let free = match branch.and_then(|b| b.get().peel_to_commit()) {
                Err(_) => true,
                // A branch left without a record may be taken when it holds no work of
                // its own, or when its commits say it is the task's (the runner's commit
                // messages name the task).
                Ok(tip) => {
                    let merged = repo
                        .head()
                        .and_then(|h| h.peel_to_commit())
                        .is_ok_and(|head| {
                            head.id() == tip.id()
                                || repo
                                    .graph_descendant_of(head.id(), tip.id())
                                    .unwrap_or(false)
                        });
                    merged || tip.message().is_some_and(|m| m.contains(&task.to_string()))
                }
            };
            if free {
                return Ok(names);
            }
        }
        Err(WorktreeError::Git {
            action: format!("name a worktree for task {task}"),
            source: git2::Error::from_str("every name it could take belongs to another task"),
        })
    }

    /// The task's worktree: created from HEAD on its first attempt, reused afterwards,
    /// and repaired when a runner died while creating it.
    pub fn prepare(&self, task: TaskId) -> Result<Workspace, WorktreeError> {
        // A poisoned lock only means another preparation panicked; the repository is
        // still consistent for git.
        let _adding = self
            .adding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let repo = self.open()?;
        let names = self.name_for(&repo, task)?;
        let checked_out = names.path.join(".git").exists();
        let record = Record::read(&names.record);
        if let Some(record) = &record
            && checked_out
        {
            return Ok(Workspace {
                git_dir: git_dir(&repo, &names),
                path: names.path,
                branch: names.branch,
                base_commit: record.base.clone(),
            });
        }
        std::fs::create_dir_all(&self.root)
            .map_err(io_failed(format!("create {}", self.root.display())))?;
        let head = repo
            .head()
            .and_then(|head| head.peel_to_commit())
            .map_err(failed(
                "find the repository's HEAD commit (is there a first commit?)",
            ))?;
        // The record goes first: whatever is made after it, a later attempt finds as
        // this task's.
        let existing = repo.find_branch(&names.branch, BranchType::Local).ok();
        let base = match &existing {
            Some(branch) => {
                let tip = branch
                    .get()
                    .peel_to_commit()
                    .map_err(failed(format!("read branch {}", names.branch)))?
                    .id();
                // The branch's own commits are the task's change: it started where it
                // meets HEAD.
                repo.merge_base(tip, head.id()).unwrap_or(tip)
            }
            None => head.id(),
        };
        let base_commit = record.map_or_else(|| base.to_string(), |r| r.base);
        Record {
            base: base_commit.clone(),
            task: Some(task),
        }
        .write(&names.record)?;
        let reference = match existing {
            Some(branch) => branch.into_reference(),
            None => repo
                .branch(&names.branch, &head, false)
                .map_err(failed(format!("create branch {}", names.branch)))?
                .into_reference(),
        };
        if !checked_out {
            // git may remember a worktree whose directory never got its checkout.
            if let Ok(stale) = repo.find_worktree(&names.git_name) {
                stale
                    .prune(Some(
                        WorktreePruneOptions::new()
                            .valid(true)
                            .locked(true)
                            .working_tree(true),
                    ))
                    .map_err(failed(format!(
                        "forget the broken {}",
                        names.path.display()
                    )))?;
            }
            if names.path.exists() {
                std::fs::remove_dir_all(&names.path)
                    .map_err(io_failed(format!("clear {}", names.path.display())))?;
            }
            repo.worktree(
                &names.git_name,
                &names.path,
                Some(WorktreeAddOptions::new().reference(Some(&reference))),
            )
            .map_err(failed(format!("add worktree {}", names.path.display())))?;
        }
        Ok(Workspace {
            git_dir: git_dir(&repo, &names),
            path: names.path,
            branch: names.branch,
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
            let Some(record) = Record::read(&self.root.join(format!("{short}.base"))) else {
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
            } else if held_by_a_live_runner(&locked) {
                WorktreeState::InUse
            } else {
                worktree_state(&repo, &path, &branch, &record.base, head)?
            };
            found.push(TaskWorktree {
                path,
                branch,
                state,
                task: record.task,
            });
        }
        found.sort_by(|a, b| a.branch.cmp(&b.branch));
        Ok(found)
    }

    /// Removes the merged task worktrees — the directory, git's record of it, the branch
    /// — and forgets those whose directory is gone (their branches stay); returns them.
    /// The others are kept, and so is any worktree a runner holds.
    pub fn prune(&self) -> Result<Vec<TaskWorktree>, WorktreeError> {
        self.prune_with(&HashSet::new())
    }

    /// [`prune`](Self::prune), and also the worktrees of the `finished` tasks (failed or
    /// cancelled ones, which nobody will merge): their directories go, and a branch that
    /// holds commits stays (the work can still be looked at). A worktree with uncommitted
    /// changes, or one a runner holds, is always kept.
    pub fn prune_with(
        &self,
        finished: &HashSet<TaskId>,
    ) -> Result<Vec<TaskWorktree>, WorktreeError> {
        let _adding = self
            .adding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let repo = self.open()?;
        let removable: Vec<TaskWorktree> = self
            .list()?
            .into_iter()
            .filter(|w| match w.state {
                WorktreeState::Merged | WorktreeState::Missing => true,
                WorktreeState::Unmerged { .. } | WorktreeState::NoCommits => {
                    w.task.is_some_and(|task| finished.contains(&task))
                }
                WorktreeState::Uncommitted | WorktreeState::InUse => false,
            })
            .collect();
        let mut pruned = Vec::new();
        for worktree in removable {
            let short = worktree.branch.trim_start_matches("agent/");
            let present = worktree.state != WorktreeState::Missing;
            // A branch whose commits are merged, or that has none, has nothing to keep.
            let drop_branch = matches!(
                worktree.state,
                WorktreeState::Merged | WorktreeState::NoCommits
            );
            let found = repo
                .find_worktree(&format!("agent-{short}"))
                .map_err(failed(format!(
                    "find git's record of {}",
                    worktree.path.display()
                )))?;
            if found
                .is_locked()
                .is_ok_and(|lock| held_by_a_live_runner(&lock))
            {
                continue; // a runner took it since it was listed
            }
            found
                .prune(Some(
                    WorktreePruneOptions::new()
                        .valid(present)
                        .working_tree(present),
                ))
                .map_err(failed(format!("remove {}", worktree.path.display())))?;
            if drop_branch {
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

    /// Marks `workspace` as in use (git's worktree lock, naming this process) until the
    /// guard is dropped, so that a prune leaves it alone and no other attempt works
    /// there meanwhile. Refused ([`WorktreeError::Busy`]) while another attempt of this
    /// runner holds it, or a runner process that is still alive; a lock left by a runner
    /// that died is taken over.
    pub fn hold(&self, workspace: &Workspace) -> Result<InUse, WorktreeError> {
        let name = format!("agent-{}", workspace.branch.trim_start_matches("agent/"));
        let busy = |holder: String| WorktreeError::Busy {
            path: workspace.path.clone(),
            holder,
        };
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.contains(&name) {
            return Err(busy("another attempt of this runner".into()));
        }
        let repo = self.open()?;
        let worktree = repo.find_worktree(&name).map_err(failed(format!(
            "find git's record of {}",
            workspace.path.display()
        )))?;
        if let Ok(WorktreeLockStatus::Locked(reason)) = worktree.is_locked() {
            let holder = reason.as_deref().and_then(holder_pid);
            if let Some(pid) = holder.filter(|pid| *pid != std::process::id() && alive(*pid)) {
                return Err(busy(format!("the runner process {pid}")));
            }
            worktree
                .unlock()
                .map_err(failed(format!("take over {}", workspace.path.display())))?;
        }
        if let Some((pid, command)) = processes_working_in(&workspace.path).into_iter().next() {
            return Err(busy(format!(
                "process {pid} ({command}), which still works in it (an agent left running by \
                 a runner that died, or a shell there); it is not reused while that process lives"
            )));
        }
        worktree
            .lock(Some(&format!(
                "{HOLDER_REASON} (pid {})",
                std::process::id()
            )))
            .map_err(failed(format!("lock {}", workspace.path.display())))?;
        held.insert(name.clone());
        Ok(InUse {
            repository: self.repository.clone(),
            name,
            held: self.held.clone(),
        })
    }

    fn open(&self) -> Result<Repository, WorktreeError> {
        Repository::open(&self.repository).map_err(failed(format!(
            "open the repository {}",
            self.repository.display()
        )))
    }

    /// Puts back the worktree's `.git` link to its own git directory if something in the
    /// tree (an agent) changed it, so that reading the change goes to the right
    /// repository; `true` when it had to.
    pub fn restore_git_link(&self, workspace: &Workspace) -> Result<bool, WorktreeError> {
        let link = workspace.path.join(".git");
        let expected = format!("gitdir: {}\n", workspace.git_dir.display());
        let meta = std::fs::symlink_metadata(&link);
        let points_home = |text: String| {
            text.trim()
                .strip_prefix("gitdir:")
                .is_some_and(|dir| Path::new(dir.trim()) == workspace.git_dir)
        };
        if meta.as_ref().is_ok_and(std::fs::Metadata::is_file)
            && std::fs::read_to_string(&link).is_ok_and(points_home)
        {
            return Ok(false);
        }
        match meta {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&link),
            Ok(_) => std::fs::remove_file(&link),
            Err(_) => Ok(()),
        }
        .map_err(io_failed(format!("remove the altered {}", link.display())))?;
        std::fs::write(&link, expected)
            .map_err(io_failed(format!("restore {}", link.display())))?;
        Ok(true)
    }

    /// Commits everything in the worktree (`.gitignore` honoured) on its branch; `None`
    /// when nothing changed since the branch's last commit. The repository is opened
    /// through the runner's record of the worktree's git directory, never through the
    /// `.git` link in the tree.
    pub fn commit(
        &self,
        workspace: &Workspace,
        message: &str,
    ) -> Result<Option<String>, WorktreeError> {
        let repo = open_checkout(&workspace.git_dir, &workspace.path)?;
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

    /// What the task's branch changed since its base, as far as it is committed (see
    /// [`Worktrees::commit`]): the files with their line counts and the patch, cut at
    /// `max_patch_bytes`.
    pub fn change_report(
        &self,
        workspace: &Workspace,
        max_patch_bytes: u32,
    ) -> Result<ChangeReport, WorktreeError> {
        let repo = open_checkout(&workspace.git_dir, &workspace.path)?;
        Ok(change_report(
            &repo,
            &workspace.base_commit,
            max_patch_bytes,
        )?)
    }
}

/// What a runner writes in git's lock of a worktree it works in, before its pid.
const HOLDER_REASON: &str = "an agent-orchestrator runner is working here";

/// The process named in a lock `reason` a runner wrote.
fn holder_pid(reason: &str) -> Option<u32> {
    reason
        .strip_prefix(HOLDER_REASON)?
        .trim()
        .strip_prefix("(pid ")?
        .strip_suffix(')')?
        .parse()
        .ok()
}

/// Whether `lock` is held by a runner process that is alive (or by someone else, who
/// wrote no pid: a lock taken by hand counts).
fn held_by_a_live_runner(lock: &WorktreeLockStatus) -> bool {
    match lock {
        WorktreeLockStatus::Unlocked => false,
        WorktreeLockStatus::Locked(reason) => {
            reason.as_deref().and_then(holder_pid).is_none_or(alive)
        }
    }
}

/// Processes other than this one whose working directory is `dir` or inside it, with
/// their command names: where `/proc` shows them (Linux), else none.
fn processes_working_in(dir: &Path) -> Vec<(u32, String)> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let own = std::process::id();
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
            (pid != own && cwd.starts_with(&dir)).then(|| {
                let command = std::fs::read_to_string(entry.path().join("comm"))
                    .map(|c| c.trim().to_owned())
                    .unwrap_or_default();
                (pid, command)
            })
        })
        .collect()
}

/// Whether process `pid` exists (one we may not signal exists too).
fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// A task worktree held by a runner; dropping it lets prunes and other attempts have it
/// again.
#[derive(Debug)]
pub struct InUse {
    repository: PathBuf,
    /// git's name for the worktree.
    name: String,
    held: Arc<Mutex<HashSet<String>>>,
}

impl Drop for InUse {
    fn drop(&mut self) {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.name);
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
    let git_dir = repo
        .path()
        .join("worktrees")
        .join(format!("agent-{}", branch.trim_start_matches("agent/")));
    let checkout = open_checkout(&git_dir, path)?;
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

    #[test]
    fn the_change_report_covers_the_branch_since_its_base_as_committed() {
        let repo = repository();
        let root = tempfile::tempdir().unwrap();
        let worktrees = Worktrees::new(repo.path(), root.path());
        let task = TaskId::new();
        let workspace = worktrees.prepare(task).unwrap();
        let empty = worktrees.change_report(&workspace, 1_024).unwrap();
        assert!(empty.files.is_empty() && empty.patch.is_empty() && !empty.truncated);

        std::fs::write(workspace.path.join("README.md"), "hello\nworld\n").unwrap();
        worktrees
            .commit(&workspace, "first attempt")
            .unwrap()
            .unwrap();
        // A later attempt on the same worktree: its report is the task's whole change.
        let again = worktrees.prepare(task).unwrap();
        std::fs::write(again.path.join("logo.png"), b"\x89PNG\r\n\x1a\n\x00binary").unwrap();
        std::fs::write(again.path.join("uncommitted.txt"), "not yet\n").unwrap();
        let listed = |report: &ChangeReport| -> Vec<(String, u32, bool)> {
            report
                .files
                .iter()
                .map(|f| (f.path.clone(), f.insertions, f.binary))
                .collect()
        };
        let report = worktrees.change_report(&again, 1_024).unwrap();
        assert_eq!(
            listed(&report),
            [("README.md".to_owned(), 1, false)],
            "only what is committed"
        );
        worktrees.commit(&again, "second attempt").unwrap().unwrap();
        let report = worktrees.change_report(&again, 1_024).unwrap();
        assert_eq!(
            listed(&report),
            [
                ("README.md".to_owned(), 1, false),
                ("logo.png".to_owned(), 0, true),
                ("uncommitted.txt".to_owned(), 1, false)
            ]
        );
        assert!(
            report
                .patch
                .starts_with("diff --git a/README.md b/README.md\n")
        );
        assert!(
            report.patch.contains(" hello\n+world\n"),
            "{}",
            report.patch
        );
        assert!(
            report
                .patch
                .contains("Binary files /dev/null and b/logo.png differ\n")
        );

        let cut = worktrees.change_report(&again, 120).unwrap();
        assert!(cut.truncated && cut.patch.len() <= 120 && cut.patch.ends_with('\n'));
        assert_eq!(cut.max_patch_bytes, 120);
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

    fn task(id: &str) -> TaskId {
        id.parse().unwrap()
    }

    #[test]
    fn tasks_sharing_their_first_characters_get_worktrees_of_their_own() {
        let repo = repository();
        let root = tempfile::tempdir().unwrap();
        let worktrees = Worktrees::new(repo.path(), root.path());
        let first = task("0badc0de-1111-4111-8111-111111111111");
        let second = task("0badc0de-2222-4222-8222-222222222222");
        let a = worktrees.prepare(first).unwrap();
        let b = worktrees.prepare(second).unwrap();
        assert_eq!(a.branch, "agent/0badc0de");
        assert_eq!(b.branch, "agent/0badc0de2222", "more of the id when taken");
        assert_ne!(a.path, b.path);
        work(&worktrees, &a, "a.txt");
        assert!(!b.path.join("a.txt").exists());
        // Each finds its own again.
        assert_eq!(worktrees.prepare(first).unwrap(), a);
        assert_eq!(worktrees.prepare(second).unwrap(), b);
        assert_eq!(worktrees.list().unwrap().len(), 2);
    }

    #[test]
    fn a_runner_that_died_while_creating_a_worktree_leaves_it_repairable() {
        let repo = repository();
        let root = tempfile::tempdir().unwrap();
        let worktrees = Worktrees::new(repo.path(), root.path());
        let id = TaskId::new();
        let workspace = worktrees.prepare(id).unwrap();
        std::fs::write(workspace.path.join("kept.txt"), "work\n").unwrap();
        let message = format!("work\n\nTask {id}, attempt 1.\n");
        let tip = worktrees.commit(&workspace, &message).unwrap().unwrap();
        let tip = Oid::from_str(&tip).unwrap();

        // Died after adding the worktree, before its record was written.
        let record = root
            .path()
            .join(format!("{}.base", Worktrees::short_id(id)));
        std::fs::remove_file(&record).unwrap();
        let again = worktrees.prepare(id).unwrap();
        assert_eq!(again, workspace, "the same worktree and base");

        // Died after writing the record, before the checkout was complete.
        std::fs::remove_dir_all(&workspace.path).unwrap();
        std::fs::create_dir_all(&workspace.path).unwrap();
        let repaired = worktrees.prepare(id).unwrap();
        assert_eq!(repaired, workspace);
        assert!(
            repaired.path.join("kept.txt").is_file(),
            "the branch's work is checked out again"
        );
        let main = Repository::open(repo.path()).unwrap();
        let branch = main
            .find_branch(&workspace.branch, BranchType::Local)
            .unwrap();
        assert_eq!(branch.get().peel_to_commit().unwrap().id(), tip);
        worktrees.hold(&repaired).unwrap();
    }

    #[test]
    fn a_rewritten_git_link_leads_no_commit_elsewhere() {
        let repo = repository();
        let elsewhere = repository();
        let root = tempfile::tempdir().unwrap();
        let worktrees = Worktrees::new(repo.path(), root.path());
        let workspace = worktrees.prepare(TaskId::new()).unwrap();
        let link = workspace.path.join(".git");
        let honest = std::fs::read_to_string(&link).unwrap();
        let other = Repository::open(elsewhere.path()).unwrap();
        let other_head = other.head().unwrap().target().unwrap();
        std::fs::write(&link, format!("gitdir: {}\n", other.path().display())).unwrap();
        std::fs::write(workspace.path.join("work.txt"), "work\n").unwrap();

        let sha = worktrees.commit(&workspace, "work").unwrap().unwrap();
        let main = Repository::open(repo.path()).unwrap();
        let branch = main
            .find_branch(&workspace.branch, BranchType::Local)
            .unwrap();
        assert_eq!(branch.get().target().unwrap().to_string(), sha);
        assert_eq!(
            other.head().unwrap().target().unwrap(),
            other_head,
            "untouched"
        );

        assert!(worktrees.restore_git_link(&workspace).unwrap());
        assert_eq!(
            std::fs::read_to_string(&link)
                .unwrap()
                .trim()
                .trim_end_matches('/'),
            honest.trim().trim_end_matches('/')
        );
        assert!(!worktrees.restore_git_link(&workspace).unwrap());
        // A directory put in its place goes too.
        std::fs::remove_file(&link).unwrap();
        std::fs::create_dir(&link).unwrap();
        assert!(worktrees.restore_git_link(&workspace).unwrap());
        let reopened = Repository::open(&workspace.path).unwrap();
        assert_eq!(reopened.head().unwrap().target().unwrap().to_string(), sha);
    }

    #[test]
    fn a_held_worktree_is_not_shared_with_another_attempt() {
        let repo = repository();
        let root = tempfile::tempdir().unwrap();
        let worktrees = Worktrees::new(repo.path(), root.path());
        let workspace = worktrees.prepare(TaskId::new()).unwrap();
        let held = worktrees.hold(&workspace).unwrap();
        let busy = worktrees.hold(&workspace).unwrap_err();
        assert!(matches!(busy, WorktreeError::Busy { .. }), "{busy}");
        assert!(
            busy.to_string().contains("another attempt of this runner"),
            "{busy}"
        );
        drop(held);
        drop(worktrees.hold(&workspace).unwrap());

        // Another runner process that is alive holds it; one that died does not.
        let main = Repository::open(repo.path()).unwrap();
        let name = format!("agent-{}", workspace.branch.trim_start_matches("agent/"));
        let lock_by = |pid: u32| {
            let worktree = main.find_worktree(&name).unwrap();
            let _ = worktree.unlock();
            worktree
                .lock(Some(&format!("{HOLDER_REASON} (pid {pid})")))
                .unwrap();
        };
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        lock_by(other.id());
        let busy = worktrees.hold(&workspace).unwrap_err();
        assert!(
            busy.to_string()
                .contains(&format!("process {}", other.id())),
            "{busy}"
        );
        assert_eq!(worktrees.list().unwrap()[0].state, WorktreeState::InUse);
        other.kill().unwrap();
        other.wait().unwrap();
        assert_eq!(worktrees.list().unwrap()[0].state, WorktreeState::NoCommits);
        drop(worktrees.hold(&workspace).unwrap());
    }

    #[test]
    fn a_worktree_a_process_still_works_in_is_not_handed_over() {
        let repo = repository();
        let root = tempfile::tempdir().unwrap();
        let worktrees = Worktrees::new(repo.path(), root.path());
        let workspace = worktrees.prepare(TaskId::new()).unwrap();
        std::fs::create_dir_all(workspace.path.join("src")).unwrap();
        // An agent left running by a runner that died, working in a subdirectory.
        let mut orphan = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(workspace.path.join("src"))
            .spawn()
            .unwrap();
        let busy = worktrees.hold(&workspace).unwrap_err();
        assert!(matches!(busy, WorktreeError::Busy { .. }), "{busy}");
        assert!(
            busy.to_string()
                .contains(&format!("process {} (sleep)", orphan.id())),
            "{busy}"
        );
        orphan.kill().unwrap();
        orphan.wait().unwrap();
        drop(worktrees.hold(&workspace).unwrap());
    }
}
