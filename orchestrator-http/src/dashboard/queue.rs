//! `GET /tasks`: every task, filtered, searched and sorted by the server, a page at a
//! time by keyset; each row with the commands its state allows. The filters live in
//! the address, so a view can be shared; the list follows the event stream.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use orchestrator_core::ids::AgentId;
use orchestrator_core::model::{SortOrder, Task, TaskCursor, TaskQuery, TaskSort, TaskStatus};

use super::task_actions::{TaskCommand, allowed_commands, editable};
use super::task_form::{BatchForm, TaskForm};
use super::{
    PartViewer, Section, Viewer, agent_labels, cached_part, encode_component, fragment_response,
    keep, page, query_string, sorting,
};
use crate::error::ApiResult;
use crate::extract::Params;
use crate::state::AppState;

/// Tasks on one page.
const PAGE_ROWS: u32 = 50;

/// The view the address asks for.
#[derive(Debug, Clone)]
struct Filters {
    status: Option<TaskStatus>,
    priority: Option<u8>,
    search: String,
    sort: TaskSort,
    order: SortOrder,
    after: Option<TaskCursor>,
}

/// The queue's own order: by priority, then age.
const DEFAULT_SORT: TaskSort = TaskSort::Priority;

impl Filters {
    /// The filters of `params`, and what was wrong with any that had to be left out.
    fn of(params: &Params) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let status = params
            .text("status")
            .and_then(|status| keep(status.parse(), &mut problems));
        let (sort, order) = sorting(
            params,
            DEFAULT_SORT,
            |_| SortOrder::default(),
            &mut problems,
        );
        let after = params
            .text("after")
            .and_then(|after| keep(TaskCursor::parse(after, sort, "after"), &mut problems));
        let priority = params.text("priority").and_then(|priority| {
            let parsed = priority.parse::<u8>().ok().filter(|p| *p <= 3);
            if parsed.is_none() {
                problems.push(format!("priority: {priority:?} is not 0 to 3"));
            }
            parsed
        });
        let filters = Self {
            status,
            priority,
            search: params.text("search").unwrap_or_default().to_owned(),
            sort,
            order,
            after,
        };
        (filters, problems)
    }

    fn query(&self) -> TaskQuery {
        TaskQuery {
            status: self.status,
            priority: self.priority,
            search: Some(self.search.clone()).filter(|s| !s.trim().is_empty()),
            sort_by: self.sort,
            sort_order: self.order,
            // One more than a page says whether another follows.
            limit: PAGE_ROWS + 1,
            after: self.after.clone(),
            ..TaskQuery::default()
        }
    }

    /// The address of this view starting after `after` (the first page without one).
    fn href(&self, after: Option<&TaskCursor>) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(status) = self.status {
            pairs.push(("status", status.as_str().to_owned()));
        }
        if let Some(priority) = self.priority {
            pairs.push(("priority", priority.to_string()));
        }
        if !self.search.is_empty() {
            pairs.push(("search", self.search.clone()));
        }
        if self.sort != DEFAULT_SORT {
            pairs.push(("sortBy", self.sort.as_str().to_owned()));
        }
        if self.order != SortOrder::default() {
            pairs.push(("sortOrder", self.order.as_str().to_owned()));
        }
        if let Some(after) = after {
            pairs.push(("after", after.to_string()));
        }
        query_string(&pairs)
    }
}

/// A task in the list.
struct Row {
    id: String,
    short_id: String,
    title: String,
    status: &'static str,
    priority: u8,
    risk: &'static str,
    attempts: String,
    agent: Option<String>,
    updated: String,
    commands: Vec<TaskCommand>,
    editable: bool,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    section: Section,
    viewer: Viewer,
    filters: Filters,
    problems: Vec<String>,
    /// This view's address, where forms send the browser back to.
    here: String,
    form: TaskForm,
    batch: BatchForm,
    /// The rendered [`QueueLive`].
    live: String,
}

/// The queue page's live part: its list and pages.
#[derive(Template)]
#[template(path = "queue_live.html")]
struct QueueLive {
    /// The session's form token, for the rows' commands.
    csrf: String,
    rows: Vec<Row>,
    total: u64,
    here: String,
    first_page: Option<String>,
    next_page: Option<String>,
}

impl QueuePage {
    fn statuses(&self) -> &'static [TaskStatus] {
        TaskStatus::ALL
    }

    /// The columns to sort by, each with its label; the order stays as chosen when the
    /// column changes.
    fn sorts(&self) -> [(TaskSort, &'static str, Option<SortOrder>); 5] {
        [
            (TaskSort::Priority, "Priority", None),
            (TaskSort::CreatedAt, "Created", None),
            (TaskSort::UpdatedAt, "Last change", None),
            (TaskSort::Status, "Status", None),
            (TaskSort::Title, "Title", None),
        ]
    }

    /// This view's address as a query value.
    fn back_param(&self) -> String {
        encode_component(&self.here)
    }

    fn fragment(&self) -> String {
        format!(
            "/fragments/queue{}",
            self.filters.href(self.filters.after.as_ref())
        )
    }
}

pub(super) async fn queue(
    viewer: Viewer,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let (filters, problems) = Filters::of(&params);
    let here = format!("/tasks{}", filters.href(filters.after.as_ref()));
    let live = queue_live(&state, &viewer, &filters).await?;
    let template = QueuePage {
        section: Section::Queue,
        viewer: viewer.clone(),
        problems,
        form: TaskForm::create(&here),
        batch: BatchForm::empty(&here),
        here,
        filters,
        live,
    };
    Ok(page(&state, &viewer, StatusCode::OK, &template))
}

/// `GET /fragments/queue?…`: the list of a queue view.
pub(super) async fn queue_fragment(
    PartViewer(viewer): PartViewer,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let (filters, _) = Filters::of(&params);
    Ok(fragment_response(
        queue_live(&state, &viewer, &filters).await?,
    ))
}

/// The list of the view `filters` ask for, rendered once per commit.
async fn queue_live(state: &AppState, viewer: &Viewer, filters: &Filters) -> ApiResult<String> {
    let here = format!("/tasks{}", filters.href(filters.after.as_ref()));
    let key = format!("queue:{}{here}", viewer.csrf);
    cached_part(state, key, || async {
        let mut page = state.store.list_tasks(&filters.query()).await?;
        let next_page = (page.items.len() > PAGE_ROWS as usize).then(|| {
            page.items.truncate(PAGE_ROWS as usize);
            let last = page.items.last().expect("a full page has a last task");
            format!(
                "/tasks{}",
                filters.href(Some(&TaskCursor::after(last, filters.sort)))
            )
        });
        let agents = agent_labels(
            state,
            page.items.iter().filter_map(|task| task.assigned_agent_id),
        )
        .await?;
        Ok(QueueLive {
            csrf: viewer.csrf.clone(),
            rows: page.items.iter().map(|task| row(task, &agents)).collect(),
            total: page.total_count,
            first_page: filters
                .after
                .is_some()
                .then(|| format!("/tasks{}", filters.href(None))),
            next_page,
            here,
        })
    })
    .await
}

fn row(task: &Task, agents: &HashMap<AgentId, String>) -> Row {
    let id = task.id.to_string();
    Row {
        short_id: id[..8].to_owned(),
        id,
        title: task.title.clone(),
        status: task.status.as_str(),
        priority: task.priority,
        risk: task.risk_level.as_str(),
        attempts: format!("{} / {}", task.attempts_used, task.max_attempts),
        agent: task
            .assigned_agent_id
            .and_then(|agent| agents.get(&agent).cloned()),
        updated: task.updated_at.to_string(),
        commands: allowed_commands(task),
        editable: editable(task),
    }
}
