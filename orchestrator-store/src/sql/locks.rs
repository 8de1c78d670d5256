//! The statements behind locking: conflict lookups through the path index, grants with
//! fencing tokens, renewals and releases.

use orchestrator_core::Timestamp;
use orchestrator_core::error::{Error, Result};
use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::lock::{
    DescendantRange, LockConflict, LockPath, LockQuery, conflicts_among,
};
use orchestrator_core::model::{FileLock, FileLockStatus, LockMode};
use sqlx::QueryBuilder;

use crate::dialect::{
    Batch, Dialect, Exec, Expect, Value, insert_into, push_limit, push_list, update_into,
};
use crate::rows::RowReader;

fn lock_from_row(row: &impl RowReader) -> Result<FileLock> {
    crate::rows::file_lock_from_row(row, FileLockStatus::Held)
}

/// The most values one lookup binds: SQLite takes 32,766 and PostgreSQL 65,535 at most.
const MAX_LOOKUP_BINDS: usize = 8_000;
/// The most paths one lookup covers: each adds a key range to a chain of `OR`s, and
/// SQLite refuses expressions nested more than 1,000 deep.
const MAX_LOOKUP_PATHS: usize = 400;

/// Live locks that overlap any of `paths`, whoever holds them. Only the keys that can
/// overlap are looked up — each path's ancestors and itself, and the key range below it —
/// so the cost follows the request, not the table. Many paths are looked up in several
/// statements.
pub(crate) async fn held_overlapping<D: Dialect>(
    conn: &mut impl Exec<D>,
    paths: &[LockPath],
    now: Timestamp,
) -> Result<Vec<FileLock>> {
    let mut held = Vec::new();
    let mut start = 0;
    let mut binds = 0;
    for (index, path) in paths.iter().enumerate() {
        // The root and two keys per level (with and without `/`), the range's two ends.
        let cost = 2 * path.segments().len() + 3;
        let full = binds + cost > MAX_LOOKUP_BINDS || index - start == MAX_LOOKUP_PATHS;
        if full && index > start {
            held.extend(held_overlapping_at_once(conn, &paths[start..index], now).await?);
            (start, binds) = (index, 0);
        }
        binds += cost;
    }
    if start < paths.len() {
        held.extend(held_overlapping_at_once(conn, &paths[start..], now).await?);
    }
    held.sort_by_key(|lock| lock.id);
    held.dedup_by_key(|lock| lock.id);
    Ok(held)
}

/// [`held_overlapping`] in one statement.
async fn held_overlapping_at_once<D: Dialect>(
    conn: &mut impl Exec<D>,
    paths: &[LockPath],
    now: Timestamp,
) -> Result<Vec<FileLock>> {
    let mut keys: Vec<String> = paths.iter().flat_map(LockPath::covering_keys).collect();
    keys.sort();
    keys.dedup();
    let mut query = QueryBuilder::<D>::new("SELECT * FROM file_locks WHERE expires_at > ");
    Value::at(now).bind(&mut query);
    let everything = paths
        .iter()
        .any(|p| p.descendant_range() == DescendantRange::Everything);
    if !everything {
        query.push(" AND (file_path IN (");
        push_list(&mut query, keys.into_iter().map(Value::text).collect());
        query.push(")");
        for path in paths {
            if let DescendantRange::Keys { start, end } = path.descendant_range() {
                query.push(" OR (file_path >= ");
                Value::text(start).bind(&mut query);
                query.push(" AND file_path < ");
                Value::text(end).bind(&mut query);
                query.push(")");
            }
        }
        query.push(")");
    }
    conn.fetch_all(query)
        .await?
        .iter()
        .map(lock_from_row)
        .collect()
}

/// Live locks of holders other than `holder` that stand in the way of `paths` in `mode`.
pub(crate) async fn conflicts<D: Dialect>(
    conn: &mut impl Exec<D>,
    paths: &[LockPath],
    mode: LockMode,
    holder: Option<AgentId>,
    now: Timestamp,
) -> Result<Vec<LockConflict>> {
    let held = held_overlapping::<D>(conn, paths, now).await?;
    conflicts_among(paths, mode, &held, holder, now)
}

/// The transaction guards that make concurrent acquirers of overlapping paths take
/// turns: shared on every ancestor, exclusive on the path itself — also for a shared
/// request, which overlaps an exclusive one anywhere below (whose acquirer holds this
/// path's guard shared). Sorted, so every acquirer takes them in the same order.
pub(crate) fn guard_keys(paths: &[LockPath]) -> Vec<(i64, bool)> {
    let mut keys: Vec<(i64, bool)> = Vec::new();
    for path in paths {
        // Each prefix's hash goes on from the one before: linear in the path's length.
        let mut prefix = GuardHash::new();
        for (depth, segment) in path.segments().iter().enumerate() {
            keys.push((prefix.value(), false));
            if depth > 0 {
                prefix.add(b"/");
            }
            prefix.add(segment.as_bytes());
        }
        keys.push((prefix.value(), true));
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    keys.dedup_by(|later, earlier| later.0 == earlier.0);
    keys
}

/// A stable 64-bit FNV-1a hash of a guard key, namespaced for this application, fed a
/// piece at a time.
struct GuardHash(u64);

impl GuardHash {
    fn new() -> Self {
        let mut hash = Self(0xcbf2_9ce4_8422_2325);
        hash.add(b"orchestrator-lock:");
        hash
    }

    fn add(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn value(&self) -> i64 {
        i64::from_ne_bytes(self.0.to_ne_bytes())
    }
}

/// Numbers `grants` with fresh fencing tokens.
pub(crate) async fn number<D: Dialect>(
    conn: &mut impl Exec<D>,
    grants: &[FileLock],
) -> Result<Vec<FileLock>> {
    if grants.is_empty() {
        return Ok(Vec::new());
    }
    let tokens = D::next_fencing_tokens(conn, grants.len() as u64).await?;
    if tokens.len() != grants.len() {
        return Err(Error::backend(format!(
            "{} fencing tokens were reserved for {} grants",
            tokens.len(),
            grants.len()
        )));
    }
    Ok(grants
        .iter()
        .zip(tokens)
        .map(|(grant, token)| FileLock {
            fencing_token: u64::try_from(token).unwrap_or_default(),
            ..grant.clone()
        })
        .collect())
}

/// Stores numbered grants.
pub(crate) fn insert<D: Dialect>(batch: &mut Batch<D>, locks: &[FileLock]) {
    if locks.is_empty() {
        return;
    }
    let rows = locks
        .iter()
        .map(|lock| {
            vec![
                ("id", Value::id(lock.id)),
                ("file_path", Value::text(&lock.file_path)),
                ("agent_id", Value::id(lock.agent_id)),
                ("task_id", Value::opt_id(lock.task_id)),
                ("mode", Value::text(lock.mode.as_str())),
                ("fencing_token", Value::count(lock.fencing_token)),
                ("acquired_at", Value::at(lock.acquired_at)),
                ("expires_at", Value::at(lock.expires_at)),
            ]
        })
        .collect();
    insert_into(batch.statement(Expect::Anything), "file_locks", rows);
}

/// Releases every lock held for `task`.
pub(crate) fn release_task<D: Dialect>(batch: &mut Batch<D>, task: TaskId) {
    let query = batch.statement(Expect::Anything);
    query.push("DELETE FROM file_locks WHERE task_id = ");
    Value::id(task).bind(query);
}

/// Extends every lock held for `task` to `expires`.
pub(crate) fn renew_task<D: Dialect>(batch: &mut Batch<D>, task: TaskId, expires: Timestamp) {
    let query = batch.statement(Expect::Anything);
    update_into(
        query,
        "file_locks",
        vec![("expires_at", Value::at(expires))],
    );
    query.push(" WHERE task_id = ");
    Value::id(task).bind(query);
}

/// Deletes the locks matching `condition` (a fragment followed by one bound value) and
/// returns them.
async fn delete_where<D: Dialect>(
    conn: &mut impl Exec<D>,
    condition: &str,
    value: Value,
    extra: Option<(&str, Vec<Value>)>,
) -> Result<Vec<FileLock>> {
    let mut query = QueryBuilder::<D>::new("DELETE FROM file_locks WHERE ");
    query.push(condition);
    value.bind(&mut query);
    if let Some((fragment, values)) = extra {
        query.push(fragment);
        push_list(&mut query, values);
        query.push(")");
    }
    query.push(" RETURNING *");
    conn.fetch_all(query)
        .await?
        .iter()
        .map(lock_from_row)
        .collect()
}

pub(crate) async fn release_holder<D: Dialect>(
    conn: &mut impl Exec<D>,
    holder: AgentId,
    keys: Option<Vec<String>>,
) -> Result<Vec<FileLock>> {
    let extra = keys.map(|keys| {
        (
            " AND file_path IN (",
            keys.into_iter().map(Value::text).collect::<Vec<_>>(),
        )
    });
    if extra.as_ref().is_some_and(|(_, keys)| keys.is_empty()) {
        return Ok(Vec::new());
    }
    delete_where::<D>(conn, "agent_id = ", Value::id(holder), extra).await
}

pub(crate) async fn release_key<D: Dialect>(
    conn: &mut impl Exec<D>,
    key: &str,
) -> Result<Vec<FileLock>> {
    delete_where::<D>(conn, "file_path = ", Value::text(key), None).await
}

pub(crate) async fn sweep<D: Dialect>(
    conn: &mut impl Exec<D>,
    now: Timestamp,
) -> Result<Vec<FileLock>> {
    delete_where::<D>(conn, "expires_at <= ", Value::at(now), None).await
}

pub(crate) async fn renew_holder<D: Dialect>(
    conn: &mut impl Exec<D>,
    holder: AgentId,
    expires: Timestamp,
    now: Timestamp,
) -> Result<u64> {
    let mut query =
        crate::dialect::update::<D>("file_locks", vec![("expires_at", Value::at(expires))]);
    query.push(" WHERE agent_id = ");
    Value::id(holder).bind(&mut query);
    query.push(" AND expires_at > ");
    Value::at(now).bind(&mut query);
    conn.execute(query).await
}

pub(crate) async fn list<D: Dialect>(
    conn: &mut impl Exec<D>,
    query: &LockQuery,
    now: Timestamp,
) -> Result<Vec<FileLock>> {
    let mut sql = QueryBuilder::<D>::new("SELECT * FROM file_locks WHERE 1 = 1");
    if let Some(agent) = query.agent_id {
        sql.push(" AND agent_id = ");
        Value::id(agent).bind(&mut sql);
    }
    if let Some(task) = query.task_id {
        sql.push(" AND task_id = ");
        Value::id(task).bind(&mut sql);
    }
    if !query.include_expired {
        sql.push(" AND expires_at > ");
        Value::at(now).bind(&mut sql);
    }
    sql.push(" ORDER BY acquired_at DESC, fencing_token DESC");
    push_limit(&mut sql, query.limit);
    conn.fetch_all(sql)
        .await?
        .iter()
        .map(lock_from_row)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(raw: &[&str]) -> Vec<LockPath> {
        raw.iter().map(|p| LockPath::parse(p).unwrap()).collect()
    }

    fn shares_a_conflicting_guard(a: &[(i64, bool)], b: &[(i64, bool)]) -> bool {
        a.iter()
            .any(|(ka, xa)| b.iter().any(|(kb, xb)| ka == kb && (*xa || *xb)))
    }

    #[test]
    fn overlapping_requests_always_contend_for_a_guard() {
        let cases = [
            (vec!["src/a.rs"], vec!["src/"]),
            (vec!["src/a.rs"], vec!["src/a.rs"]),
            (vec!["src/a"], vec!["src/a/"]),
            (vec!["src/a/b/c.rs"], vec!["./"]),
            (vec!["src/a"], vec!["src/a/b.rs"]),
        ];
        for (a, b) in cases {
            let (ga, gb) = (guard_keys(&paths(&a)), guard_keys(&paths(&b)));
            assert!(shares_a_conflicting_guard(&ga, &gb), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn disjoint_files_do_not_contend() {
        let a = guard_keys(&paths(&["src/a.rs"]));
        let b = guard_keys(&paths(&["src/b.rs"]));
        assert!(!shares_a_conflicting_guard(&a, &b));
        assert!(a.windows(2).all(|w| w[0].0 < w[1].0), "sorted and unique");
    }
}
