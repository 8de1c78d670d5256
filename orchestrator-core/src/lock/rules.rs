//! The rules of locking, shared by every store: parsing requests, deciding conflicts,
//! shaping grants, and the exception a force release leaves behind.

use std::collections::BTreeSet;

use super::{LockConflict, LockPath};
use crate::error::{Error, Result};
use crate::ids::{AgentId, FileLockId, TaskId};
use serde_json::json;

use crate::model::{
    EventKind, ExceptionSeverity, ExceptionType, FileLock, FileLockStatus, LockMode, NewEvent,
    NewException,
};
use crate::time::Timestamp;

/// Most paths in one lock request (the HTTP routes and the runner protocol take the same
/// number).
pub const MAX_LOCK_PATHS: usize = 1_000;

/// Most bytes of lock keys one request's paths may need (every ancestor of every path,
/// see [`LockPath::key_bytes`]): deep, long paths cost their length times their depth,
/// and this keeps a request's work and storage in bounds.
pub const MAX_PATH_KEY_BYTES: usize = 4 * 1024 * 1024;

/// Normalizes requested paths, dropping duplicates; errors name `field[i]`, or `field`
/// when the paths together need more than [`MAX_PATH_KEY_BYTES`] of keys.
pub fn parse_paths(paths: &[String], field: &str) -> Result<Vec<LockPath>> {
    if paths.len() > MAX_LOCK_PATHS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_LOCK_PATHS} paths (got {})", paths.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut parsed = Vec::with_capacity(paths.len());
    let mut key_bytes = 0;
    for (index, raw) in paths.iter().enumerate() {
        let path = LockPath::parse_field(raw, &format!("{field}[{index}]"))?;
        key_bytes += path.key_bytes();
        if key_bytes > MAX_PATH_KEY_BYTES {
            return Err(Error::invalid(
                field,
                format!(
                    "these paths are too deep and long together: locking them needs more than \
                     {MAX_PATH_KEY_BYTES} bytes of keys (a path's length times its depth, \
                     summed); name fewer or shallower paths (a directory covers everything \
                     below it)"
                ),
            ));
        }
        if seen.insert(path.clone()) {
            parsed.push(path);
        }
    }
    Ok(parsed)
}

/// Paths covering every one of `paths` (parsed), at most `max` of them and within
/// [`MAX_PATH_KEY_BYTES`] of keys: while there are more, the deepest are replaced by
/// their directories, and paths a directory covers are dropped. So a change touching
/// thousands of files, or very deep ones, asks for locks on their directories in one
/// request the server accepts, instead of one it must refuse.
pub fn covering_at_most(paths: Vec<LockPath>, max: usize) -> Vec<LockPath> {
    let mut paths = without_covered(paths);
    while paths.len() > max.max(1) || key_bytes(&paths) > MAX_PATH_KEY_BYTES {
        let deepest = paths.iter().map(|p| p.segments().len()).max().unwrap_or(0);
        paths = without_covered(
            paths
                .into_iter()
                .map(|path| {
                    if path.segments().len() == deepest {
                        path.parent_directory()
                    } else {
                        path
                    }
                })
                .collect(),
        );
    }
    paths
}

/// Bytes of the lock keys `paths` need together.
pub fn key_bytes(paths: &[LockPath]) -> usize {
    paths.iter().map(LockPath::key_bytes).sum()
}

/// `paths` sorted, without duplicates and without those another of them covers.
fn without_covered(mut paths: Vec<LockPath>) -> Vec<LockPath> {
    paths.sort();
    paths.dedup();
    let mut kept: Vec<LockPath> = Vec::with_capacity(paths.len());
    for path in paths {
        // Sorted by segments, a path comes right before what lies below it.
        if kept.last().is_some_and(|last| last.covers(&path)) {
            continue;
        }
        kept.push(path);
    }
    kept
}

/// Among `held` locks (live ones, of other holders), those that stand in the way of
/// `requested` in `mode`: overlapping, and not both shared.
pub fn conflicts_among(
    requested: &[LockPath],
    mode: LockMode,
    held: &[FileLock],
    holder: Option<AgentId>,
    now: Timestamp,
) -> Result<Vec<LockConflict>> {
    let mut conflicts = Vec::new();
    for lock in held {
        if Some(lock.agent_id) == holder || !lock.is_live(now) {
            continue;
        }
        if mode == LockMode::Shared && lock.mode == LockMode::Shared {
            continue;
        }
        let held_path = LockPath::parse(&lock.file_path)?;
        for path in requested {
            if path.overlaps(&held_path) {
                conflicts.push(LockConflict {
                    requested_path: path.key(),
                    held: lock.clone(),
                });
            }
        }
    }
    Ok(conflicts)
}

/// The locks a grant creates: one per path, fencing tokens filled in by the store.
pub fn grants_for(
    paths: &[LockPath],
    holder: AgentId,
    task_id: Option<TaskId>,
    mode: LockMode,
    expires_at: Timestamp,
    now: Timestamp,
) -> Vec<FileLock> {
    paths
        .iter()
        .map(|path| FileLock {
            id: FileLockId::new(),
            file_path: path.key(),
            agent_id: holder,
            task_id,
            mode,
            status: FileLockStatus::Held,
            fencing_token: 0,
            acquired_at: now,
            expires_at,
        })
        .collect()
}

/// The exception that records an administrator taking `released` locks away
/// (CONFLICT_DETECTED, INFO, "File lock force released").
pub fn force_release_exception(
    path: &str,
    released: &[FileLock],
    reason: Option<&str>,
) -> NewException {
    let holders: Vec<String> = released
        .iter()
        .map(|lock| match lock.task_id {
            Some(task) => format!("agent {} (task {task})", lock.agent_id),
            None => format!("agent {}", lock.agent_id),
        })
        .collect();
    let mut description = format!(
        "Lock on \"{path}\" was forcibly released by an administrator.\nPreviously held by: {}",
        holders.join(", ")
    );
    if let Some(reason) = reason.filter(|r| !r.trim().is_empty()) {
        description.push_str(&format!("\nReason: {reason}"));
    }
    let first = released.first();
    NewException {
        exception_type: ExceptionType::ConflictDetected,
        severity: ExceptionSeverity::Info,
        title: "File lock force released".into(),
        description: Some(description),
        suggested_action: Some(
            "Check that the agent that held the lock is not still writing to the path".into(),
        ),
        agent_id: first.map(|lock| lock.agent_id),
        task_id: first.and_then(|lock| lock.task_id),
    }
}

/// Longest reason an administrator may give for a force release.
const MAX_FORCE_RELEASE_REASON_CHARS: usize = 500;

/// Checks a force release request; returns the normalized key of the path.
pub fn check_force_release(path: &str, reason: Option<&str>) -> Result<String> {
    let key = LockPath::parse_field(path, "filePath")?.key();
    if let Some(reason) = reason {
        crate::model::check_max_chars("reason", reason, MAX_FORCE_RELEASE_REASON_CHARS)?;
    }
    Ok(key)
}

/// The event recording a grant of `paths` to `holder`.
pub fn acquired_event(paths: &[LockPath], holder: AgentId, task: Option<TaskId>) -> NewEvent {
    let event = NewEvent::new(EventKind::LockAcquired)
        .agent(Some(holder))
        .payload(json!({"paths": paths.iter().map(LockPath::key).collect::<Vec<_>>()}));
    match task {
        Some(task) => event.task(task),
        None => event,
    }
}

/// The event recording that `count` locks of `holder` now run until `expires`; `None`
/// when none was renewed.
pub fn renewed_event(holder: AgentId, count: u64, expires: Timestamp) -> Option<NewEvent> {
    (count > 0).then(|| {
        NewEvent::new(EventKind::LockRenewed)
            .agent(Some(holder))
            .payload(json!({"count": count, "expiresAt": expires}))
    })
}

/// The event recording that `released` locks went (`reason`: released, expired,
/// force_released); `None` when nothing was released.
pub fn released_event(released: &[FileLock], reason: &str) -> Option<NewEvent> {
    let first = released.first()?;
    let paths: Vec<&str> = released.iter().map(|l| l.file_path.as_str()).collect();
    Some(
        NewEvent::new(EventKind::LockReleased)
            .agent(Some(first.agent_id))
            .payload(json!({"paths": paths, "reason": reason})),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_paths_are_covered_by_their_directories_within_the_limit() {
        let paths: Vec<LockPath> = (0..1_500)
            .map(|n| LockPath::parse(&format!("src/m{}/f{n}.rs", n % 40)).unwrap())
            .chain([LockPath::parse("README.md").unwrap()])
            .collect();
        let keys = |paths: &[LockPath]| paths.iter().map(LockPath::key).collect::<Vec<_>>();
        let covering = covering_at_most(paths.clone(), MAX_LOCK_PATHS);
        assert_eq!(covering.len(), 41, "{:?}", keys(&covering));
        assert!(keys(&covering).contains(&"src/m7/".to_owned()));
        assert!(keys(&covering).contains(&"README.md".to_owned()));
        assert!(paths.iter().all(|p| covering.iter().any(|c| c.covers(p))));
        assert_eq!(
            keys(&covering_at_most(paths.clone(), 2)),
            ["README.md", "src/"]
        );
        assert_eq!(keys(&covering_at_most(paths.clone(), 1)), ["./"]);
        let few = covering_at_most(paths[..3].to_vec(), MAX_LOCK_PATHS);
        assert_eq!(few.len(), 3, "under the limit nothing is widened");

        // Few paths, but too deep and long together: widened until their keys fit.
        let deep: Vec<LockPath> = (0..500)
            .map(|n| {
                let dirs = vec!["directory-with-a-long-name"; 40].join("/");
                LockPath::parse(&format!("{dirs}/d{}/f{n}.rs", n % 50)).unwrap()
            })
            .collect();
        assert!(key_bytes(&deep) > MAX_PATH_KEY_BYTES);
        let covering = covering_at_most(deep.clone(), MAX_LOCK_PATHS);
        assert!(key_bytes(&covering) <= MAX_PATH_KEY_BYTES);
        assert!(deep.iter().all(|p| covering.iter().any(|c| c.covers(p))));
        assert!(covering.len() > 1, "widened no further than needed");
    }
}
