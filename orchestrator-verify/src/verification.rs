//! [`Verification`]: how a change in a working tree is judged, from its change set to
//! its result. The runner verifies every attempt through it, the server's `/api/verify`
//! verifies a directory through it, and embedders add their own [`Verifier`]s to it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orchestrator_core::model::NewVerificationResult;
use orchestrator_core::verify::{StageReport, VerificationInput, Verifier};

use crate::changes::{ChangeSet, ChangeSetError};
use crate::config::ConfigError;
use crate::pipeline::Pipeline;

/// Which checks judge a change: the project's own (syntax, the diff policy and the type,
/// lint and test commands detected in the tree, as its `orchestrator.toml` at the base
/// commit adjusts them), then any extra verifiers in the order they were added.
#[derive(Debug, Clone)]
pub struct Verification {
    project_checks: bool,
    extra: Vec<Arc<dyn Verifier>>,
}

impl Default for Verification {
    fn default() -> Self {
        Self {
            project_checks: true,
            extra: Vec::new(),
        }
    }
}

/// Why a change could not be prepared for its checks.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The change itself could not be read (an unknown base, a failed diff).
    #[error("the change could not be read: {0}")]
    Change(ChangeSetError),
    /// The project's `orchestrator.toml` is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Verification {
    /// The project's checks.
    pub fn new() -> Self {
        Self::default()
    }

    /// No project checks: only the verifiers added with [`with`](Self::with).
    pub fn only() -> Self {
        Self {
            project_checks: false,
            extra: Vec::new(),
        }
    }

    /// Adds `verifier` after the checks already there.
    pub fn with(self, verifier: impl Verifier) -> Self {
        self.with_shared(Arc::new(verifier))
    }

    /// Adds a shared `verifier` after the checks already there.
    pub fn with_shared(mut self, verifier: Arc<dyn Verifier>) -> Self {
        self.extra.push(verifier);
        self
    }

    /// Reads the change in `work_dir` since the commit `base` names and builds the
    /// pipeline that judges it. Outside a git repository there is no change set, and the
    /// tree's own `orchestrator.toml` is read. Blocking: it reads git and the tree.
    pub fn prepare(&self, work_dir: &Path, base: &str) -> Result<PreparedChange, PrepareError> {
        let changes = match ChangeSet::collect(work_dir, base) {
            Ok(changes) => Some(changes),
            Err(ChangeSetError::NotARepository { .. }) => None,
            Err(err) => return Err(PrepareError::Change(err)),
        };
        let base = changes.as_ref().map(|_| base.to_owned());
        let mut pipeline = if self.project_checks {
            Pipeline::for_project(work_dir, base.as_deref())?
        } else {
            Pipeline::new()
        };
        for verifier in &self.extra {
            pipeline = pipeline.with_shared(verifier.clone());
        }
        Ok(PreparedChange {
            work_dir: work_dir.to_owned(),
            changes,
            base,
            pipeline,
        })
    }
}

/// A change read from its tree, with the pipeline that judges it.
#[derive(Debug, Clone)]
pub struct PreparedChange {
    work_dir: PathBuf,
    changes: Option<ChangeSet>,
    base: Option<String>,
    pipeline: Pipeline,
}

impl PreparedChange {
    /// The change set; `None` outside a git repository.
    pub fn changes(&self) -> Option<&ChangeSet> {
        self.changes.as_ref()
    }

    /// The names of the checks that will judge it, in order.
    pub fn stages(&self) -> Vec<&str> {
        self.pipeline.stages()
    }

    /// Runs every check over the change of the task titled `task_title`, which holds
    /// locks on `locked_paths`; returns what each check found and the result.
    pub async fn run(
        &self,
        task_title: &str,
        task_description: &str,
        locked_paths: Vec<String>,
    ) -> (Vec<StageReport>, NewVerificationResult) {
        let input = VerificationInput {
            task_title: task_title.to_owned(),
            task_description: task_description.to_owned(),
            work_dir: self.work_dir.clone(),
            changed_files: self
                .changes
                .iter()
                .flat_map(|changes| changes.present_paths().map(str::to_owned))
                .collect(),
            locked_paths,
            base_commit: self.base.clone(),
        };
        self.pipeline.run(&input).await
    }
}
