//! `/api/verify`: verification evidence per task. Verification itself runs on runners,
//! in the task's worktree; this route records evidence produced elsewhere (a CI system,
//! a person) and lists what was recorded.

use actix_web::{HttpResponse, web};
use orchestrator_core::ids::TaskId;
use orchestrator_core::model::{
    NewVerificationResult, Task, TaskStatus, VerificationResult, VerificationStatus,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Data, ok};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ReadErrors, WriteErrors};
use crate::extract::{Json, Params, parse_id};
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/verify").route(web::post().to(record)))
        .service(web::resource("/verify/{taskId}").route(web::get().to(results)));
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct VerifiedTask {
    id: TaskId,
    title: String,
    status: TaskStatus,
    verification_status: VerificationStatus,
    verification_attempts: u32,
}

impl From<&Task> for VerifiedTask {
    fn from(task: &Task) -> Self {
        Self {
            id: task.id,
            title: task.title.clone(),
            status: task.status,
            verification_status: task.verification_status,
            verification_attempts: task.verification_attempts,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RecordBody {
    task_id: TaskId,
    /// The original's server directory to verify in; verification runs on runners.
    #[serde(rename = "workingDir")]
    _working_dir: Option<String>,
    verification: Option<NewVerificationResult>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Recorded {
    verification_result: VerificationResult,
    task: VerifiedTask,
}

#[utoipa::path(
    post,
    path = "/api/verify",
    tag = "verification",
    summary = "Record verification evidence produced elsewhere",
    request_body = RecordBody,
    responses(
        (status = 200, description = "Recorded", body = Data<Recorded>),
        WriteErrors,
    ),
    security(("admin" = [])),
)]
async fn record(
    _: Admin,
    state: web::Data<AppState>,
    Json(body): Json<RecordBody>,
) -> ApiResult<HttpResponse> {
    let Some(verification) = body.verification else {
        return Err(ApiError::invalid(
            "verification",
            "is required: verification runs on the runner in the task's worktree; send \
             evidence produced elsewhere here, or retry the task to have a runner verify it",
        ));
    };
    let task = state.store.get_task(body.task_id).await?;
    if !matches!(
        task.status,
        TaskStatus::InProgress | TaskStatus::Verifying | TaskStatus::Failed
    ) {
        return Err(ApiError::conflict(format!(
            "Cannot verify task with status {}. Allowed: IN_PROGRESS, VERIFYING, FAILED",
            task.status
        )));
    }
    let result = state
        .store
        .record_verification(body.task_id, verification, state.now())
        .await?;
    let task = state.store.get_task(body.task_id).await?;
    Ok(ok(Recorded {
        verification_result: result,
        task: VerifiedTask::from(&task),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Summary {
    total_attempts: usize,
    passed_count: usize,
    failed_count: usize,
    latest_passed: Option<bool>,
    latest_confidence: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Results {
    task: VerifiedTask,
    results: Vec<VerificationResult>,
    summary: Summary,
}

#[utoipa::path(
    get,
    path = "/api/verify/{taskId}",
    tag = "verification",
    summary = "A task's verification results, newest attempt first",
    params(
        ("taskId" = String, Path, description = "The task id (UUID)"),
        ("limit" = Option<u32>, Query, description = "1-50, default 10"),
    ),
    responses(
        (status = 200, description = "Results", body = Data<Results>),
        ReadErrors,
    ),
    security(("admin" = [])),
)]
async fn results(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let id: TaskId = parse_id(&id, "task")?;
    let limit = params.int("limit", 1..=50, 10)?;
    let task = state.store.get_task(id).await?;
    let results = state.store.list_verification_results(id, limit).await?;
    let passed_count = results.iter().filter(|r| r.passed).count();
    let summary = Summary {
        total_attempts: results.len(),
        passed_count,
        failed_count: results.len() - passed_count,
        latest_passed: results.first().map(|r| r.passed),
        latest_confidence: results.first().map(|r| r.confidence_score),
    };
    Ok(ok(Results {
        task: VerifiedTask::from(&task),
        results,
        summary,
    }))
}
