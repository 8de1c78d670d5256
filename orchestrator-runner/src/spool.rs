//! Completions the orchestrator has not accepted yet, kept on disk: one JSON file per
//! attempt, written before the first try to send it and removed once the orchestrator
//! answers for good. A runner that exits (or dies) in between finds the file at its next
//! start and sends it again, so a finished attempt's commit and evidence are never lost.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use orchestrator_core::attempts::AttemptCompletion;
use orchestrator_core::protocol::{AttemptRef, CompletionReport};

/// A directory of completions waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    dir: PathBuf,
}

/// A completion found in the spool.
#[derive(Debug, Clone)]
pub struct Spooled {
    pub file: PathBuf,
    pub attempt: AttemptRef,
    pub completion: AttemptCompletion,
}

impl Spool {
    /// The spool in `dir` (created when the first completion is kept).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, attempt: &AttemptRef) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.json",
            attempt.task_id(),
            attempt.lease.attempt
        ))
    }

    /// Keeps `completion` until [`Spool::remove`]; readable by its owner only (it holds
    /// the attempt's lease token). Returns the file.
    pub fn keep(
        &self,
        attempt: AttemptRef,
        completion: &AttemptCompletion,
    ) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let report = CompletionReport::from_completion(attempt, completion.clone());
        let json = serde_json::to_vec_pretty(&report).map_err(std::io::Error::other)?;
        let file = self.file(&attempt);
        let partial = file.with_extension("partial");
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        out.write_all(&json)?;
        out.sync_all()?;
        // A rename is atomic: a reader finds the whole completion or none.
        std::fs::rename(&partial, &file)?;
        Ok(file)
    }

    /// Moves the attempt's completion to `refused/` in the spool, where it is kept for a
    /// person to look at and not sent again (the orchestrator refused it as invalid).
    /// Returns where it went.
    pub fn set_aside(&self, attempt: &AttemptRef) -> std::io::Result<PathBuf> {
        let file = self.file(attempt);
        let refused = self.dir.join("refused");
        std::fs::create_dir_all(&refused)?;
        let kept = refused.join(file.file_name().unwrap_or_default());
        std::fs::rename(&file, &kept)?;
        Ok(kept)
    }

    /// Forgets the attempt's completion (the orchestrator answered for good).
    pub fn remove(&self, attempt: &AttemptRef) -> std::io::Result<()> {
        match std::fs::remove_file(self.file(attempt)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }

    /// The completions waiting, oldest file name first. A file that cannot be read is
    /// reported as an error beside the others, never silently skipped.
    pub fn pending(&self) -> (Vec<Spooled>, Vec<String>) {
        let mut found = Vec::new();
        let mut unreadable = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return (found, unreadable),
            Err(err) => {
                unreadable.push(format!("cannot read {}: {err}", self.dir.display()));
                return (found, unreadable);
            }
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        files.sort();
        for file in files {
            let read = std::fs::read(&file)
                .map_err(|err| err.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<CompletionReport>(&bytes).map_err(|e| e.to_string())
                });
            match read {
                Ok(report) => found.push(Spooled {
                    file,
                    attempt: report.attempt_ref(),
                    completion: report.completion(),
                }),
                Err(err) => unreadable.push(format!(
                    "{} is not a completion ({err}); move it away once you have looked at it",
                    file.display()
                )),
            }
        }
        (found, unreadable)
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_core::change::LeaseRef;
    use orchestrator_core::ids::{AgentId, LeaseToken, TaskId};
    use orchestrator_core::model::{ChangeReport, FileChange, FileChangeStatus, Usage};

    use super::*;

    fn attempt() -> AttemptRef {
        AttemptRef {
            agent_id: AgentId::new(),
            lease: LeaseRef {
                task_id: TaskId::new(),
                attempt: 2,
                lease_token: LeaseToken::new(),
            },
        }
    }

    #[test]
    fn a_kept_completion_is_found_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        assert!(
            spool.pending().0.is_empty(),
            "no directory yet: nothing pending"
        );
        let attempt = attempt();
        let completion = AttemptCompletion {
            success: true,
            cancelled: false,
            returned: false,
            lock_conflict: false,
            summary: Some("did it".into()),
            error: None,
            commit_sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            usage: Usage::default(),
            backend: Some("claude-code".into()),
            model: Some("claude-sonnet-4-5".into()),
            diff_stats: None,
            changes: Some(ChangeReport {
                files: vec![FileChange {
                    path: "src/ünï.rs".into(),
                    old_path: Some("src/old.rs".into()),
                    status: FileChangeStatus::Renamed,
                    insertions: 1,
                    deletions: 0,
                    binary: false,
                }],
                omitted_files: 2,
                patch: "diff --git a/src/old.rs b/src/ünï.rs\n+// 🦀 \"quoted\"\n".into(),
                truncated: true,
                max_patch_bytes: 4_096,
            }),
            verification: None,
        };
        let file = spool.keep(attempt, &completion).unwrap();
        std::fs::write(spool.dir().join("garbage.json"), "{").unwrap();
        let (pending, unreadable) = spool.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].file, file);
        assert_eq!(pending[0].attempt, attempt);
        assert_eq!(pending[0].completion, completion);
        assert_eq!(unreadable.len(), 1, "{unreadable:?}");
        assert!(unreadable[0].contains("garbage.json"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let aside = spool.set_aside(&attempt).unwrap();
        assert!(aside.starts_with(spool.dir().join("refused")) && aside.is_file());
        assert!(spool.pending().0.is_empty(), "set aside: not sent again");

        spool.keep(attempt, &completion).unwrap();
        spool.remove(&attempt).unwrap();
        spool.remove(&attempt).unwrap();
        assert!(spool.pending().0.is_empty());
    }
}
