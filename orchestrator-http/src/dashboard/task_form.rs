//! Creating and editing tasks: the task form (every field of a new task: dependencies,
//! risk, files hint, attempts, not-before time, complexity, idempotency key), the same
//! form filled in to edit a task, and batch creation from pasted JSON lines. A form that
//! is refused comes back with everything typed in it and the problem at its field.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use orchestrator_core::Timestamp;
use orchestrator_core::ids::TaskId;
use orchestrator_core::model::{
    MAX_BATCH_SIZE, NewTask, RiskLevel, Task, TaskComplexity, TaskEdit, TaskStatus,
};
use serde::Deserialize;

use super::task_actions::editable;
use super::{
    Notice, Section, Viewer, back_to, explain, found_or_404, page, page_at, see_other_with,
};
use crate::extract::Params;
use crate::state::AppState;
use orchestrator_core::store::StoreExt;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        page_at("/tasks/new")
            .route(web::get().to(new_task_page))
            .route(web::post().to(create_task)),
    )
    .service(
        page_at("/tasks/batch")
            .route(web::get().to(batch_page))
            .route(web::post().to(create_batch)),
    )
    .service(
        page_at("/tasks/{id}/edit")
            .route(web::get().to(edit_task_page))
            .route(web::post().to(edit_task)),
    );
}

/// The task form's fields as typed, named as the API names them so that an error's
/// field points at its input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct TaskFields {
    pub(super) title: String,
    pub(super) description: String,
    pub(super) priority: String,
    pub(super) risk_level: String,
    pub(super) max_attempts: String,
    /// One path per line.
    pub(super) files_hint: String,
    /// Task ids, one per line (or separated by spaces or commas).
    pub(super) depends_on: String,
    /// A `datetime-local` value, in the zone `utcOffset` states.
    pub(super) not_before: String,
    /// Minutes east of UTC of `notBefore`; the page's script sets it, without it UTC.
    pub(super) utc_offset: String,
    pub(super) estimated_complexity: String,
    pub(super) idempotency_key: String,
}

/// A form field and what is wrong with it.
type Problem = (String, Option<String>);

fn field_problem(field: &str, message: impl Into<String>) -> Problem {
    (
        format!("{field}: {}", message.into()),
        Some(field.to_owned()),
    )
}

impl TaskFields {
    /// An empty form with the defaults of a new task.
    pub(super) fn defaults() -> Self {
        Self {
            priority: orchestrator_core::model::DEFAULT_PRIORITY.to_string(),
            risk_level: RiskLevel::Medium.as_str().to_owned(),
            max_attempts: orchestrator_core::model::DEFAULT_MAX_ATTEMPTS.to_string(),
            utc_offset: "0".to_owned(),
            ..Self::default()
        }
    }

    /// The form filled in with `task`'s fields (its not-before time in UTC).
    fn of(task: &Task) -> Self {
        Self {
            title: task.title.clone(),
            description: task.description.clone(),
            priority: task.priority.to_string(),
            risk_level: task.risk_level.as_str().to_owned(),
            max_attempts: task.max_attempts.to_string(),
            files_hint: task.files_hint.join("\n"),
            depends_on: ids_text(&task.depends_on),
            not_before: task
                .not_before
                .map(|at| at.as_datetime().format("%Y-%m-%dT%H:%M").to_string())
                .unwrap_or_default(),
            utc_offset: "0".to_owned(),
            estimated_complexity: task
                .estimated_complexity
                .map(|c| c.as_str().to_owned())
                .unwrap_or_default(),
            idempotency_key: task.idempotency_key.clone().unwrap_or_default(),
        }
    }

    fn priority(&self) -> Result<u8, Problem> {
        self.priority
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= 3)
            .ok_or_else(|| field_problem("priority", "choose 0 (urgent) to 3 (low)"))
    }

    fn risk_level(&self) -> Result<RiskLevel, Problem> {
        self.risk_level.parse().map_err(explain)
    }

    fn max_attempts(&self) -> Result<u32, Problem> {
        self.max_attempts
            .trim()
            .parse::<u32>()
            .map_err(|_| field_problem("maxAttempts", "a whole number from 1 to 20"))
    }

    fn files_hint(&self) -> Vec<String> {
        self.files_hint
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn depends_on(&self) -> Result<Vec<TaskId>, Problem> {
        self.depends_on
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|word| !word.is_empty())
            .map(|word| {
                word.parse::<TaskId>().map_err(|_| {
                    field_problem(
                        "dependsOn",
                        format!(
                            "{word:?} is not a task id; paste whole ids (36 characters, as a \
                             task's page shows them), one per line"
                        ),
                    )
                })
            })
            .collect()
    }

    fn not_before(&self) -> Result<Option<Timestamp>, Problem> {
        let local = self.not_before.trim();
        if local.is_empty() {
            return Ok(None);
        }
        let offset: i32 = self.utc_offset.trim().parse().unwrap_or(0);
        if offset.abs() > 18 * 60 {
            return Err(field_problem(
                "notBefore",
                "the time zone offset is out of range",
            ));
        }
        let seconds = if local.len() == 16 { ":00" } else { "" };
        let sign = if offset < 0 { '-' } else { '+' };
        let (hours, minutes) = (offset.abs() / 60, offset.abs() % 60);
        format!("{local}{seconds}{sign}{hours:02}:{minutes:02}")
            .parse::<Timestamp>()
            .map(Some)
            .map_err(|_| {
                field_problem(
                    "notBefore",
                    format!("{local:?} is not a date and time such as 2026-12-31T18:30"),
                )
            })
    }

    fn estimated_complexity(&self) -> Result<Option<TaskComplexity>, Problem> {
        match self.estimated_complexity.trim() {
            "" => Ok(None),
            text => text.parse().map(Some).map_err(explain),
        }
    }

    /// The new task the form describes.
    fn new_task(&self) -> Result<NewTask, Problem> {
        let key = self.idempotency_key.trim();
        let task = NewTask {
            title: self.title.clone(),
            description: self.description.clone(),
            priority: self.priority()?,
            risk_level: self.risk_level()?,
            files_hint: self.files_hint(),
            depends_on: self.depends_on()?,
            idempotency_key: (!key.is_empty()).then(|| key.to_owned()),
            max_attempts: self.max_attempts()?,
            not_before: self.not_before()?,
            estimated_complexity: self.estimated_complexity()?,
        };
        task.validate().map_err(explain)?;
        Ok(task)
    }

    /// The edit that makes `task` what the form says: only the fields that differ, so a
    /// task that no longer waits is not refused for its unchanged dependencies.
    fn edit_of(&self, task: &Task) -> Result<TaskEdit, Problem> {
        // A task that is not queued shows no dependencies or time to edit.
        let waits = task.status == TaskStatus::Queued;
        let depends_on = if waits {
            let mut ids = self.depends_on()?;
            ids.sort();
            ids.dedup();
            differing(ids, &task.depends_on)
        } else {
            None
        };
        let not_before = if waits {
            differing(self.not_before()?, &task.not_before)
        } else {
            None
        };
        let edit = TaskEdit {
            title: differing(self.title.clone(), &task.title),
            description: differing(self.description.clone(), &task.description),
            priority: differing(self.priority()?, &task.priority),
            risk_level: differing(self.risk_level()?, &task.risk_level),
            files_hint: differing(self.files_hint(), &task.files_hint),
            max_attempts: differing(self.max_attempts()?, &task.max_attempts),
            estimated_complexity: self
                .estimated_complexity()?
                .filter(|c| Some(*c) != task.estimated_complexity),
            depends_on,
            not_before,
        };
        edit.validate().map_err(explain)?;
        Ok(edit)
    }
}

/// `value` if it differs from `current`.
fn differing<T: PartialEq>(value: T, current: &T) -> Option<T> {
    (value != *current).then_some(value)
}

fn ids_text(ids: &[TaskId]) -> String {
    ids.iter()
        .map(TaskId::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The task form as a page or a dialog draws it.
pub(super) struct TaskForm {
    /// Where the form posts.
    pub(super) action: String,
    pub(super) submit: &'static str,
    pub(super) fields: TaskFields,
    /// What was wrong when it was sent last.
    pub(super) problem: Option<String>,
    /// The field the problem is about.
    pub(super) field: Option<String>,
    /// A new task (with an idempotency key), not an edit.
    pub(super) creating: bool,
    /// Whether dependencies and the not-before time may change: a queued task's only.
    pub(super) waits_editable: bool,
    /// The page to go to afterwards.
    pub(super) back: String,
}

impl TaskForm {
    /// The empty form for a new task, going back to `back` once it is queued.
    pub(super) fn create(back: &str) -> Self {
        Self {
            action: "/tasks/new".to_owned(),
            submit: "Queue task",
            fields: TaskFields::defaults(),
            problem: None,
            field: None,
            creating: true,
            waits_editable: true,
            back: back.to_owned(),
        }
    }

    fn edit(task: &Task, back: &str) -> Self {
        Self {
            action: format!("/tasks/{}/edit", task.id),
            submit: "Save changes",
            fields: TaskFields::of(task),
            problem: None,
            field: None,
            creating: false,
            waits_editable: task.status == TaskStatus::Queued,
            back: back.to_owned(),
        }
    }

    fn refused(self, fields: TaskFields, (problem, field): Problem) -> Self {
        Self {
            fields,
            problem: Some(problem),
            field,
            ..self
        }
    }

    /// Whether the last problem was about `field`.
    pub(super) fn invalid(&self, field: &str) -> bool {
        self.field.as_deref() == Some(field)
    }

    pub(super) fn priorities(&self) -> [(&'static str, &'static str); 4] {
        [
            ("0", "0 · urgent"),
            ("1", "1 · high"),
            ("2", "2 · normal"),
            ("3", "3 · low"),
        ]
    }

    pub(super) fn risks(&self) -> &'static [RiskLevel] {
        RiskLevel::ALL
    }

    pub(super) fn complexities(&self) -> &'static [TaskComplexity] {
        TaskComplexity::ALL
    }
}

#[derive(Template)]
#[template(path = "task_form.html")]
struct TaskFormPage {
    section: Section,
    viewer: Viewer,
    heading: String,
    form: TaskForm,
}

fn form_page(
    state: &AppState,
    viewer: Viewer,
    status: StatusCode,
    heading: String,
    form: TaskForm,
) -> HttpResponse {
    let template = TaskFormPage {
        section: Section::Queue,
        viewer: viewer.clone(),
        heading,
        form,
    };
    page(state, &viewer, status, &template)
}

/// `GET /tasks/new`: the form on a page of its own (the queue and the board open it as
/// a dialog).
async fn new_task_page(viewer: Viewer, state: web::Data<AppState>, params: Params) -> HttpResponse {
    let back = back_to(params.text("back").unwrap_or_default(), "");
    form_page(
        &state,
        viewer,
        StatusCode::OK,
        "New task".to_owned(),
        TaskForm::create(&back),
    )
}

#[derive(Debug, Deserialize)]
struct Posted<T> {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: String,
    #[serde(flatten)]
    fields: T,
}

/// `POST /tasks/new`: queues the task and goes to the page the form names, or to the
/// new task's page.
async fn create_task(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<Posted<TaskFields>>,
) -> HttpResponse {
    let Posted { csrf, back, fields } = form.into_inner();
    let viewer = match Viewer::of_form(&req, &state, &csrf) {
        Ok(viewer) => viewer,
        Err(refusal) => return refusal.response(),
    };
    let created = match fields.new_task() {
        Ok(new) => state
            .store
            .create_task(new, state.now())
            .await
            .map_err(explain),
        Err(problem) => Err(problem),
    };
    match created {
        Ok(outcome) => {
            let task = outcome.value;
            let notice = if outcome.created {
                format!("Queued “{}”.", task.title)
            } else {
                format!(
                    "“{}” was queued before with this idempotency key.",
                    task.title
                )
            };
            let target = back_to(&back, &format!("/tasks/{}", task.id));
            see_other_with(&state, &target, &Notice::done(notice))
        }
        Err(problem) => form_page(
            &state,
            viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "New task".to_owned(),
            TaskForm::create(&back).refused(fields, problem),
        ),
    }
}

/// The task `raw_id` names, or the page that says why there is none.
pub(super) async fn find_task(
    state: &AppState,
    viewer: &Viewer,
    raw_id: &str,
) -> Result<Task, HttpResponse> {
    found_or_404(
        state,
        viewer,
        raw_id,
        "No task has this id; it may have been deleted.",
        |id: TaskId| state.store.get_task(id),
    )
    .await
}

fn edit_heading(task: &Task) -> String {
    format!("Edit “{}”", task.title)
}

/// `GET /tasks/:id/edit`: the task's fields in the form.
async fn edit_task_page(
    viewer: Viewer,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    let task = match find_task(&state, &viewer, &id).await {
        Ok(task) => task,
        Err(missing) => return missing,
    };
    let back = format!("/tasks/{}", task.id);
    if !editable(&task) {
        return see_other_with(
            &state,
            &back,
            &Notice::problem(format!(
                "The task is {}; its fields cannot change while an agent works on it.",
                task.status
            )),
        );
    }
    form_page(
        &state,
        viewer,
        StatusCode::OK,
        edit_heading(&task),
        TaskForm::edit(&task, &back),
    )
}

/// `POST /tasks/:id/edit`: saves what changed and goes back to the task's page.
async fn edit_task(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: web::Form<Posted<TaskFields>>,
) -> HttpResponse {
    let Posted { csrf, back, fields } = form.into_inner();
    let viewer = match Viewer::of_form(&req, &state, &csrf) {
        Ok(viewer) => viewer,
        Err(refusal) => return refusal.response(),
    };
    let task = match find_task(&state, &viewer, &id).await {
        Ok(task) => task,
        Err(response) => return response,
    };
    let back = back_to(&back, &format!("/tasks/{}", task.id));
    let saved = match fields.edit_of(&task) {
        Ok(edit) if edit.is_empty() => Ok(false),
        Ok(edit) => state
            .store
            .edit_task(task.id, edit, state.now())
            .await
            .map(|_| true)
            .map_err(explain),
        Err(problem) => Err(problem),
    };
    match saved {
        Ok(changed) => {
            let notice = if changed {
                "Changes saved."
            } else {
                "Nothing changed."
            };
            see_other_with(&state, &back, &Notice::done(notice))
        }
        Err(problem) => form_page(
            &state,
            viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            edit_heading(&task),
            TaskForm::edit(&task, &back).refused(fields, problem),
        ),
    }
}

/// The batch form: JSON lines, one task each, as `POST /api/tasks` takes them.
pub(super) struct BatchForm {
    pub(super) lines: String,
    pub(super) problem: Option<String>,
    pub(super) back: String,
    pub(super) max: usize,
}

impl BatchForm {
    pub(super) fn empty(back: &str) -> Self {
        Self {
            lines: String::new(),
            problem: None,
            back: back.to_owned(),
            max: MAX_BATCH_SIZE,
        }
    }
}

#[derive(Template)]
#[template(path = "batch.html")]
struct BatchPage {
    section: Section,
    viewer: Viewer,
    batch: BatchForm,
}

fn batch_form_page(
    state: &AppState,
    viewer: Viewer,
    status: StatusCode,
    batch: BatchForm,
) -> HttpResponse {
    let template = BatchPage {
        section: Section::Queue,
        viewer: viewer.clone(),
        batch,
    };
    page(state, &viewer, status, &template)
}

/// `GET /tasks/batch`.
async fn batch_page(viewer: Viewer, state: web::Data<AppState>, params: Params) -> HttpResponse {
    let back = back_to(params.text("back").unwrap_or_default(), "/tasks");
    batch_form_page(&state, viewer, StatusCode::OK, BatchForm::empty(&back))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BatchFields {
    lines: String,
}

/// The tasks of pasted JSON lines (blank lines skipped), or what is wrong, by line.
fn parse_lines(text: &str) -> Result<Vec<NewTask>, String> {
    let mut tasks = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let number = index + 1;
        let task: NewTask = serde_json::from_str(line)
            .map_err(|err| format!("Line {number} is not a task in JSON: {err}"))?;
        task.validate()
            .map_err(|err| format!("Line {number}: {}", explain(err).0))?;
        tasks.push(task);
    }
    match tasks.len() {
        0 => Err(
            "Paste at least one task: one JSON object per line, such as \
                  {\"title\": \"Fix the login\", \"description\": \"…\"}"
                .to_owned(),
        ),
        count if count > MAX_BATCH_SIZE => Err(format!(
            "{count} tasks is more than one batch takes ({MAX_BATCH_SIZE}); split them"
        )),
        _ => Ok(tasks),
    }
}

/// `POST /tasks/batch`: queues every task of the pasted lines, or none.
async fn create_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<Posted<BatchFields>>,
) -> HttpResponse {
    let Posted { csrf, back, fields } = form.into_inner();
    let viewer = match Viewer::of_form(&req, &state, &csrf) {
        Ok(viewer) => viewer,
        Err(refusal) => return refusal.response(),
    };
    let created = match parse_lines(&fields.lines) {
        Ok(tasks) => state
            .store
            .create_tasks(tasks, state.now())
            .await
            .map_err(|err| explain(err).0),
        Err(problem) => Err(problem),
    };
    let back = back_to(&back, "/tasks");
    match created {
        Ok(tasks) => {
            let notice = match tasks.len() {
                1 => "Queued 1 task.".to_owned(),
                count => format!("Queued {count} tasks."),
            };
            see_other_with(&state, &back, &Notice::done(notice))
        }
        Err(problem) => batch_form_page(
            &state,
            viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            BatchForm {
                lines: fields.lines,
                problem: Some(problem),
                ..BatchForm::empty(&back)
            },
        ),
    }
}
