//! The fleet: `GET /agents` lists the agent slots with their status, task, elapsed time
//! and tokens; `GET /agents/:id` shows one with its live log and the locks it holds;
//! `GET /runners` lists the runner sessions with their slots and when each was last
//! heard from. Pause, resume and stop reach the runner at its next heartbeat; revoking a
//! session stops its token working.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use orchestrator_core::ids::{AgentId, RunnerSessionId};
use orchestrator_core::lock::LockQuery;
use orchestrator_core::model::{
    Agent, AgentQuery, AgentSort, AgentStatus, LogQuery, RunnerSession, RunnerSessionStatus,
    SortOrder,
};
use orchestrator_core::store::StoreExt;
use serde::Deserialize;

use super::transcript::Transcript;
use super::{
    Notice, PartViewer, Section, Viewer, agent_label, explain, found_or_404, keep, not_found, page,
    page_at, query_string, render, see_other_with, sorting,
};
use crate::error::ApiResult;
use crate::extract::Params;
use crate::routes::agents::{Control, control};
use crate::routes::connect::revoke_session;
use crate::routes::tasks_by_id;
use crate::state::AppState;

/// Agents and runner sessions on one page.
const PAGE_ROWS: u32 = 100;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page_at("/agents").route(web::get().to(agents)))
        .service(page_at("/fragments/agents").route(web::get().to(agents_fragment)))
        .service(page_at("/agents/{id}").route(web::get().to(agent)))
        .service(page_at("/fragments/agents/{id}").route(web::get().to(agent_fragment)))
        .service(page_at("/agents/{id}/{control}").route(web::post().to(control_agent)))
        .service(page_at("/runners").route(web::get().to(runners)))
        .service(page_at("/fragments/runners").route(web::get().to(runners_fragment)))
        .service(page_at("/runners/{id}/revoke").route(web::post().to(revoke_runner)));
}

impl Control {
    fn slug(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Pause => "pause",
            Self::Resume => "resume",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Stop => "Stop",
            Self::Pause => "Pause",
            Self::Resume => "Resume",
        }
    }

    fn is_destructive(self) -> bool {
        self == Self::Stop
    }
}

/// An agent slot as the list and its page show it.
struct AgentRow {
    id: String,
    name: String,
    status: &'static str,
    runner: Option<String>,
    /// The task as (id, title).
    task: Option<(String, String)>,
    /// When its current attempt started, while it works.
    started: Option<String>,
    tokens: u64,
    /// What its attempts cost, estimated from list prices.
    cost: String,
    completed: u32,
    failed: u32,
    controls: Vec<Control>,
}

impl AgentRow {
    fn new(
        agent: &Agent,
        cost: f64,
        runners: &HashMap<RunnerSessionId, String>,
        tasks: &HashMap<orchestrator_core::ids::TaskId, orchestrator_core::model::Task>,
    ) -> Self {
        let working = matches!(agent.status, AgentStatus::Working | AgentStatus::Paused);
        Self {
            id: agent.id.to_string(),
            name: agent_label(agent),
            status: agent.status.as_str(),
            runner: agent
                .runner_session_id
                .and_then(|id| runners.get(&id).cloned())
                .or_else(|| agent.is_local_runner.then(|| "local runner".to_owned())),
            task: agent.current_task_id.and_then(|id| {
                tasks
                    .get(&id)
                    .map(|task| (id.to_string(), task.title.clone()))
            }),
            started: working
                .then_some(agent.started_at)
                .flatten()
                .map(|at| at.to_string()),
            tokens: agent.total_tokens_used,
            cost: format!("${cost:.2}"),
            completed: agent.tasks_completed,
            failed: agent.tasks_failed,
            controls: Control::ALL
                .into_iter()
                .filter(|c| c.allows(agent))
                .collect(),
        }
    }
}

/// The names of the runner sessions, newest first.
async fn runner_names(state: &AppState) -> ApiResult<HashMap<RunnerSessionId, String>> {
    Ok(state
        .store
        .list_runner_sessions(None, PAGE_ROWS)
        .await?
        .into_iter()
        .map(|session| (session.id, session.name))
        .collect())
}

async fn agent_rows(state: &AppState, agents: &[Agent]) -> ApiResult<Vec<AgentRow>> {
    let runners = runner_names(state).await?;
    let tasks = tasks_by_id(state, agents.iter().filter_map(|a| a.current_task_id)).await?;
    let ids: Vec<AgentId> = agents.iter().map(|agent| agent.id).collect();
    let costs: HashMap<AgentId, f64> = state.store.agent_costs(&ids).await?.into_iter().collect();
    Ok(agents
        .iter()
        .map(|agent| {
            let cost = costs.get(&agent.id).copied().unwrap_or(0.0);
            AgentRow::new(agent, cost, &runners, &tasks)
        })
        .collect())
}

/// The agents view the address asks for.
#[derive(Debug, Clone)]
struct AgentFilters {
    status: Option<AgentStatus>,
    search: String,
    sort: AgentSort,
    order: SortOrder,
    /// 0-based page of [`PAGE_ROWS`] rows.
    page: u64,
}

impl AgentFilters {
    /// The filters of `params`, and what was wrong with any that had to be left out.
    fn of(params: &Params) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let status = params
            .text("status")
            .and_then(|status| keep(status.parse(), &mut problems));
        let (sort, order) = sorting(
            params,
            AgentSort::CreatedAt,
            AgentSort::default_order,
            &mut problems,
        );
        let page = params.text("page").and_then(|page| {
            let parsed = page
                .parse::<u64>()
                .ok()
                .filter(|p| (1..=MAX_PAGE).contains(p));
            if parsed.is_none() {
                problems.push(format!(
                    "page: {page:?} is not a page number from 1 to {MAX_PAGE}"
                ));
            }
            parsed
        });
        let filters = Self {
            status,
            search: params.text("search").unwrap_or_default().to_owned(),
            sort,
            order,
            page: page.map_or(0, |page| page - 1),
        };
        (filters, problems)
    }

    fn query(&self) -> AgentQuery {
        AgentQuery {
            status: self.status,
            search: Some(self.search.clone()).filter(|s| !s.trim().is_empty()),
            sort_by: self.sort,
            sort_order: self.order,
            limit: PAGE_ROWS,
            offset: self.page * u64::from(PAGE_ROWS),
            ..AgentQuery::default()
        }
    }

    /// The address's query of this view on 0-based `page`.
    fn href(&self, page: u64) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(status) = self.status {
            pairs.push(("status", status.as_str().to_owned()));
        }
        if !self.search.is_empty() {
            pairs.push(("search", self.search.clone()));
        }
        if self.sort != AgentSort::CreatedAt {
            pairs.push(("sortBy", self.sort.as_str().to_owned()));
        }
        if self.order != self.sort.default_order() {
            pairs.push(("sortOrder", self.order.as_str().to_owned()));
        }
        if page > 0 {
            pairs.push(("page", (page + 1).to_string()));
        }
        query_string(&pairs)
    }
}

/// Highest page number an address may ask for (offsets stay far inside a database's range).
const MAX_PAGE: u64 = 1_000_000;

#[derive(Template)]
#[template(path = "agents.html")]
struct AgentsPage {
    section: Section,
    viewer: Viewer,
    filters: AgentFilters,
    problems: Vec<String>,
    rows: Vec<AgentRow>,
    total: u64,
}

impl AgentsPage {
    fn statuses(&self) -> &'static [AgentStatus] {
        AgentStatus::ALL
    }

    /// The columns to sort by, each with its label and usual order (which the page's
    /// script selects along with it).
    fn sorts(&self) -> [(AgentSort, &'static str, Option<SortOrder>); 3] {
        [
            (AgentSort::CreatedAt, "Created"),
            (AgentSort::Name, "Name"),
            (AgentSort::Status, "Status"),
        ]
        .map(|(sort, label)| (sort, label, Some(sort.default_order())))
    }

    fn fragment(&self) -> String {
        format!("/fragments/agents{}", self.filters.href(self.filters.page))
    }

    /// The previous page's address, unless this is the first.
    fn previous_page(&self) -> Option<String> {
        (self.filters.page > 0)
            .then(|| format!("/agents{}", self.filters.href(self.filters.page - 1)))
    }

    /// The next page's address, if rows follow this page.
    fn next_page(&self) -> Option<String> {
        let shown = (self.filters.page + 1) * u64::from(PAGE_ROWS);
        (shown < self.total).then(|| format!("/agents{}", self.filters.href(self.filters.page + 1)))
    }
}

#[derive(Template)]
#[template(path = "agents.html", block = "live")]
struct AgentsLive(AgentsPage);

impl std::ops::Deref for AgentsLive {
    type Target = AgentsPage;

    fn deref(&self) -> &AgentsPage {
        &self.0
    }
}

async fn agents_page(state: &AppState, viewer: Viewer, params: &Params) -> ApiResult<AgentsPage> {
    let (filters, problems) = AgentFilters::of(params);
    let page = state.store.list_agents(&filters.query()).await?;
    Ok(AgentsPage {
        section: Section::Fleet,
        viewer,
        filters,
        problems,
        rows: agent_rows(state, &page.items).await?,
        total: page.total_count,
    })
}

async fn agents(
    viewer: Viewer,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let template = agents_page(&state, viewer.clone(), &params).await?;
    Ok(page(&state, &viewer, StatusCode::OK, &template))
}

async fn agents_fragment(
    PartViewer(viewer): PartViewer,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let template = agents_page(&state, viewer, &params).await?;
    Ok(render(StatusCode::OK, &AgentsLive(template)))
}

#[derive(Template)]
#[template(path = "agent.html")]
struct AgentPage {
    section: Section,
    viewer: Viewer,
    agent: AgentRow,
    branch: Option<String>,
    last_activity: Option<String>,
    /// The paths it holds, with their fencing tokens and expiry.
    locks: Vec<(String, u64, String)>,
    transcript: Transcript,
    fragment: String,
}

#[derive(Template)]
#[template(path = "agent.html", block = "live")]
struct AgentLive(AgentPage);

impl std::ops::Deref for AgentLive {
    type Target = AgentPage;

    fn deref(&self) -> &AgentPage {
        &self.0
    }
}

async fn find_agent(
    state: &AppState,
    viewer: &Viewer,
    raw_id: &str,
) -> Result<Agent, HttpResponse> {
    found_or_404(
        state,
        viewer,
        raw_id,
        "No agent has this id.",
        |id: AgentId| state.store.get_agent(id),
    )
    .await
}

async fn agent_page(
    state: &AppState,
    viewer: Viewer,
    agent: Agent,
    req: &HttpRequest,
    params: &Params,
) -> ApiResult<AgentPage> {
    let path = format!("/agents/{}", agent.id);
    let transcript = Transcript::load(state, LogQuery::new(agent.id, 1), params, &path).await?;
    let locks = state
        .store
        .list_locks(
            &LockQuery {
                agent_id: Some(agent.id),
                ..LockQuery::default()
            },
            state.now(),
        )
        .await?
        .into_iter()
        .map(|lock| {
            (
                lock.file_path,
                lock.fencing_token,
                lock.expires_at.to_string(),
            )
        })
        .collect();
    let fragment = match req.query_string() {
        "" => format!("/fragments{path}"),
        query => format!("/fragments{path}?{query}"),
    };
    Ok(AgentPage {
        section: Section::Fleet,
        viewer,
        branch: agent.branch_name.clone(),
        last_activity: agent.last_activity_at.map(|at| at.to_string()),
        agent: agent_rows(state, std::slice::from_ref(&agent))
            .await?
            .pop()
            .expect("a row per agent"),
        locks,
        transcript,
        fragment,
    })
}

async fn agent(
    viewer: Viewer,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let agent = match find_agent(&state, &viewer, &id).await {
        Ok(agent) => agent,
        Err(missing) => return Ok(missing),
    };
    let template = agent_page(&state, viewer.clone(), agent, &req, &params).await?;
    Ok(page(&state, &viewer, StatusCode::OK, &template))
}

async fn agent_fragment(
    PartViewer(viewer): PartViewer,
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let agent = match find_agent(&state, &viewer, &id).await {
        Ok(agent) => agent,
        Err(missing) => return Ok(missing),
    };
    let template = agent_page(&state, viewer, agent, &req, &params).await?;
    Ok(render(StatusCode::OK, &AgentLive(template)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CsrfForm {
    csrf: String,
    back: String,
}

/// `POST /agents/:id/:control`: pause, resume or stop.
async fn control_agent(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let viewer = match Viewer::of_form(&req, &state, &form.csrf) {
        Ok(viewer) => viewer,
        Err(refusal) => return refusal.response(),
    };
    let (raw_id, slug) = path.into_inner();
    let wanted = Control::ALL.into_iter().find(|c| c.slug() == slug);
    let (Some(wanted), Ok(id)) = (wanted, raw_id.parse::<AgentId>()) else {
        return not_found(&state, viewer, "There is no such agent or control.");
    };
    let back = super::back_to(&form.back, &format!("/agents/{id}"));
    let notice = match control(&state, id, wanted).await {
        Ok(_) => Notice::done(match wanted {
            Control::Pause => "Pause asked; the runner pauses the agent at its next heartbeat.",
            Control::Resume => "Resume asked; the runner resumes the agent at its next heartbeat.",
            Control::Stop => "Stop asked: the task is cancelled and the runner stops the agent.",
        }),
        Err(err) => Notice::problem(format!(
            "Could not {} the agent: {}",
            wanted.label().to_lowercase(),
            explain(err).0
        )),
    };
    see_other_with(&state, &back, &notice)
}

/// A runner session as the runners page shows it.
pub(super) struct RunnerRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) working_dir: String,
    /// Where it runs and what: host, version and agent backends, as it reported them.
    pub(super) host: Option<String>,
    pub(super) version: Option<String>,
    pub(super) backends: String,
    pub(super) offline: bool,
    pub(super) revoked: bool,
    pub(super) busy: usize,
    pub(super) slots: usize,
    pub(super) last_seen: String,
    pub(super) connected: String,
}

impl RunnerRow {
    fn new(session: &RunnerSession, agents: &[&Agent]) -> Self {
        let live =
            |agent: &&&Agent| !matches!(agent.status, AgentStatus::Completed | AgentStatus::Failed);
        Self {
            id: session.id.to_string(),
            name: session.name.clone(),
            working_dir: session.working_dir.clone(),
            host: session.host.clone(),
            version: session.version.clone(),
            backends: session.backends.join(", "),
            offline: session.status != RunnerSessionStatus::Active,
            revoked: session.status == RunnerSessionStatus::Revoked,
            busy: agents
                .iter()
                .filter(live)
                .filter(|a| matches!(a.status, AgentStatus::Working | AgentStatus::Paused))
                .count(),
            slots: agents.iter().filter(live).count(),
            last_seen: session.last_seen_at.to_string(),
            connected: session.created_at.to_string(),
        }
    }
}

/// The runner sessions, newest first, with their slots.
pub(super) async fn runner_rows(state: &AppState) -> ApiResult<Vec<RunnerRow>> {
    let sessions = state.store.list_runner_sessions(None, PAGE_ROWS).await?;
    let agents = state
        .store
        .list_agents(&AgentQuery {
            limit: PAGE_ROWS,
            ..AgentQuery::default()
        })
        .await?
        .items;
    Ok(sessions
        .iter()
        .map(|session| {
            let slots: Vec<&Agent> = agents
                .iter()
                .filter(|agent| agent.runner_session_id == Some(session.id))
                .collect();
            RunnerRow::new(session, &slots)
        })
        .collect())
}

#[derive(Template)]
#[template(path = "runners.html")]
struct RunnersPage {
    section: Section,
    viewer: Viewer,
    rows: Vec<RunnerRow>,
}

#[derive(Template)]
#[template(path = "runners.html", block = "live")]
struct RunnersLive(RunnersPage);

impl std::ops::Deref for RunnersLive {
    type Target = RunnersPage;

    fn deref(&self) -> &RunnersPage {
        &self.0
    }
}

async fn runners(viewer: Viewer, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let template = RunnersPage {
        section: Section::Fleet,
        viewer: viewer.clone(),
        rows: runner_rows(&state).await?,
    };
    Ok(page(&state, &viewer, StatusCode::OK, &template))
}

async fn runners_fragment(
    PartViewer(viewer): PartViewer,
    state: web::Data<AppState>,
) -> ApiResult<HttpResponse> {
    let template = RunnersPage {
        section: Section::Fleet,
        viewer,
        rows: runner_rows(&state).await?,
    };
    Ok(render(StatusCode::OK, &RunnersLive(template)))
}

/// `POST /runners/:id/revoke`.
async fn revoke_runner(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let viewer = match Viewer::of_form(&req, &state, &form.csrf) {
        Ok(viewer) => viewer,
        Err(refusal) => return refusal.response(),
    };
    let Ok(id) = id.parse::<RunnerSessionId>() else {
        return not_found(&state, viewer, "No runner session has this id.");
    };
    let back = super::back_to(&form.back, "/runners");
    let notice = match revoke_session(&state, id).await {
        Ok(()) => Notice::done(
            "Runner session revoked: its token no longer works; its tasks go back to the queue when their leases run out.",
        ),
        Err(err) => Notice::problem(format!("Could not revoke: {}", explain(err).0)),
    };
    see_other_with(&state, &back, &notice)
}
