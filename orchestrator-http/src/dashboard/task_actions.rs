//! What a person may do to a task from the dashboard: cancel it, retry it, requeue it
//! (a cancelled task back to the queue) or delete it. Each is a form post carrying the
//! session's CSRF token, allowed by the same rules as the API; the page it came from
//! shows what happened.

use actix_web::{HttpRequest, HttpResponse, web};
use orchestrator_core::change::{self, TaskAction};
use orchestrator_core::ids::TaskId;
use orchestrator_core::model::{Task, TaskStatus};
use orchestrator_core::retry;
use serde::Deserialize;

use super::{Notice, Viewer, back_to, explain, not_found, page_at, see_other_with};
use crate::state::AppState;
use orchestrator_core::store::StoreExt;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page_at("/tasks/{id}/{command}").route(web::post().to(act)));
}

/// A change of a task's state that a person asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TaskCommand {
    Cancel,
    Retry,
    /// Retry by the retry policy: after its delay, if the policy allows another try.
    AutoRetry,
    Requeue,
    Delete,
}

impl TaskCommand {
    const ALL: [Self; 5] = [
        Self::Cancel,
        Self::Retry,
        Self::AutoRetry,
        Self::Requeue,
        Self::Delete,
    ];

    /// The last segment of the command's address.
    pub(super) fn slug(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Retry => "retry",
            Self::AutoRetry => "auto-retry",
            Self::Requeue => "requeue",
            Self::Delete => "delete",
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Cancel => "Cancel",
            Self::Retry => "Retry",
            Self::AutoRetry => "Retry by policy",
            Self::Requeue => "Requeue",
            Self::Delete => "Delete",
        }
    }

    /// Whether the command destroys or stops work, and its button says so.
    pub(super) fn is_destructive(self) -> bool {
        matches!(self, Self::Cancel | Self::Delete)
    }

    fn done(self) -> &'static str {
        match self {
            Self::Cancel => "Task cancelled.",
            Self::Retry => "Task queued again for the next free runner.",
            Self::AutoRetry => "Task queued again after the retry policy's delay.",
            Self::Requeue => "Task back in the queue.",
            Self::Delete => "Task deleted.",
        }
    }

    /// Whether `task`'s state allows the command now. The store checks again when it
    /// is carried out, so a page a moment old cannot do what is no longer allowed.
    fn allows(self, task: &Task) -> bool {
        match self {
            Self::Cancel => change::task_status_request(task.status, TaskStatus::Cancelled).is_ok(),
            Self::Retry | Self::AutoRetry => change::retry_request(task, None).is_ok(),
            Self::Requeue => requeue_action(task).is_ok(),
            Self::Delete => change::check_deletable(task, &[]).is_ok(),
        }
    }
}

/// The commands `task`'s state allows now.
pub(super) fn allowed_commands(task: &Task) -> Vec<TaskCommand> {
    TaskCommand::ALL
        .into_iter()
        .filter(|command| command.allows(task))
        .collect()
}

/// Whether `task`'s fields may be edited now: not while an agent works on it.
pub(super) fn editable(task: &Task) -> bool {
    !task.status.is_running()
}

/// Requeueing takes a cancelled task back to the queue; a failed one is retried.
fn requeue_action(task: &Task) -> orchestrator_core::Result<TaskAction> {
    match change::task_status_request(task.status, TaskStatus::Queued)? {
        TaskAction::Reopen => Ok(TaskAction::Reopen),
        _ => Err(orchestrator_core::Error::conflict(format!(
            "only a cancelled task is requeued; this one is {} (a failed task is retried)",
            task.status
        ))),
    }
}

#[derive(Debug, Deserialize)]
struct CommandForm {
    #[serde(default)]
    csrf: String,
    /// The page to go back to.
    #[serde(default)]
    back: String,
}

/// `POST /tasks/:id/:command`.
async fn act(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CommandForm>,
) -> HttpResponse {
    let viewer = match Viewer::of_form(&req, &state, &form.csrf) {
        Ok(viewer) => viewer,
        Err(refusal) => return refusal.response(),
    };
    let (raw_id, slug) = path.into_inner();
    let command = TaskCommand::ALL
        .into_iter()
        .find(|command| command.slug() == slug);
    let (Some(command), Ok(id)) = (command, raw_id.parse::<TaskId>()) else {
        return not_found(&state, viewer, "There is no such task or command.");
    };
    let task_page = format!("/tasks/{id}");
    let back = back_to(&form.back, &task_page);
    match carry_out(&state, command, id).await {
        Ok(()) => {
            // A deleted task's page is gone; its queue is where to go.
            let back = if command == TaskCommand::Delete && back.starts_with(&task_page) {
                "/tasks".to_owned()
            } else {
                back
            };
            see_other_with(&state, &back, &Notice::done(command.done()))
        }
        Err(err) => {
            let (message, _) = explain(err);
            let text = format!(
                "Could not {} the task: {message}",
                command.label().to_lowercase()
            );
            see_other_with(&state, &back, &Notice::problem(text))
        }
    }
}

async fn carry_out(
    state: &AppState,
    command: TaskCommand,
    id: TaskId,
) -> orchestrator_core::Result<()> {
    let now = state.now();
    let action = match command {
        TaskCommand::Delete => return state.store.delete_task(id, now).await,
        TaskCommand::AutoRetry => {
            retry::auto_retry(state.store.as_ref(), id, &state.retry_policy, now).await?;
            return Ok(());
        }
        TaskCommand::Cancel => {
            let task = state.store.get_task(id).await?;
            change::task_status_request(task.status, TaskStatus::Cancelled)?
        }
        TaskCommand::Retry => change::retry_request(&state.store.get_task(id).await?, None)?,
        TaskCommand::Requeue => requeue_action(&state.store.get_task(id).await?)?,
    };
    state.store.apply_task_action(id, action, None, now).await?;
    Ok(())
}
