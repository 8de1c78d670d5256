//! `GET /`: the board. Columns by what a person should do: what needs them (open
//! exceptions), what is working, what is queued and why it is not running yet, and what
//! is done or failed lately; the day's numbers above them.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use orchestrator_core::Timestamp;
use orchestrator_core::ids::TaskId;
use orchestrator_core::lock::{LockPath, LockQuery};
use orchestrator_core::model::{
    Agent, AgentQuery, AgentStatus, Exception, ExceptionQuery, ExceptionStatus, LogQuery,
    RunnerSessionStatus, SortOrder, Task, TaskQuery, TaskSort, TaskStatus, Waiting,
};
use orchestrator_core::store::MAX_RUNNER_SESSION_PAGE;

use super::charts::{Chart, board_charts};
use super::task_form::TaskForm;
use super::{
    PartViewer, Section, Viewer, agent_labels, cached_part, fragment_response, page, query_string,
};
use crate::error::ApiResult;
use crate::extract::Params;
use crate::routes::dashboard::start_of_today;
use crate::routes::tasks_by_id;
use crate::state::AppState;

/// Cards in the Working and Queued columns, and in each of the others.
const BUSY_CARDS: u32 = 50;
const RECENT_CARDS: u32 = 10;

/// A number at the top of the board.
struct Stat {
    label: &'static str,
    value: String,
    note: String,
}

/// A task on the board.
struct TaskCard {
    id: String,
    short_id: String,
    title: String,
    priority: u8,
    status: &'static str,
    /// What the card says beyond its title: the agent and its latest line, why it waits,
    /// or how it ended.
    detail: Option<String>,
    at: String,
}

/// An open exception on the board.
struct ExceptionCard {
    id: String,
    title: String,
    severity: &'static str,
    kind: &'static str,
    task: Option<(String, String)>,
    at: String,
}

/// A column of task cards.
struct Column {
    heading: &'static str,
    slug: &'static str,
    cards: Vec<TaskCard>,
    /// What the column says when it has no card.
    empty: &'static str,
}

#[derive(Template)]
#[template(path = "board.html")]
struct BoardPage {
    section: Section,
    viewer: Viewer,
    filter: BoardFilter,
    /// The new task form of the board's dialog.
    form: TaskForm,
    /// The rendered [`BoardLive`].
    live: String,
}

/// The board's live part: its numbers, charts and columns, rendered again after events.
#[derive(Template)]
#[template(path = "board_live.html")]
struct BoardLive {
    stats: Vec<Stat>,
    needs_you: Vec<ExceptionCard>,
    columns: Vec<Column>,
    /// The last 24 hours.
    charts: Vec<Chart>,
}

/// The board's live part alone (its numbers and columns), rendered again after events.
impl BoardPage {
    /// The address of the live part for this view.
    fn fragment(&self) -> String {
        format!("/fragments/board{}", self.filter.query())
    }
}

/// The tasks the board shows: those whose title or description holds `search`, of
/// `priority` when one is chosen. Kept in the address, so that a view can be shared.
#[derive(Debug, Clone, Default)]
struct BoardFilter {
    search: String,
    priority: Option<u8>,
    problems: Vec<String>,
}

impl BoardFilter {
    fn of(params: &Params) -> Self {
        let mut problems = Vec::new();
        let priority = params.text("priority").and_then(|priority| {
            let parsed = priority.parse::<u8>().ok().filter(|p| *p <= 3);
            if parsed.is_none() {
                problems.push(format!("priority: {priority:?} is not 0 to 3"));
            }
            parsed
        });
        let search = params.text("search").unwrap_or_default().trim().to_owned();
        if search.chars().count() > MAX_SEARCH_CHARS {
            problems.push(format!("search: at most {MAX_SEARCH_CHARS} characters"));
            return Self {
                search: String::new(),
                priority,
                problems,
            };
        }
        Self {
            search,
            priority,
            problems,
        }
    }

    /// `query` narrowed to the filter.
    fn narrow(&self, query: TaskQuery) -> TaskQuery {
        TaskQuery {
            search: (!self.search.is_empty()).then(|| self.search.clone()),
            priority: self.priority,
            ..query
        }
    }

    fn is_set(&self) -> bool {
        !self.search.is_empty() || self.priority.is_some()
    }

    /// The filter as an address's query (with its `?`), empty when unset.
    fn query(&self) -> String {
        let mut pairs = Vec::new();
        if !self.search.is_empty() {
            pairs.push(("search", self.search.clone()));
        }
        if let Some(priority) = self.priority {
            pairs.push(("priority", priority.to_string()));
        }
        query_string(&pairs)
    }
}

/// Longest search text.
const MAX_SEARCH_CHARS: usize = 200;

pub(super) async fn board(
    viewer: Viewer,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let filter = BoardFilter::of(&params);
    let live = board_live(&state, &filter).await?;
    let template = BoardPage {
        section: Section::Board,
        viewer: viewer.clone(),
        filter,
        form: TaskForm::create("/"),
        live,
    };
    Ok(page(&state, &viewer, StatusCode::OK, &template))
}

/// `GET /fragments/board`: the live part of the board.
pub(super) async fn board_fragment(
    _: PartViewer,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let live = board_live(&state, &BoardFilter::of(&params)).await?;
    Ok(fragment_response(live))
}

/// The board's live part for `filter`, rendered once per commit.
async fn board_live(state: &AppState, filter: &BoardFilter) -> ApiResult<String> {
    cached_part(state, format!("board{}", filter.query()), || {
        build_board(state, filter)
    })
    .await
}

async fn build_board(state: &AppState, filter: &BoardFilter) -> ApiResult<BoardLive> {
    let now = state.now();
    let working = tasks_in(
        state,
        filter,
        &[
            TaskStatus::Assigned,
            TaskStatus::InProgress,
            TaskStatus::Verifying,
        ],
        BUSY_CARDS,
    )
    .await?;
    let queued = state
        .store
        .list_tasks(&filter.narrow(TaskQuery {
            status: Some(TaskStatus::Queued),
            limit: BUSY_CARDS,
            ..TaskQuery::default()
        }))
        .await?
        .items;
    let done = tasks_in(state, filter, &[TaskStatus::Completed], RECENT_CARDS).await?;
    let failed = tasks_in(
        state,
        filter,
        &[TaskStatus::Failed, TaskStatus::Cancelled],
        RECENT_CARDS,
    )
    .await?;
    let exceptions = state
        .store
        .list_exceptions(&ExceptionQuery {
            status: Some(ExceptionStatus::Open),
            limit: BUSY_CARDS,
            ..ExceptionQuery::default()
        })
        .await?
        .items;
    Ok(BoardLive {
        charts: board_charts(state).await?,
        stats: stats(state).await?,
        needs_you: exception_cards(state, exceptions).await?,
        columns: vec![
            Column {
                heading: "Working",
                slug: "working",
                cards: working_cards(state, working).await?,
                empty: "No agent is working.",
            },
            Column {
                heading: "Queued",
                slug: "queued",
                cards: queued_cards(state, queued, now).await?,
                empty: "The queue is empty.",
            },
            Column {
                heading: "Done",
                slug: "done",
                cards: done.iter().map(|task| card(task, None)).collect(),
                empty: "Nothing completed yet.",
            },
            Column {
                heading: "Failed / cancelled",
                slug: "failed",
                cards: failed
                    .iter()
                    .map(|task| card(task, task.last_error.clone()))
                    .collect(),
                empty: "Nothing failed.",
            },
        ],
    })
}

/// The newest `limit` tasks of `filter` in any of `statuses`, most recently changed
/// first.
async fn tasks_in(
    state: &AppState,
    filter: &BoardFilter,
    statuses: &[TaskStatus],
    limit: u32,
) -> ApiResult<Vec<Task>> {
    let mut tasks = Vec::new();
    for status in statuses {
        let page = state
            .store
            .list_tasks(&filter.narrow(TaskQuery {
                status: Some(*status),
                sort_by: TaskSort::UpdatedAt,
                sort_order: SortOrder::Desc,
                limit,
                ..TaskQuery::default()
            }))
            .await?;
        tasks.extend(page.items);
    }
    tasks.sort_by_key(|task| std::cmp::Reverse(task.updated_at));
    tasks.truncate(limit as usize);
    Ok(tasks)
}

fn card(task: &Task, detail: Option<String>) -> TaskCard {
    let id = task.id.to_string();
    TaskCard {
        short_id: id[..8].to_owned(),
        id,
        title: task.title.clone(),
        priority: task.priority,
        status: task.status.as_str(),
        detail,
        at: task.updated_at.to_string(),
    }
}

/// Working tasks with their agent and the latest line of their transcript.
async fn working_cards(state: &AppState, tasks: Vec<Task>) -> ApiResult<Vec<TaskCard>> {
    let agents = agent_labels(state, tasks.iter().filter_map(|t| t.assigned_agent_id)).await?;
    let mut cards = Vec::with_capacity(tasks.len());
    for task in &tasks {
        let latest = state
            .store
            .list_logs(&LogQuery::for_task(task.id, 1))
            .await?;
        let line = latest
            .logs
            .first()
            .and_then(|log| log.content.lines().find(|line| !line.trim().is_empty()))
            .map(|line| line.chars().take(160).collect::<String>());
        let agent = task.assigned_agent_id.and_then(|id| agents.get(&id));
        let detail = match (agent, line) {
            (Some(agent), Some(line)) => Some(format!("{agent}: {line}")),
            (Some(agent), None) => Some(agent.clone()),
            (None, line) => line,
        };
        cards.push(card(task, detail));
    }
    Ok(cards)
}

/// Queued tasks, each saying why it is not running yet: the dependencies it waits for,
/// the time it waits until, the lock in its way and whose it is, or the runner slots.
async fn queued_cards(
    state: &AppState,
    tasks: Vec<Task>,
    now: Timestamp,
) -> ApiResult<Vec<TaskCard>> {
    let dependency_ids: Vec<TaskId> = tasks
        .iter()
        .flat_map(|t| t.depends_on.iter().copied())
        .collect();
    let dependencies: HashMap<TaskId, Task> = state
        .store
        .get_tasks(&dependency_ids)
        .await?
        .into_iter()
        .map(|task| (task.id, task))
        .collect();
    let locks = LiveLocks::load(state, now).await?;
    let slots = Slots::count(state).await?;
    Ok(tasks
        .iter()
        .map(|task| {
            let detail = match Waiting::of(task, &dependencies, now) {
                Some(waiting) if !waiting.dependencies.is_empty() => format!(
                    "Waiting for {}",
                    waiting
                        .dependencies
                        .iter()
                        .map(|d| format!("“{}” ({})", d.title, d.status))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(Waiting {
                    not_before: Some(at),
                    ..
                }) => format!("Delayed until {at}"),
                _ => match locks.in_way_of(task) {
                    Some(blocked) => blocked,
                    None => slots.reason(),
                },
            };
            card(task, Some(detail))
        })
        .collect())
}

/// The live locks, to say which one stands in a queued task's way.
struct LiveLocks {
    /// Each lock's path with who holds it (agent, and task when known).
    held: Vec<(LockPath, String)>,
}

impl LiveLocks {
    async fn load(state: &AppState, now: Timestamp) -> ApiResult<Self> {
        let locks = state
            .store
            .list_locks(
                &LockQuery {
                    limit: MAX_LOCKS_CONSIDERED,
                    ..LockQuery::default()
                },
                now,
            )
            .await?;
        let agents = agent_labels(state, locks.iter().map(|lock| lock.agent_id)).await?;
        let tasks = tasks_by_id(state, locks.iter().filter_map(|lock| lock.task_id)).await?;
        let held = locks
            .iter()
            .filter_map(|lock| {
                let path = LockPath::parse(&lock.file_path).ok()?;
                let agent = agents
                    .get(&lock.agent_id)
                    .cloned()
                    .unwrap_or_else(|| lock.agent_id.to_string()[..8].to_owned());
                let holder = match lock.task_id.and_then(|id| tasks.get(&id)) {
                    Some(task) => format!("{agent} on “{}”", task.title),
                    None => agent,
                };
                Some((path, holder))
            })
            .collect();
        Ok(Self { held })
    }

    /// What stands in the way of `task`'s files hint, if a lock does.
    fn in_way_of(&self, task: &Task) -> Option<String> {
        task.files_hint.iter().find_map(|hint| {
            let wanted = LockPath::parse(hint).ok()?;
            self.held
                .iter()
                .find(|(path, _)| path.overlaps(&wanted))
                .map(|(path, holder)| {
                    format!("Blocked by the lock on {} held by {holder}", path.key())
                })
        })
    }
}

/// Locks the board looks through for the ones in queued tasks' way.
const MAX_LOCKS_CONSIDERED: u32 = 200;

/// The runner slots that could take a ready task.
struct Slots {
    /// Runners that are connected (local or with an active session).
    runners: usize,
    free: usize,
    busy: usize,
}

impl Slots {
    async fn count(state: &AppState) -> ApiResult<Self> {
        let sessions = state
            .store
            .list_runner_sessions(Some(RunnerSessionStatus::Active), MAX_RUNNER_SESSION_PAGE)
            .await?;
        let agents = state
            .store
            .list_agents(&AgentQuery {
                limit: 100,
                ..AgentQuery::default()
            })
            .await?
            .items;
        let connected = |agent: &&Agent| {
            agent.is_local_runner
                || agent
                    .runner_session_id
                    .is_some_and(|id| sessions.iter().any(|s| s.id == id))
        };
        let live: Vec<&Agent> = agents.iter().filter(connected).collect();
        let local = usize::from(live.iter().any(|agent| agent.is_local_runner));
        Ok(Self {
            runners: sessions.len() + local,
            free: live
                .iter()
                .filter(|a| a.status == AgentStatus::Idle)
                .count(),
            busy: live
                .iter()
                .filter(|a| matches!(a.status, AgentStatus::Working | AgentStatus::Paused))
                .count(),
        })
    }

    /// Why a ready task is not running yet.
    fn reason(&self) -> String {
        match (self.runners, self.free) {
            (0, _) => "No runner is connected: connect one to run it".to_owned(),
            (_, 0) if self.busy > 0 => {
                format!("Waiting for a free runner slot (all {} busy)", self.busy)
            }
            _ => "Ready: the next runner to ask takes it".to_owned(),
        }
    }
}

async fn exception_cards(
    state: &AppState,
    exceptions: Vec<Exception>,
) -> ApiResult<Vec<ExceptionCard>> {
    let task_ids: Vec<TaskId> = exceptions.iter().filter_map(|e| e.task_id).collect();
    let titles: HashMap<TaskId, String> = state
        .store
        .get_tasks(&task_ids)
        .await?
        .into_iter()
        .map(|task| (task.id, task.title))
        .collect();
    Ok(exceptions
        .into_iter()
        .map(|exception| ExceptionCard {
            id: exception.id.to_string(),
            title: exception.title,
            severity: exception.severity.as_str(),
            kind: exception.exception_type.as_str(),
            task: exception
                .task_id
                .and_then(|id| titles.get(&id).map(|title| (id.to_string(), title.clone()))),
            at: exception.last_occurred_at.to_string(),
        })
        .collect())
}

/// The board's numbers: active agents, pending tasks, today's success rate, open exceptions.
async fn stats(state: &AppState) -> ApiResult<Vec<Stat>> {
    let stats = state.store.stats(start_of_today(state)?).await?;
    let agents_total: u64 = stats.agents_by_status.values().sum();
    let ended = stats.completed_since + stats.failed_since;
    let open_exceptions: u64 = stats.open_exceptions_by_severity.values().sum();
    Ok(vec![
        Stat {
            label: "Active agents",
            value: stats.agents(AgentStatus::Working).to_string(),
            note: format!(
                "{agents_total} {}, {} idle",
                if agents_total == 1 { "slot" } else { "slots" },
                stats.agents(AgentStatus::Idle)
            ),
        },
        Stat {
            label: "Pending tasks",
            value: stats.tasks(TaskStatus::Queued).to_string(),
            note: format!("{} in progress", stats.tasks(TaskStatus::InProgress)),
        },
        Stat {
            label: "Success rate today",
            value: if ended == 0 {
                "—".to_owned()
            } else {
                format!(
                    "{:.1}%",
                    100.0 * stats.completed_since as f64 / ended as f64
                )
            },
            note: format!(
                "{} completed, {} failed",
                stats.completed_since, stats.failed_since
            ),
        },
        Stat {
            label: "Open exceptions",
            value: open_exceptions.to_string(),
            note: if open_exceptions == 0 {
                "Nothing needs you".to_owned()
            } else {
                "Waiting for a decision".to_owned()
            },
        },
    ])
}
