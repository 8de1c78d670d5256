//! Inserts, guarded updates, upserts and deletes, added to a [`Batch`] that the dialect
//! runs; plus the few statements that run on their own (named leases, pruning).

use orchestrator_core::Timestamp;
use orchestrator_core::error::Result;
use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::lock::{DescendantRange, LockPath, parse_paths};
use orchestrator_core::model::{
    Agent, AgentLog, AttemptChanges, Exception, NewEvent, RunnerSession, Task, TaskAttempt,
    VerificationResult,
};
use sqlx::QueryBuilder;

use crate::rows::RowExt;

use crate::dialect::{
    Batch, Dialect, Exec, Expect, Value, insert, insert_into, push_list, update_into,
};

type Columns = Vec<(&'static str, Value)>;

/// The task's columns that change over its life.
fn task_mutable_columns(task: &Task) -> Result<Columns> {
    Ok(vec![
        ("title", Value::text(&task.title)),
        ("description", Value::text(&task.description)),
        ("priority", Value::int(task.priority)),
        ("risk_level", Value::text(task.risk_level.as_str())),
        ("status", Value::text(task.status.as_str())),
        ("assigned_agent_id", Value::opt_id(task.assigned_agent_id)),
        ("assigned_at", Value::Instant(task.assigned_at)),
        ("branch_name", Value::Text(task.branch_name.clone())),
        ("commit_sha", Value::Text(task.commit_sha.clone())),
        ("pr_url", Value::Text(task.pr_url.clone())),
        (
            "verification_status",
            Value::text(task.verification_status.as_str()),
        ),
        (
            "verification_attempts",
            Value::int(task.verification_attempts),
        ),
        (
            "estimated_complexity",
            Value::Text(task.estimated_complexity.map(|c| c.as_str().to_owned())),
        ),
        ("files_hint", Value::json(&task.files_hint)?),
        ("attempt", Value::int(task.attempt)),
        ("attempts_used", Value::int(task.attempts_used)),
        ("max_attempts", Value::int(task.max_attempts)),
        ("retry_count", Value::int(task.retry_count)),
        ("not_before", Value::Instant(task.not_before)),
        ("lease_token", Value::opt_id(task.lease_token)),
        ("lease_expires_at", Value::Instant(task.lease_expires_at)),
        ("cancel_requested", Value::Flag(Some(task.cancel_requested))),
        ("last_error", Value::Text(task.last_error.clone())),
        ("retry_note", Value::Text(task.retry_note.clone())),
        ("revision", Value::count(task.revision)),
        ("updated_at", Value::at(task.updated_at)),
        ("completed_at", Value::Instant(task.completed_at)),
    ])
}

fn agent_mutable_columns(agent: &Agent) -> Columns {
    vec![
        ("name", Value::Text(agent.name.clone())),
        ("status", Value::text(agent.status.as_str())),
        ("current_task_id", Value::opt_id(agent.current_task_id)),
        ("branch_name", Value::Text(agent.branch_name.clone())),
        (
            "conversation_id",
            Value::Text(agent.conversation_id.clone()),
        ),
        ("total_tokens_used", Value::count(agent.total_tokens_used)),
        ("last_activity_at", Value::Instant(agent.last_activity_at)),
        ("started_at", Value::Instant(agent.started_at)),
        ("completed_at", Value::Instant(agent.completed_at)),
        ("tasks_completed", Value::int(agent.tasks_completed)),
        ("tasks_failed", Value::int(agent.tasks_failed)),
        ("is_local_runner", Value::Flag(Some(agent.is_local_runner))),
        ("runner_session_id", Value::opt_id(agent.runner_session_id)),
        ("slot", Value::Integer(agent.slot.map(i64::from))),
        ("revision", Value::count(agent.revision)),
        ("updated_at", Value::at(agent.updated_at)),
    ]
}

/// Inserts the task and its dependency rows; `hidden_behind` sets it aside behind the
/// lock on that path (see [`crate::sql::hidden`]).
pub(crate) fn insert_task<D: Dialect>(
    batch: &mut Batch<D>,
    task: &Task,
    hidden_behind: Option<String>,
    idempotency_fingerprint: Option<String>,
) -> Result<()> {
    let mut columns = vec![
        ("id", Value::id(task.id)),
        ("idempotency_key", Value::Text(task.idempotency_key.clone())),
        ("created_at", Value::at(task.created_at)),
        ("hidden_behind", Value::Text(hidden_behind)),
        (
            "idempotency_fingerprint",
            Value::Text(idempotency_fingerprint),
        ),
    ];
    columns.extend(task_mutable_columns(task)?);
    insert_into(batch.statement(Expect::Anything), "tasks", vec![columns]);
    insert_task_dependencies(batch, task);
    insert_task_paths(batch, task)
}

fn insert_task_dependencies<D: Dialect>(batch: &mut Batch<D>, task: &Task) {
    if task.depends_on.is_empty() {
        return;
    }
    let rows = task
        .depends_on
        .iter()
        .map(|dependency| {
            vec![
                ("task_id", Value::id(task.id)),
                ("depends_on_id", Value::id(*dependency)),
            ]
        })
        .collect();
    insert_into(batch.statement(Expect::Anything), "task_dependencies", rows);
}

/// Replaces the rows of what `task` waits for with its `depends_on`.
pub(crate) fn replace_task_dependencies<D: Dialect>(batch: &mut Batch<D>, task: &Task) {
    let delete = batch.statement(Expect::Anything);
    delete.push("DELETE FROM task_dependencies WHERE task_id = ");
    Value::id(task.id).bind(delete);
    insert_task_dependencies(batch, task);
}

/// The start and end of the key range below a path (no end: every key).
type KeyRange = (String, Option<String>);

/// The path rows of the task's files hint (see migration 0008): the keys a lock covering
/// one of its paths would have, and the key range below each path.
fn task_path_rows(task: &Task) -> Result<(Vec<String>, Vec<KeyRange>)> {
    let paths = parse_paths(&task.files_hint, "filesHint")?;
    let mut keys: Vec<String> = paths.iter().flat_map(LockPath::covering_keys).collect();
    keys.sort();
    keys.dedup();
    let mut ranges: Vec<KeyRange> = paths
        .iter()
        .map(|path| match path.descendant_range() {
            DescendantRange::Everything => (String::new(), None),
            DescendantRange::Keys { start, end } => (start, Some(end)),
        })
        .collect();
    ranges.sort();
    ranges.dedup_by(|later, earlier| later.0 == earlier.0);
    Ok((keys, ranges))
}

/// Records where the task's files hint meets locks.
fn insert_task_paths<D: Dialect>(batch: &mut Batch<D>, task: &Task) -> Result<()> {
    let (keys, ranges) = task_path_rows(task)?;
    let owner = ("task_id", task.id.as_uuid());
    if !keys.is_empty() {
        let keys = keys.into_iter().map(|key| vec![Some(key)]).collect();
        D::insert_text_rows(batch, "task_path_keys", owner, &["key"], keys);
    }
    if !ranges.is_empty() {
        let ranges = ranges
            .into_iter()
            .map(|(start, end)| vec![Some(start), end])
            .collect();
        D::insert_text_rows(
            batch,
            "task_path_ranges",
            owner,
            &["range_start", "range_end"],
            ranges,
        );
    }
    Ok(())
}

/// Records the task's files hint anew after an edit changed it: rows of the old hint
/// that the new one lacks go, the new ones come (a dialect may run a batch as one
/// statement, whose parts do not see each other's writes).
pub(crate) fn replace_task_paths<D: Dialect>(batch: &mut Batch<D>, task: &Task) -> Result<()> {
    let (keys, ranges) = task_path_rows(task)?;
    for (table, column, kept) in [
        ("task_path_keys", "key", keys.to_vec()),
        (
            "task_path_ranges",
            "range_start",
            ranges.iter().map(|(start, _)| start.clone()).collect(),
        ),
    ] {
        let query = batch.statement(Expect::Anything);
        query.push(format!("DELETE FROM {table} WHERE task_id = "));
        Value::id(task.id).bind(query);
        if !kept.is_empty() {
            query.push(format!(" AND {column} NOT IN ("));
            push_list(query, kept.into_iter().map(Value::text).collect());
            query.push(")");
        }
    }
    insert_task_paths(batch, task)
}

/// A guarded update: `WHERE id = ? AND revision = ?` on the revision before `revision`,
/// touching exactly one row.
fn guarded_update<D: Dialect>(
    batch: &mut Batch<D>,
    (table, what): (&str, &'static str),
    columns: Columns,
    id: uuid::Uuid,
    revision: u64,
) {
    let query = batch.statement(Expect::OneRow(what));
    update_into(query, table, columns);
    query.push(" WHERE id = ");
    Value::id(id).bind(query);
    query.push(" AND revision = ");
    Value::count(revision.saturating_sub(1)).bind(query);
}

pub(crate) fn update_task<D: Dialect>(batch: &mut Batch<D>, task: &Task) -> Result<()> {
    let columns = task_mutable_columns(task)?;
    guarded_update(
        batch,
        ("tasks", "task"),
        columns,
        task.id.into(),
        task.revision,
    );
    Ok(())
}

pub(crate) fn delete_task<D: Dialect>(batch: &mut Batch<D>, id: TaskId) {
    let query = batch.statement(Expect::Anything);
    query.push("DELETE FROM tasks WHERE id = ");
    Value::id(id).bind(query);
}

pub(crate) fn insert_agent<D: Dialect>(batch: &mut Batch<D>, agent: &Agent) {
    let mut columns = vec![
        ("id", Value::id(agent.id)),
        ("created_at", Value::at(agent.created_at)),
    ];
    columns.extend(agent_mutable_columns(agent));
    insert_into(batch.statement(Expect::Anything), "agents", vec![columns]);
}

pub(crate) fn update_agent<D: Dialect>(batch: &mut Batch<D>, agent: &Agent) {
    let columns = agent_mutable_columns(agent);
    guarded_update(
        batch,
        ("agents", "agent"),
        columns,
        agent.id.into(),
        agent.revision,
    );
}

/// Records activity of agents without touching their revision: the time only moves on.
pub(crate) fn touch_agents<D: Dialect>(batch: &mut Batch<D>, ids: &[AgentId], now: Timestamp) {
    if ids.is_empty() {
        return;
    }
    let query = batch.statement(Expect::Anything);
    update_into(query, "agents", vec![("last_activity_at", Value::at(now))]);
    query.push(" WHERE id IN (");
    push_list(query, ids.iter().map(|id| Value::id(*id)).collect());
    query.push(")");
}

/// Inserts `columns` into `table`, or on a clash of `id` updates the columns named in
/// `mutable`.
fn upsert<D: Dialect>(batch: &mut Batch<D>, table: &str, columns: Columns, mutable: &[&str]) {
    let query = batch.statement(Expect::Anything);
    insert_into(query, table, vec![columns]);
    let assignments: Vec<String> = mutable
        .iter()
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    query.push(format!(
        " ON CONFLICT (id) DO UPDATE SET {}",
        assignments.join(", ")
    ));
}

pub(crate) fn upsert_attempt<D: Dialect>(batch: &mut Batch<D>, attempt: &TaskAttempt) {
    let usage = &attempt.usage;
    let columns = vec![
        ("id", Value::id(attempt.id)),
        ("task_id", Value::id(attempt.task_id)),
        ("attempt_number", Value::int(attempt.attempt_number)),
        ("agent_id", Value::id(attempt.agent_id)),
        (
            "runner_session_id",
            Value::opt_id(attempt.runner_session_id),
        ),
        ("lease_token", Value::opt_id(attempt.lease_token)),
        ("lease_expires_at", Value::at(attempt.lease_expires_at)),
        ("started_at", Value::at(attempt.started_at)),
        ("ended_at", Value::Instant(attempt.ended_at)),
        ("outcome", Value::text(attempt.outcome.as_str())),
        (
            "failure_reason",
            Value::Text(attempt.failure_reason.clone()),
        ),
        ("commit_sha", Value::Text(attempt.commit_sha.clone())),
        ("input_tokens", Value::count(usage.input_tokens)),
        ("output_tokens", Value::count(usage.output_tokens)),
        ("cache_read_tokens", Value::count(usage.cache_read_tokens)),
        ("cache_write_tokens", Value::count(usage.cache_write_tokens)),
        ("cost_usd", Value::Real(Some(usage.cost_usd))),
        ("backend", Value::Text(attempt.backend.clone())),
        ("model", Value::Text(attempt.model.clone())),
    ];
    let mutable = [
        "lease_expires_at",
        "ended_at",
        "outcome",
        "failure_reason",
        "commit_sha",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "backend",
        "model",
    ];
    upsert(batch, "task_attempts", columns, &mutable);
}

pub(crate) fn insert_runner_session<D: Dialect>(
    batch: &mut Batch<D>,
    session: &RunnerSession,
) -> Result<()> {
    let mut columns = vec![
        ("id", Value::id(session.id)),
        ("token_hash", Value::text(&session.token_hash)),
        ("created_at", Value::at(session.created_at)),
    ];
    columns.extend(runner_session_state(session)?);
    insert_into(
        batch.statement(Expect::Anything),
        "runner_sessions",
        vec![columns],
    );
    Ok(())
}

pub(crate) fn update_runner_session<D: Dialect>(
    batch: &mut Batch<D>,
    session: &RunnerSession,
) -> Result<()> {
    let state = runner_session_state(session)?;
    let query = batch.statement(Expect::Anything);
    update_into(query, "runner_sessions", state);
    query.push(" WHERE id = ");
    Value::id(session.id).bind(query);
    Ok(())
}

/// The columns of a runner session that change over its life.
fn runner_session_state(session: &RunnerSession) -> Result<Vec<(&'static str, Value)>> {
    Ok(vec![
        ("name", Value::text(&session.name)),
        ("working_dir", Value::text(&session.working_dir)),
        ("status", Value::text(session.status.as_str())),
        ("host", Value::Text(session.host.clone())),
        ("version", Value::Text(session.version.clone())),
        ("backends", Value::json(&session.backends)?),
        ("last_seen_at", Value::at(session.last_seen_at)),
        ("updated_at", Value::at(session.updated_at)),
    ])
}

/// `logs` with their places in their agents' logs (see [`AgentLog::sequence`]) and, for an
/// entry about a task that does not say which attempt, the task's current attempt. Each
/// agent's counter is taken on its row, so concurrent writers of one agent's entries take
/// turns and numbers follow the order of their commits.
pub(crate) async fn number_logs<D: Dialect>(
    conn: &mut impl Exec<D>,
    logs: &[AgentLog],
) -> Result<Vec<AgentLog>> {
    let mut numbered = logs.to_vec();
    let mut agents: Vec<AgentId> = logs.iter().map(|log| log.agent_id).collect();
    agents.sort_unstable();
    agents.dedup();
    for agent in agents {
        let count = logs.iter().filter(|log| log.agent_id == agent).count() as u64;
        let mut query = QueryBuilder::<D>::new("UPDATE agents SET log_sequence = log_sequence + ");
        Value::count(count).bind(&mut query);
        query.push(" WHERE id = ");
        Value::id(agent).bind(&mut query);
        query.push(" RETURNING log_sequence");
        let last: u64 = match conn.fetch_optional(query).await? {
            Some(row) => row.count("log_sequence")?,
            None => return Err(orchestrator_core::Error::not_found("agent", agent)),
        };
        let mine = numbered.iter_mut().filter(|log| log.agent_id == agent);
        for (sequence, log) in (last + 1 - count..).zip(mine) {
            log.sequence = sequence;
        }
    }
    let mut tasks: Vec<TaskId> = logs
        .iter()
        .filter(|log| log.attempt.is_none())
        .filter_map(|log| log.task_id)
        .collect();
    tasks.sort_unstable();
    tasks.dedup();
    if !tasks.is_empty() {
        let mut query = QueryBuilder::<D>::new("SELECT id, attempt FROM tasks WHERE id IN (");
        push_list(&mut query, tasks.iter().map(|id| Value::id(*id)).collect());
        query.push(")");
        for row in conn.fetch_all(query).await? {
            let task: TaskId = row.id("id")?;
            let attempt: u32 = row.count("attempt")?;
            for log in numbered
                .iter_mut()
                .filter(|log| log.task_id == Some(task) && log.attempt.is_none())
            {
                log.attempt = Some(attempt);
            }
        }
    }
    Ok(numbered)
}

/// Inserts log entries numbered by [`number_logs`].
pub(crate) fn insert_logs<D: Dialect>(batch: &mut Batch<D>, logs: &[AgentLog]) {
    let rows = logs
        .iter()
        .map(|log| {
            vec![
                ("id", Value::id(log.id)),
                ("agent_id", Value::id(log.agent_id)),
                ("task_id", Value::opt_id(log.task_id)),
                ("log_type", Value::text(log.log_type.as_str())),
                ("content", Value::text(&log.content)),
                ("metadata", Value::Json(log.metadata.clone())),
                ("created_at", Value::at(log.created_at)),
                ("attempt", Value::Integer(log.attempt.map(i64::from))),
                ("sequence", Value::count(log.sequence)),
            ]
        })
        .collect();
    insert_into(batch.statement(Expect::Anything), "agent_logs", rows);
}

pub(crate) fn insert_verification<D: Dialect>(
    batch: &mut Batch<D>,
    result: &VerificationResult,
) -> Result<()> {
    let columns = vec![
        ("id", Value::id(result.id)),
        ("task_id", Value::id(result.task_id)),
        ("attempt_number", Value::int(result.attempt_number)),
        ("passed", Value::Flag(Some(result.passed))),
        (
            "confidence_score",
            Value::Real(Some(result.confidence_score)),
        ),
        ("syntax_passed", Value::Flag(result.syntax_passed)),
        ("types_passed", Value::Flag(result.types_passed)),
        ("lint_passed", Value::Flag(result.lint_passed)),
        ("tests_passed", Value::Flag(result.tests_passed)),
        (
            "tests_total",
            Value::Integer(result.tests_total.map(i64::from)),
        ),
        (
            "tests_failed",
            Value::Integer(result.tests_failed.map(i64::from)),
        ),
        ("semantic_score", Value::Real(result.semantic_score)),
        (
            "semantic_explanation",
            Value::Text(result.semantic_explanation.clone()),
        ),
        ("failures", Value::json(&result.failures)?),
        ("recommendations", Value::json(&result.recommendations)?),
        ("unverified", Value::Flag(Some(result.unverified))),
        ("stages", Value::json(&result.stages)?),
        ("created_at", Value::at(result.created_at)),
    ];
    insert_into(
        batch.statement(Expect::Anything),
        "verification_results",
        vec![columns],
    );
    Ok(())
}

pub(crate) fn insert_attempt_changes<D: Dialect>(
    batch: &mut Batch<D>,
    kept: &AttemptChanges,
) -> Result<()> {
    let changes = &kept.changes;
    let columns = vec![
        ("task_id", Value::id(kept.task_id)),
        ("attempt_number", Value::int(kept.attempt_number)),
        ("files", Value::json(&changes.files)?),
        ("omitted_files", Value::int(changes.omitted_files)),
        ("patch", Value::text(&changes.patch)),
        ("truncated", Value::Flag(Some(changes.truncated))),
        ("max_patch_bytes", Value::int(changes.max_patch_bytes)),
        ("created_at", Value::at(kept.created_at)),
    ];
    insert_into(
        batch.statement(Expect::Anything),
        "attempt_changes",
        vec![columns],
    );
    Ok(())
}

pub(crate) fn upsert_exception<D: Dialect>(batch: &mut Batch<D>, exception: &Exception) {
    let columns = vec![
        ("id", Value::id(exception.id)),
        (
            "exception_type",
            Value::text(exception.exception_type.as_str()),
        ),
        ("agent_id", Value::opt_id(exception.agent_id)),
        ("task_id", Value::opt_id(exception.task_id)),
        ("severity", Value::text(exception.severity.as_str())),
        ("title", Value::text(&exception.title)),
        ("description", Value::Text(exception.description.clone())),
        (
            "suggested_action",
            Value::Text(exception.suggested_action.clone()),
        ),
        ("status", Value::text(exception.status.as_str())),
        ("resolved_by", Value::Text(exception.resolved_by.clone())),
        ("resolved_at", Value::Instant(exception.resolved_at)),
        (
            "resolution_notes",
            Value::Text(exception.resolution_notes.clone()),
        ),
        ("occurrences", Value::int(exception.occurrences)),
        ("last_occurred_at", Value::at(exception.last_occurred_at)),
        ("created_at", Value::at(exception.created_at)),
        ("updated_at", Value::at(exception.updated_at)),
    ];
    let mutable = [
        "status",
        "resolved_by",
        "resolved_at",
        "resolution_notes",
        "occurrences",
        "last_occurred_at",
        "updated_at",
    ];
    upsert(batch, "exceptions", columns, &mutable);
}

/// Appends events at the end of the log (numbered by the dialect so that a reader never
/// skips one).
pub(crate) fn append_events<D: Dialect>(batch: &mut Batch<D>, events: &[NewEvent], now: Timestamp) {
    if events.is_empty() {
        return;
    }
    let rows = events
        .iter()
        .map(|event| {
            vec![
                ("kind", Value::text(event.kind.as_str())),
                ("task_id", Value::opt_id(event.task_id)),
                ("agent_id", Value::opt_id(event.agent_id)),
                ("runner_session_id", Value::opt_id(event.runner_session_id)),
                ("exception_id", Value::opt_id(event.exception_id)),
                ("payload", Value::Json(Some(event.payload.clone()))),
                ("created_at", Value::at(now)),
            ]
        })
        .collect();
    insert_into(batch.statement(Expect::Events), "events", rows);
}

/// Takes the named lease for `holder` until `expires` if it is free, expired at `now`,
/// or already `holder`'s.
pub(crate) async fn take_named_lease<D: Dialect>(
    conn: &mut impl Exec<D>,
    name: &str,
    holder: &str,
    expires: Timestamp,
    now: Timestamp,
) -> Result<bool> {
    let mut query = insert::<D>(
        "named_leases",
        vec![vec![
            ("name", Value::text(name)),
            ("holder", Value::text(holder)),
            ("expires_at", Value::at(expires)),
        ]],
    );
    query.push(
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
         expires_at = excluded.expires_at \
         WHERE named_leases.holder = excluded.holder OR named_leases.expires_at <= ",
    );
    Value::at(now).bind(&mut query);
    Ok(conn.execute(query).await? == 1)
}

/// Deletes rows of `table` created before `cutoff`, then all but the newest `keep`
/// (by `order`, a descending key list); returns how many went.
pub(crate) async fn prune_table<D: Dialect>(
    conn: &mut impl Exec<D>,
    table: &str,
    cutoff: Timestamp,
    keep: u64,
    key: &str,
    order: &str,
) -> Result<u64> {
    let mut by_age = QueryBuilder::<D>::new(format!("DELETE FROM {table} WHERE created_at < "));
    Value::at(cutoff).bind(&mut by_age);
    let aged = conn.execute(by_age).await?;
    let mut by_count = QueryBuilder::<D>::new(format!(
        "DELETE FROM {table} WHERE ({key}) <= (SELECT {key} FROM {table} ORDER BY {order} \
         LIMIT 1 OFFSET "
    ));
    Value::count(keep).bind(&mut by_count);
    by_count.push(")");
    Ok(aged + conn.execute(by_count).await?)
}

/// Stores the server setting `name` unless it is set already.
pub(crate) async fn insert_setting_if_absent<D: Dialect>(
    conn: &mut impl Exec<D>,
    name: &str,
    value: &str,
    now: Timestamp,
) -> Result<()> {
    let mut query = insert::<D>(
        "server_settings",
        vec![vec![
            ("name", Value::text(name)),
            ("value", Value::text(value)),
            ("updated_at", Value::at(now)),
        ]],
    );
    query.push(" ON CONFLICT (name) DO NOTHING");
    conn.execute(query).await?;
    Ok(())
}

/// Removes setup tokens that expired by `now`.
pub(crate) async fn delete_expired_setup_tokens<D: Dialect>(
    conn: &mut impl Exec<D>,
    now: Timestamp,
) -> Result<u64> {
    let mut query = QueryBuilder::<D>::new("DELETE FROM setup_tokens WHERE expires_at <= ");
    Value::at(now).bind(&mut query);
    conn.execute(query).await
}

/// Stores a setup token's hash (a duplicate is a `Conflict`).
pub(crate) async fn insert_setup_token<D: Dialect>(
    conn: &mut impl Exec<D>,
    token_hash: &str,
    expires_at: Timestamp,
    now: Timestamp,
) -> Result<()> {
    let query = insert::<D>(
        "setup_tokens",
        vec![vec![
            ("token_hash", Value::text(token_hash)),
            ("expires_at", Value::at(expires_at)),
            ("created_at", Value::at(now)),
        ]],
    );
    conn.execute(query).await?;
    Ok(())
}

/// Deletes the setup token `token_hash`; true if it existed and had not expired.
pub(crate) async fn take_setup_token<D: Dialect>(
    conn: &mut impl Exec<D>,
    token_hash: &str,
    now: Timestamp,
) -> Result<bool> {
    let mut query = QueryBuilder::<D>::new("DELETE FROM setup_tokens WHERE token_hash = ");
    Value::text(token_hash).bind(&mut query);
    query.push(" AND expires_at > ");
    Value::at(now).bind(&mut query);
    Ok(conn.execute(query).await? == 1)
}
