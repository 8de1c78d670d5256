//! `/api/verify`: verification evidence per task. Runners verify in the task's worktree
//! and report with their completion; this route records evidence produced elsewhere (a CI
//! system, a person), or runs the checks in a directory on the server, limited to the
//! directories under the server's `--verify-root` paths.

use std::path::{Path, PathBuf};

use actix_web::{HttpResponse, web};
use orchestrator_core::ids::TaskId;
use orchestrator_core::lock::LockQuery;
use orchestrator_core::model::{
    NewVerificationResult, Task, TaskStatus, VerificationResult, VerificationStatus,
};
use orchestrator_core::store::StoreExt;
use orchestrator_core::verify::StageReport;
use orchestrator_verify::{PrepareError, Verification};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Data, ok};
use crate::auth::Admin;
use crate::error::{ApiError, ApiResult, ReadErrors, WriteErrors};
use crate::extract::{Json, Params, parse_id};
use crate::state::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/verify").route(web::post().to(verify)))
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
struct VerifyBody {
    task_id: TaskId,
    /// An absolute directory on the server, under one of its `--verify-root` paths, to
    /// run the checks in (its symlinks are resolved before the check).
    working_dir: Option<String>,
    /// What the directory's change is compared with: a commit, branch or `HEAD~n`
    /// (default `HEAD`, that is its uncommitted changes). The directory's
    /// `orchestrator.toml` is read at this commit.
    base_commit: Option<String>,
    /// Evidence produced elsewhere, recorded as given (instead of `workingDir`).
    verification: Option<NewVerificationResult>,
}

/// [`VerifyBody`] as documented: with exactly one of `verification` and `workingDir`.
struct VerifyRequest;

impl utoipa::PartialSchema for VerifyRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::Ref;
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder, Type};
        let given = |field: &str, kind: Type| {
            ObjectBuilder::new()
                .property(field, ObjectBuilder::new().schema_type(kind))
                .required(field)
        };
        AllOfBuilder::new()
            .item(Ref::from_schema_name(VerifyBody::name()))
            .item(
                OneOfBuilder::new()
                    .item(given("verification", Type::Object))
                    .item(given("workingDir", Type::String)),
            )
            .into()
    }
}

impl ToSchema for VerifyRequest {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            VerifyBody::name().into(),
            <VerifyBody as utoipa::PartialSchema>::schema(),
        ));
        VerifyBody::schemas(schemas);
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Recorded {
    verification_result: VerificationResult,
    task: VerifiedTask,
    /// What each check found, when the checks ran here.
    #[serde(skip_serializing_if = "Option::is_none")]
    stages: Option<Vec<StageReport>>,
}

#[utoipa::path(
    post,
    path = "/api/verify",
    tag = "verification",
    summary = "Verify a task's change in a server directory, or record evidence produced elsewhere",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "Recorded", body = Data<Recorded>),
        WriteErrors,
    ),
    security(("admin" = [])),
)]
async fn verify(
    _: Admin,
    state: web::Data<AppState>,
    Json(body): Json<VerifyBody>,
) -> ApiResult<HttpResponse> {
    let task = state.store.get_task(body.task_id).await?;
    let (verification, stages) = match (body.verification, body.working_dir) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either workingDir (to verify here) or verification (evidence produced \
                 elsewhere), not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "verification",
                "is required, or workingDir: send evidence produced elsewhere, or a \
                 directory under the server's --verify-root to verify in",
            ));
        }
        (Some(verification), None) => {
            check_verifiable(&task)?;
            (verification, None)
        }
        (None, Some(working_dir)) => {
            let dir = resolve_working_dir(&state.verify_roots, &working_dir)?;
            check_verifiable(&task)?;
            let base = body.base_commit.unwrap_or_else(|| "HEAD".to_owned());
            let (reports, result) = run_checks(&state, &task, dir, base).await?;
            (result, Some(reports))
        }
    };
    let result = state
        .store
        .record_verification(body.task_id, None, verification, state.now())
        .await?;
    let task = state.store.get_task(body.task_id).await?;
    Ok(ok(Recorded {
        verification_result: result,
        task: VerifiedTask::from(&task),
        stages,
    }))
}

fn check_verifiable(task: &Task) -> ApiResult<()> {
    if matches!(
        task.status,
        TaskStatus::InProgress | TaskStatus::Verifying | TaskStatus::Failed
    ) {
        Ok(())
    } else {
        Err(ApiError::conflict(format!(
            "Cannot verify task with status {}. Allowed: IN_PROGRESS, VERIFYING, FAILED",
            task.status
        )))
    }
}

/// `requested` with its symlinks resolved, if that lies under one of `roots`.
fn resolve_working_dir(roots: &[PathBuf], requested: &str) -> ApiResult<PathBuf> {
    if roots.is_empty() {
        return Err(ApiError::forbidden(
            "verifying in a server directory is off: start the server with --verify-root DIR \
             to allow directories under DIR",
        ));
    }
    let path = Path::new(requested);
    if !path.is_absolute() {
        return Err(ApiError::invalid("workingDir", "must be an absolute path"));
    }
    let canonical = std::fs::canonicalize(path)
        .map_err(|err| ApiError::invalid("workingDir", format!("cannot be resolved: {err}")))?;
    if !canonical.is_dir() {
        return Err(ApiError::invalid("workingDir", "is not a directory"));
    }
    if !roots.iter().any(|root| canonical.starts_with(root)) {
        let allowed: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(ApiError::forbidden(format!(
            "workingDir resolves to {}, which is outside the verify roots ({})",
            canonical.display(),
            allowed.join(", ")
        )));
    }
    Ok(canonical)
}

/// Runs the project's pipeline in `dir` against `base`, one verification at a time.
async fn run_checks(
    state: &AppState,
    task: &Task,
    dir: PathBuf,
    base: String,
) -> ApiResult<(Vec<StageReport>, NewVerificationResult)> {
    let locks = LockQuery {
        task_id: Some(task.id),
        ..LockQuery::default()
    };
    let locked_paths = state
        .store
        .list_locks(&locks, state.now())
        .await?
        .into_iter()
        .map(|lock| lock.file_path)
        .collect();
    let _slot = state
        .verify_slot
        .acquire()
        .await
        .map_err(ApiError::internal)?;
    let prepared = web::block(move || Verification::new().prepare(&dir, &base))
        .await
        .map_err(ApiError::internal)?
        .map_err(|err| match err {
            PrepareError::Change(err) => ApiError::invalid("baseCommit", err),
            PrepareError::Config(err) => ApiError::invalid("workingDir", err),
        })?;
    Ok(prepared
        .run(&task.title, &task.description, locked_paths)
        .await)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct VerificationSummary {
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
    summary: VerificationSummary,
}

#[utoipa::path(
    get,
    path = "/api/verify/{taskId}",
    tag = "verification",
    summary = "A task's verification results, newest attempt first",
    params(
        ("taskId" = Uuid, Path, description = "The task id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 50, description = "Default 10"),
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
    let summary = VerificationSummary {
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
