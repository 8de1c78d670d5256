//! `/api/tasks`: the queue. Listing, creation (single and batch), detail, the changes of
//! its attempts, edits, status changes, deletion, and requeueing for runners (`run`,
//! `retry`, `auto-retry`).

use std::collections::HashMap;
use std::str::FromStr;

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use orchestrator_core::Timestamp;
use orchestrator_core::change;
use orchestrator_core::ids::{AgentId, TaskId};
use orchestrator_core::lock::{LockPath, LockQuery};
use orchestrator_core::model::{
    AgentLog, AgentStatus, AttemptChanges, Exception, ExceptionQuery, FileLock, IdPrefix, LogQuery,
    NewTask, RiskLevel, SortOrder, Task, TaskActivityCounts, TaskAttempt, TaskComplexity, TaskEdit,
    TaskQuery, TaskSort, TaskStatus, VerificationResult, Waiting,
};
use orchestrator_core::retry::{self, RetryInfo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AgentRef, Data, Pagination, agents_by_id, created, data_bytes, ok, tasks_by_id};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ErrorEnvelope, InputErrors, ReadErrors, WriteErrors};
use crate::extract::{Json, OptionalJson, Params, parse_id};
use crate::state::AppState;
use orchestrator_core::store::StoreExt;

/// Most tasks in one batch creation.
const MAX_BATCH: usize = 50;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/tasks")
            .route(web::get().to(list_tasks))
            .route(web::post().to(create_task)),
    )
    .service(web::resource("/tasks/batch").route(web::post().to(create_batch)))
    .service(
        web::resource("/tasks/{id}")
            .route(web::get().to(get_task))
            .route(web::patch().to(patch_task))
            .route(web::delete().to(delete_task)),
    )
    .service(web::resource("/tasks/{id}/changes").route(web::get().to(task_changes)))
    .service(web::resource("/tasks/{id}/run").route(web::post().to(run_task)))
    .service(web::resource("/tasks/{id}/retry").route(web::post().to(retry_task)))
    .service(web::resource("/tasks/{id}/auto-retry").route(web::post().to(auto_retry_task)));
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TaskListItem {
    #[serde(flatten)]
    task: Task,
    assigned_agent: Option<AgentRef>,
    counts: TaskActivityCounts,
    /// Why a queued task is not claimed yet, as far as the task says (its dependencies
    /// and its not-before time).
    waiting: Option<Waiting>,
    /// The description is cut to its first 500 characters (`fields=description`, or the
    /// task's own page, gives it whole).
    description_truncated: bool,
}

/// Cuts `task`'s description to [`LISTED_DESCRIPTION_CHARS`]; whether it did.
fn cut_description(task: &mut Task) -> bool {
    match task
        .description
        .char_indices()
        .nth(LISTED_DESCRIPTION_CHARS)
    {
        Some((end, _)) => {
            task.description.truncate(end);
            true
        }
        None => false,
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct TaskList {
    tasks: Vec<TaskListItem>,
    pagination: Pagination,
}

/// What a task list carries beyond its default (`fields`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub(super) enum ListField {
    /// Whole descriptions.
    Description,
}

impl FromStr for ListField {
    type Err = orchestrator_core::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "description" => Ok(Self::Description),
            other => Err(orchestrator_core::Error::invalid(
                "fields",
                format!("{other:?} is not a field a list can add; the one there is: description"),
            )),
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/tasks",
    tag = "tasks",
    summary = "A page of tasks",
    params(
        ("status" = Option<TaskStatus>, Query, description = "Only this status"),
        ("priority" = Option<u8>, Query, minimum = 0, maximum = 3, description = "Only this priority"),
        ("search" = Option<String>, Query, max_length = 200, description = "Case-insensitive text in title or description"),
        ("idPrefix" = Option<IdPrefix>, Query, description = "Only tasks whose id begins with this (1-36 characters of one)"),
        ("sortBy" = Option<TaskSort>, Query, description = "Sort column (default priority)"),
        ("sortOrder" = Option<SortOrder>, Query, description = "Default asc"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Default 50"),
        ("offset" = Option<u64>, Query, maximum = 4294967295_u64, description = "Rows to skip"),
        ("fields" = Option<ListField>, Query, description = "`description`: whole descriptions (by default each is cut to its first 500 characters, and `descriptionTruncated` says so)"),
    ),
    responses(
        (status = 200, description = "Tasks with their agent and activity counts", body = Data<TaskList>),
        InputErrors,
    ),
    security(("admin" = [])),
)]
async fn list_tasks(
    _: Admin,
    state: web::Data<AppState>,
    req: HttpRequest,
    params: Params,
) -> ApiResult<HttpResponse> {
    let query = TaskQuery {
        status: params.parse::<TaskStatus>("status")?,
        priority: params.parse::<u8>("priority")?,
        search: params.text("search").map(str::to_owned),
        id_prefix: params.parse::<IdPrefix>("idPrefix")?,
        sort_by: params
            .parse::<TaskSort>("sortBy")?
            .unwrap_or(TaskSort::Priority),
        sort_order: params.parse::<SortOrder>("sortOrder")?.unwrap_or_default(),
        limit: params.int("limit", 1..=100, 50)?,
        offset: params.int("offset", 0..=u64::from(u32::MAX), 0)?,
        after: None,
    };
    query.validate()?;
    let whole_descriptions = params.parse::<ListField>("fields")? == Some(ListField::Description);
    let key = format!("tasks?{}", req.query_string());
    state
        .cache
        .json(state.store.as_ref(), key, || {
            task_list(&state, &query, whole_descriptions)
        })
        .await
}

/// How much of a description a list carries unless whole ones are asked for.
const LISTED_DESCRIPTION_CHARS: usize = 500;

/// A page of the task list with each task's agent and activity counts; descriptions cut
/// to [`LISTED_DESCRIPTION_CHARS`] unless `whole_descriptions`.
async fn task_list(
    state: &AppState,
    query: &TaskQuery,
    whole_descriptions: bool,
) -> ApiResult<Bytes> {
    let page = state.store.list_tasks(query).await?;
    let pagination = Pagination::of(&page);
    let ids: Vec<TaskId> = page.items.iter().map(|task| task.id).collect();
    let counts: HashMap<TaskId, TaskActivityCounts> = state
        .store
        .task_activity_counts(&ids)
        .await?
        .into_iter()
        .map(|counts| (counts.task_id, counts))
        .collect();
    let agents = agents_by_id(state, page.items.iter().filter_map(|t| t.assigned_agent_id)).await?;
    let dependencies = tasks_by_id(
        state,
        page.items
            .iter()
            .filter(|task| task.status == TaskStatus::Queued)
            .flat_map(|task| task.depends_on.iter().copied()),
    )
    .await?;
    let now = state.now();
    let tasks = page
        .items
        .into_iter()
        .map(|mut task| TaskListItem {
            description_truncated: !whole_descriptions && cut_description(&mut task),
            waiting: Waiting::of(&task, &dependencies, now),
            assigned_agent: task
                .assigned_agent_id
                .and_then(|id| agents.get(&id))
                .map(AgentRef::from),
            counts: counts
                .get(&task.id)
                .cloned()
                .unwrap_or_else(|| TaskActivityCounts::none(task.id)),
            task,
        })
        .collect();
    data_bytes(TaskList { tasks, pagination })
}

#[utoipa::path(
    post,
    path = "/api/tasks",
    tag = "tasks",
    summary = "Queue a task",
    request_body = NewTask,
    responses(
        (status = 201, description = "Created", body = Data<Task>),
        (status = 200, description = "An earlier task with the same idempotency key", body = Data<Task>),
        (status = 400, description = "Invalid input: the message and details.field name what is wrong", body = ErrorEnvelope),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorEnvelope),
        (status = 403, description = "A token of the other scope", body = ErrorEnvelope),
        (status = 409, description = "A dependency that does not exist or would wait for this task, or an idempotency key used with another body", body = ErrorEnvelope),
        (status = 413, description = "Body over the route's limit", body = ErrorEnvelope),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorEnvelope),
    ),
    security(("admin" = [])),
)]
async fn create_task(
    _: Admin,
    state: web::Data<AppState>,
    Json(new): Json<NewTask>,
) -> ApiResult<HttpResponse> {
    let outcome = state.store.create_task(new, state.now()).await?;
    if outcome.created {
        Ok(created(outcome.value))
    } else {
        Ok(ok(outcome.value))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    #[schema(min_items = 1, max_items = 50)]
    tasks: Vec<NewTask>,
}

#[derive(Debug, Serialize, ToSchema)]
struct BatchCreated {
    tasks: Vec<Task>,
    count: usize,
    message: String,
}

#[utoipa::path(
    post,
    path = "/api/tasks/batch",
    tag = "tasks",
    summary = "Queue 1-50 tasks in one transaction",
    request_body = BatchBody,
    responses(
        (status = 201, description = "Created", body = Data<BatchCreated>),
        (status = 400, description = "Invalid input: the message and details.field name what is wrong", body = ErrorEnvelope),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorEnvelope),
        (status = 403, description = "A token of the other scope", body = ErrorEnvelope),
        (status = 409, description = "A dependency that does not exist or would wait for this task, or an idempotency key used with another body", body = ErrorEnvelope),
        (status = 413, description = "Body over the route's limit", body = ErrorEnvelope),
        (status = 429, description = "Rate limited; see Retry-After", body = ErrorEnvelope),
    ),
    security(("admin" = [])),
)]
async fn create_batch(
    _: Admin,
    state: web::Data<AppState>,
    Json(body): Json<BatchBody>,
) -> ApiResult<HttpResponse> {
    if body.tasks.is_empty() {
        return Err(ApiError::invalid("tasks", "At least one task is required"));
    }
    if body.tasks.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "tasks",
            format!("Maximum {MAX_BATCH} tasks per batch"),
        ));
    }
    for (index, task) in body.tasks.iter().enumerate() {
        task.validate().map_err(|err| match err {
            orchestrator_core::Error::InvalidInput { field, message } => {
                ApiError::invalid(&format!("tasks[{index}].{field}"), message)
            }
            other => ApiError::from(other),
        })?;
    }
    let tasks = state.store.create_tasks(body.tasks, state.now()).await?;
    let count = tasks.len();
    Ok(created(BatchCreated {
        tasks,
        count,
        message: format!("Successfully created {count} tasks"),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AssignedAgent {
    pub(crate) id: AgentId,
    pub(crate) name: Option<String>,
    pub(crate) status: AgentStatus,
    pub(crate) total_tokens_used: u64,
    pub(crate) last_activity_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LockedHint {
    pub(crate) file_path: String,
    pub(crate) agent_id: AgentId,
    pub(crate) agent_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TaskDetail {
    #[serde(flatten)]
    pub(crate) task: Task,
    pub(crate) assigned_agent: Option<AssignedAgent>,
    /// Every attempt, first to latest.
    pub(crate) attempts: Vec<TaskAttempt>,
    pub(crate) verification_results: Vec<VerificationResult>,
    pub(crate) logs: Vec<AgentLog>,
    pub(crate) exceptions: Vec<Exception>,
    pub(crate) file_locks: Vec<FileLock>,
    pub(crate) locked_files_hint: Vec<LockedHint>,
    pub(crate) has_file_conflicts: bool,
    /// Why a queued task is not claimed yet: the dependencies it waits for and the time
    /// it may not be claimed before (`lockedFilesHint` names the locks in its way).
    pub(crate) waiting: Option<Waiting>,
}

#[utoipa::path(
    get,
    path = "/api/tasks/{id}",
    tag = "tasks",
    summary = "A task with its results, logs, exceptions and locks",
    params(
        ("id" = Uuid, Path, description = "The task id"),
    ),
    responses(
        (status = 200, description = "The task", body = Data<TaskDetail>),
        ReadErrors,
    ),
    security(("admin" = [])),
)]
async fn get_task(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id: TaskId = parse_id(&id, "task")?;
    Ok(ok(task_detail(&state, id).await?))
}

#[utoipa::path(
    get,
    path = "/api/tasks/{id}/changes",
    tag = "tasks",
    summary = "The changed files and the patch of each attempt whose runner reported them",
    params(
        ("id" = Uuid, Path, description = "The task id"),
    ),
    responses(
        (status = 200, description = "Each attempt's changes, oldest attempt first", body = Data<Vec<AttemptChanges>>),
        ReadErrors,
    ),
    security(("admin" = [])),
)]
async fn task_changes(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id: TaskId = parse_id(&id, "task")?;
    Ok(ok(state.store.attempt_changes(id).await?))
}

/// A task with what its page shows: its agent, attempts, latest verification results,
/// latest 50 log entries, exceptions, locks, the locks in the way of its files hint, and
/// why it waits.
pub(crate) async fn task_detail(state: &AppState, id: TaskId) -> ApiResult<TaskDetail> {
    let store = &state.store;
    let now = state.now();
    let task = store.get_task(id).await?;
    let agent = match task.assigned_agent_id {
        Some(agent) => Some(store.get_agent(agent).await?),
        None => None,
    };
    let attempts = store.list_attempts(id).await?;
    let dependencies = tasks_by_id(state, task.depends_on.iter().copied()).await?;
    let waiting = Waiting::of(&task, &dependencies, now);
    let verification_results = store.list_verification_results(id, 10).await?;
    let logs = store.list_logs(&LogQuery::for_task(id, 50)).await?.logs;
    let exceptions = store
        .list_exceptions(&ExceptionQuery {
            status: None,
            task_id: Some(id),
            limit: 20,
            ..ExceptionQuery::default()
        })
        .await?
        .items;
    let file_locks = store
        .list_locks(
            &LockQuery {
                task_id: Some(id),
                ..LockQuery::default()
            },
            now,
        )
        .await?;
    let conflicts = store
        .check(&task.files_hint, task.assigned_agent_id, now)
        .await?;
    let holders = agents_by_id(state, conflicts.iter().map(|c| c.held.agent_id)).await?;
    let locked_files_hint: Vec<LockedHint> = conflicts
        .into_iter()
        .map(|conflict| LockedHint {
            agent_name: holders
                .get(&conflict.held.agent_id)
                .and_then(|agent| agent.name.clone()),
            agent_id: conflict.held.agent_id,
            file_path: conflict.requested_path,
        })
        .collect();
    Ok(TaskDetail {
        assigned_agent: agent.map(|agent| AssignedAgent {
            id: agent.id,
            name: agent.name,
            status: agent.status,
            total_tokens_used: agent.total_tokens_used,
            last_activity_at: agent.last_activity_at,
        }),
        attempts,
        verification_results,
        logs,
        exceptions,
        file_locks,
        has_file_conflicts: !locked_files_hint.is_empty(),
        locked_files_hint,
        waiting,
        task,
    })
}

/// `PATCH /api/tasks/:id`: the editable fields, and the status changes a person may make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchTaskBody {
    #[schema(min_length = 1, max_length = 500, pattern = "[^ \t\r\n]")]
    title: Option<String>,
    #[schema(min_length = 1, max_length = 200_000, pattern = "[^ \t\r\n]")]
    description: Option<String>,
    #[schema(minimum = 0, maximum = 3)]
    priority: Option<u8>,
    risk_level: Option<RiskLevel>,
    #[schema(max_items = 200, value_type = Option<Vec<LockPath>>)]
    files_hint: Option<Vec<String>>,
    #[schema(minimum = 1, maximum = 20)]
    max_attempts: Option<u32>,
    estimated_complexity: Option<TaskComplexity>,
    status: Option<TaskStatus>,
    /// The tasks this one waits for, replacing the ones it had (a queued task only; `[]`
    /// releases it from them).
    #[schema(max_items = 50)]
    depends_on: Option<Vec<TaskId>>,
    /// The earliest time it may be claimed; `null` lets it be claimed at once (a queued
    /// task only).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    not_before: Option<Option<Timestamp>>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TaskWithAgent {
    #[serde(flatten)]
    task: Task,
    assigned_agent: Option<AgentRef>,
}

impl TaskWithAgent {
    async fn load(state: &AppState, task: Task) -> ApiResult<Self> {
        let assigned_agent = match task.assigned_agent_id {
            Some(id) => Some(AgentRef::from(&state.store.get_agent(id).await?)),
            None => None,
        };
        Ok(Self {
            task,
            assigned_agent,
        })
    }
}

#[utoipa::path(
    patch,
    path = "/api/tasks/{id}",
    tag = "tasks",
    summary = "Edit a task or change its status (cancel, requeue, reopen)",
    params(
        ("id" = Uuid, Path, description = "The task id"),
    ),
    request_body = PatchTaskBody,
    responses(
        (status = 200, description = "The task", body = Data<TaskWithAgent>),
        WriteErrors,
    ),
    security(("admin" = [])),
)]
async fn patch_task(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    Json(body): Json<PatchTaskBody>,
) -> ApiResult<HttpResponse> {
    let id: TaskId = parse_id(&id, "task")?;
    let edit = TaskEdit {
        title: body.title,
        description: body.description,
        priority: body.priority,
        risk_level: body.risk_level,
        files_hint: body.files_hint,
        max_attempts: body.max_attempts,
        estimated_complexity: body.estimated_complexity,
        depends_on: body.depends_on,
        not_before: body.not_before,
    };
    edit.validate()?;
    let now = state.now();
    let mut task = state.store.get_task(id).await?;
    if let Some(to) = body.status.filter(|to| *to != task.status) {
        let action = change::task_status_request(task.status, to)?;
        task = state.store.apply_task_action(id, action, None, now).await?;
    }
    if !edit.is_empty() {
        task = state.store.edit_task(id, edit, now).await?;
    }
    Ok(ok(TaskWithAgent::load(&state, task).await?))
}

#[derive(Debug, Serialize, ToSchema)]
struct Deleted {
    message: &'static str,
    id: TaskId,
}

#[utoipa::path(
    delete,
    path = "/api/tasks/{id}",
    tag = "tasks",
    summary = "Delete a QUEUED or CANCELLED task",
    params(
        ("id" = Uuid, Path, description = "The task id"),
    ),
    responses(
        (status = 200, description = "Deleted", body = Data<Deleted>),
        WriteErrors,
    ),
    security(("admin" = [])),
)]
async fn delete_task(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id: TaskId = parse_id(&id, "task")?;
    state.store.delete_task(id, state.now()).await?;
    Ok(ok(Deleted {
        message: "Task deleted successfully",
        id,
    }))
}

/// The body of `run`, `retry` and `auto-retry`: a directory on the server. Runners work
/// in their own worktrees, so it is accepted and not used.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WorkingDirBody {
    #[serde(rename = "workingDir")]
    _working_dir: Option<String>,
}

/// The body of `retry`: a directory on the server (accepted and not used, as for `run`)
/// and a note for the next attempts, which their prompt carries.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetryBody {
    #[serde(rename = "workingDir")]
    _working_dir: Option<String>,
    /// What the next attempts should do differently; at most 5,000 characters.
    #[schema(max_length = 5_000)]
    note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Requeued {
    /// No agent starts inside the server: a runner claims the task.
    agent_id: Option<AgentId>,
    task_id: TaskId,
    task: TaskWithAgent,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_info: Option<RetryInfo>,
    message: String,
}

#[utoipa::path(
    post,
    path = "/api/tasks/{id}/run",
    tag = "tasks",
    summary = "Queue a QUEUED or FAILED task for the next runner",
    params(
        ("id" = Uuid, Path, description = "The task id"),
    ),
    request_body = Option<WorkingDirBody>,
    responses(
        (status = 200, description = "Queued", body = Data<Requeued>),
        WriteErrors,
    ),
    security(("admin" = [])),
)]
async fn run_task(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    OptionalJson(_): OptionalJson<WorkingDirBody>,
) -> ApiResult<HttpResponse> {
    let id: TaskId = parse_id(&id, "task")?;
    let task = requeue_for_runners(&state, id).await?;
    requeued(&state, task, "queued", None).await
}

/// Queues a task for runners: a QUEUED task stays queued, a FAILED one goes back to the
/// queue; no agent starts inside the server.
pub(super) async fn requeue_for_runners(state: &AppState, id: TaskId) -> ApiResult<Task> {
    let task = state.store.get_task(id).await?;
    match change::run_request(&task)? {
        None => Ok(task),
        Some(action) => Ok(state
            .store
            .apply_task_action(id, action, None, state.now())
            .await?),
    }
}

#[utoipa::path(
    post,
    path = "/api/tasks/{id}/retry",
    tag = "tasks",
    summary = "Put a FAILED task back in the queue",
    params(
        ("id" = Uuid, Path, description = "The task id"),
    ),
    request_body = Option<RetryBody>,
    responses(
        (status = 200, description = "Queued", body = Data<Requeued>),
        WriteErrors,
    ),
    security(("admin" = [])),
)]
async fn retry_task(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    OptionalJson(body): OptionalJson<RetryBody>,
) -> ApiResult<HttpResponse> {
    let id: TaskId = parse_id(&id, "task")?;
    let task = state.store.get_task(id).await?;
    let note = body.and_then(|body| body.note);
    let retry = change::retry_request(&task, note.as_deref())?;
    let task = state
        .store
        .apply_task_action(id, retry, None, state.now())
        .await?;
    requeued(&state, task, "retrying", None).await
}

#[utoipa::path(
    post,
    path = "/api/tasks/{id}/auto-retry",
    tag = "tasks",
    summary = "Retry a FAILED task by the retry policy (delay through notBefore)",
    params(
        ("id" = Uuid, Path, description = "The task id"),
    ),
    request_body = Option<WorkingDirBody>,
    responses(
        (status = 200, description = "Scheduled", body = Data<Requeued>),
        WriteErrors,
    ),
    security(("admin" = [])),
)]
async fn auto_retry_task(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    OptionalJson(_): OptionalJson<WorkingDirBody>,
) -> ApiResult<HttpResponse> {
    let id: TaskId = parse_id(&id, "task")?;
    let (task, info) =
        retry::auto_retry(state.store.as_ref(), id, &state.retry_policy, state.now()).await?;
    requeued(&state, task, "retrying", Some(info)).await
}

async fn requeued(
    state: &AppState,
    task: Task,
    status: &'static str,
    retry_info: Option<RetryInfo>,
) -> ApiResult<HttpResponse> {
    let message = match &retry_info {
        Some(info) => format!(
            "Auto-retry scheduled (attempt {}/{}): a runner picks the task up from {}",
            info.attempt, info.max_attempts, info.not_before
        ),
        None => "Task queued: the next free runner picks it up".to_owned(),
    };
    Ok(ok(Requeued {
        agent_id: None,
        task_id: task.id,
        task: TaskWithAgent::load(state, task).await?,
        status,
        retry_info,
        message,
    }))
}
