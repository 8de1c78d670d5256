//! `GET /tasks/:id`: one task. Its state, priority and risk; description, files hint
//! with the locks in its way, and dependencies; the attempt timeline; verification
//! results with each failure's place; the latest transcript; its exceptions.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use orchestrator_core::ids::{AgentId, RunnerSessionId, TaskId};
use orchestrator_core::model::{LogQuery, Task, TaskAttempt, VerificationResult};
use orchestrator_core::verify::StageStatus;

use super::diff::AttemptDiff;
use super::task_actions::{TaskCommand, allowed_commands, editable};
use super::task_form::find_task;
use super::transcript::Transcript;
use super::{
    PartViewer, Section, Viewer, agent_labels, cached_part, fragment_response, not_found, page,
};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::Params;
use crate::routes::tasks::{TaskDetail, task_detail};
use crate::state::AppState;

/// One attempt in the timeline.
struct AttemptRow {
    number: u32,
    agent_id: String,
    agent: String,
    /// The runner session's name (`local` for the server's own runner).
    runner: String,
    /// The agent backend and model, as the runner reported them.
    backend: String,
    started: String,
    ended: Option<String>,
    outcome: &'static str,
    reason: Option<String>,
    commit: Option<String>,
    tokens: u64,
    cost: String,
}

impl AttemptRow {
    fn new(attempt: &TaskAttempt, names: &AttemptNames) -> Self {
        let usage = &attempt.usage;
        Self {
            number: attempt.attempt_number,
            agent_id: attempt.agent_id.to_string(),
            agent: names
                .agents
                .get(&attempt.agent_id)
                .cloned()
                .unwrap_or_else(|| attempt.agent_id.to_string()[..8].to_owned()),
            runner: attempt
                .runner_session_id
                .and_then(|id| names.runners.get(&id).cloned())
                .unwrap_or_else(|| "local".to_owned()),
            backend: match (&attempt.backend, &attempt.model) {
                (Some(backend), Some(model)) => format!("{backend} · {model}"),
                (Some(backend), None) => backend.clone(),
                (None, Some(model)) => model.clone(),
                (None, None) => String::new(),
            },
            started: attempt.started_at.to_string(),
            ended: attempt.ended_at.map(|at| at.to_string()),
            outcome: attempt.outcome.as_str(),
            reason: attempt.failure_reason.clone(),
            commit: attempt
                .commit_sha
                .as_ref()
                .map(|sha| sha.chars().take(12).collect()),
            tokens: usage.input_tokens + usage.output_tokens,
            cost: format!("${:.2}", usage.cost_usd),
        }
    }
}

/// A verification result of one attempt.
struct Verification {
    attempt: u32,
    verdict: &'static str,
    confidence: String,
    /// Each stage and how it went (with the reason a check did not run).
    stages: Vec<(String, String)>,
    /// Each failure as `file:line`, its kind and message.
    failures: Vec<(Option<String>, &'static str, String)>,
    at: String,
}

impl From<&VerificationResult> for Verification {
    fn from(result: &VerificationResult) -> Self {
        Self {
            attempt: result.attempt_number,
            verdict: if result.unverified {
                "unverified"
            } else if result.passed {
                "passed"
            } else {
                "failed"
            },
            confidence: format!("{:.0}%", result.confidence_score * 100.0),
            stages: result
                .stages
                .iter()
                .map(|stage| {
                    let status = match &stage.status {
                        StageStatus::Passed => "passed".to_owned(),
                        StageStatus::Failed => "failed".to_owned(),
                        StageStatus::Skipped { reason } => format!("skipped ({reason})"),
                        StageStatus::NotApplicable { reason } => {
                            format!("not applicable ({reason})")
                        }
                    };
                    (stage.stage.clone(), status)
                })
                .collect(),
            failures: result
                .failures
                .iter()
                .map(|failure| {
                    let place = failure.file.as_ref().map(|file| match failure.line {
                        Some(line) => format!("{file}:{line}"),
                        None => file.clone(),
                    });
                    (place, failure.kind.as_str(), failure.message.clone())
                })
                .collect(),
            at: result.created_at.to_string(),
        }
    }
}

/// A task's page around its live part.
#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    section: Section,
    viewer: Viewer,
    id: String,
    title: String,
    /// The address of the live part, with the page's query.
    fragment: String,
    /// The rendered [`TaskLive`].
    live: String,
}

/// Everything a task's page shows of the task, rendered again after events about it.
#[derive(Template)]
#[template(path = "task_live.html")]
struct TaskLive {
    /// The session's form token, for the commands.
    csrf: String,
    id: String,
    title: String,
    status: &'static str,
    priority: u8,
    risk: &'static str,
    description: String,
    files_hint: Vec<String>,
    /// Paths of the files hint that other agents' locks cover, with their holder.
    locked: Vec<(String, String)>,
    /// Dependencies as (id, title, status) where known.
    dependencies: Vec<(String, String, String)>,
    /// The tasks waiting for this one, as (id, title, status).
    dependents: Vec<(String, String, String)>,
    not_before: Option<String>,
    /// The agent working on it, as (id, name).
    agent: Option<(String, String)>,
    branch: Option<String>,
    attempts_used: u32,
    max_attempts: u32,
    attempts: Vec<AttemptRow>,
    verifications: Vec<Verification>,
    transcript: Transcript,
    /// Each attempt's change, latest first.
    diffs: Vec<AttemptDiff>,
    /// Each exception as (id, title, severity, status, last raised).
    exceptions: Vec<(String, String, &'static str, &'static str, String)>,
    created: String,
    updated: String,
    /// What the task's state allows now.
    commands: Vec<TaskCommand>,
    editable: bool,
}

impl TaskLive {
    fn new(csrf: String, detail: TaskDetail, around: Around) -> Self {
        let Around {
            names,
            dependencies,
            dependents,
            diffs,
            transcript,
        } = around;
        let task = &detail.task;
        let waiting = detail.waiting.as_ref();
        let links = |tasks: Vec<Task>| -> Vec<(String, String, String)> {
            tasks
                .iter()
                .map(|task| {
                    (
                        task.id.to_string(),
                        task.title.clone(),
                        task.status.to_string(),
                    )
                })
                .collect()
        };
        Self {
            csrf,
            id: task.id.to_string(),
            title: task.title.clone(),
            status: task.status.as_str(),
            priority: task.priority,
            risk: task.risk_level.as_str(),
            description: task.description.clone(),
            files_hint: task.files_hint.clone(),
            locked: detail
                .locked_files_hint
                .iter()
                .map(|hint| {
                    let holder = hint
                        .agent_name
                        .clone()
                        .unwrap_or_else(|| hint.agent_id.to_string()[..8].to_owned());
                    (hint.file_path.clone(), holder)
                })
                .collect(),
            dependencies: links(dependencies),
            dependents: links(dependents),
            not_before: waiting.and_then(|w| w.not_before).map(|at| at.to_string()),
            agent: detail.assigned_agent.as_ref().map(|agent| {
                let id = agent.id.to_string();
                let name = agent.name.clone().unwrap_or_else(|| id[..8].to_owned());
                (id, name)
            }),
            branch: task.branch_name.clone(),
            attempts_used: task.attempts_used,
            max_attempts: task.max_attempts,
            attempts: detail
                .attempts
                .iter()
                .rev()
                .map(|attempt| AttemptRow::new(attempt, &names))
                .collect(),
            verifications: detail
                .verification_results
                .iter()
                .map(Verification::from)
                .collect(),
            transcript,
            diffs,
            exceptions: detail
                .exceptions
                .iter()
                .map(|e| {
                    (
                        e.id.to_string(),
                        e.title.clone(),
                        e.severity.as_str(),
                        e.status.as_str(),
                        e.last_occurred_at.to_string(),
                    )
                })
                .collect(),
            created: task.created_at.to_string(),
            updated: task.updated_at.to_string(),
            commands: allowed_commands(task),
            editable: editable(task),
        }
    }
}

impl TaskLive {
    /// The page's own address, where its forms come back to.
    fn page_path(&self) -> String {
        format!("/tasks/{}", self.id)
    }
}

/// Most tasks waiting for this one that the page names.
const MAX_DEPENDENTS_SHOWN: usize = 100;

/// The names of the agents and runner sessions that ran a task's attempts.
#[derive(Default)]
struct AttemptNames {
    agents: HashMap<AgentId, String>,
    runners: HashMap<RunnerSessionId, String>,
}

impl AttemptNames {
    async fn load(state: &AppState, attempts: &[TaskAttempt]) -> ApiResult<Self> {
        let mut runners = HashMap::new();
        for id in attempts.iter().filter_map(|a| a.runner_session_id) {
            if let Entry::Vacant(slot) = runners.entry(id) {
                slot.insert(state.store.get_runner_session(id).await?.name);
            }
        }
        Ok(Self {
            agents: agent_labels(state, attempts.iter().map(|a| a.agent_id)).await?,
            runners,
        })
    }
}

/// What the page shows beside the task's detail.
struct Around {
    /// Who ran the attempts.
    names: AttemptNames,
    dependencies: Vec<Task>,
    /// The tasks that wait for this one.
    dependents: Vec<Task>,
    /// Each attempt's change, latest first.
    diffs: Vec<AttemptDiff>,
    transcript: Transcript,
}

impl Around {
    async fn load(
        state: &AppState,
        detail: &TaskDetail,
        params: &Params,
        path: &str,
    ) -> ApiResult<Self> {
        let id = detail.task.id;
        let mut dependents = state.store.dependents(id).await?;
        dependents.truncate(MAX_DEPENDENTS_SHOWN);
        Ok(Self {
            names: AttemptNames::load(state, &detail.attempts).await?,
            dependencies: state.store.get_tasks(&detail.task.depends_on).await?,
            dependents: state.store.get_tasks(&dependents).await?,
            diffs: state
                .store
                .attempt_changes(id)
                .await?
                .iter()
                .rev()
                .map(AttemptDiff::from)
                .collect(),
            transcript: Transcript::load(state, LogQuery::for_task(id, 1), params, path).await?,
        })
    }
}

/// The live part of task `id`'s page (`query` is the page's query, which `params`
/// parse), rendered once per commit.
async fn task_live(
    state: &AppState,
    csrf: &str,
    id: TaskId,
    query: &str,
    params: &Params,
) -> ApiResult<String> {
    cached_part(state, format!("task:{csrf}:{id}?{query}"), || async {
        let detail = task_detail(state, id).await?;
        let around = Around::load(state, &detail, params, &format!("/tasks/{id}")).await?;
        Ok(TaskLive::new(csrf.to_owned(), detail, around))
    })
    .await
}

/// The answer when a task cannot be shown: 404 for one that does not exist (or an id
/// that names none), the error itself otherwise.
fn missing_task(state: &AppState, viewer: Viewer, err: Option<ApiError>) -> HttpResponse {
    match err {
        Some(err) if err.code != ErrorCode::NotFound => {
            actix_web::ResponseError::error_response(&err)
        }
        _ => not_found(
            state,
            viewer,
            "No task has this id; it may have been deleted.",
        ),
    }
}

pub(super) async fn task(
    viewer: Viewer,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    params: Params,
) -> HttpResponse {
    let task = match find_task(&state, &viewer, &id).await {
        Ok(task) => task,
        Err(missing) => return missing,
    };
    let query = req.query_string();
    match task_live(&state, &viewer.csrf, task.id, query, &params).await {
        Ok(live) => {
            let id = task.id;
            let template = TaskPage {
                section: Section::Board,
                viewer: viewer.clone(),
                id: id.to_string(),
                title: task.title,
                fragment: match query {
                    "" => format!("/fragments/tasks/{id}"),
                    query => format!("/fragments/tasks/{id}?{query}"),
                },
                live,
            };
            page(&state, &viewer, StatusCode::OK, &template)
        }
        Err(err) => missing_task(&state, viewer, Some(err)),
    }
}

/// `GET /fragments/tasks/:id`: the live part of a task's page; 404 once the task is gone.
pub(super) async fn task_fragment(
    PartViewer(viewer): PartViewer,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    params: Params,
) -> HttpResponse {
    let Ok(id) = id.parse::<TaskId>() else {
        return missing_task(&state, viewer, None);
    };
    match task_live(&state, &viewer.csrf, id, req.query_string(), &params).await {
        Ok(live) => fragment_response(live),
        Err(err) => missing_task(&state, viewer, Some(err)),
    }
}
