//! `GET /usage`: what the agents used over a window (the last day, week, month, quarter
//! or year): tokens and cost in all, per day, per runner, per backend and model, and for
//! the costliest tasks. Costs are estimates from list prices.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use orchestrator_core::model::{Usage, UsageQuery, UsageSummary};

use super::{PartViewer, Section, Viewer, cached_part, fragment_response, page, page_at};
use crate::error::ApiResult;
use crate::extract::Params;
use crate::state::AppState;

/// Tasks the page lists, costliest first.
const TOP_TASKS: u32 = 20;

/// The windows a person may choose, in days, with their names.
const WINDOWS: [(u32, &str); 5] = [
    (1, "Last day"),
    (7, "Last 7 days"),
    (30, "Last 30 days"),
    (90, "Last 90 days"),
    (365, "Last year"),
];

const DEFAULT_DAYS: u32 = 30;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(page_at("/usage").route(web::get().to(usage)))
        .service(page_at("/fragments/usage").route(web::get().to(usage_fragment)));
}

/// One row of a usage table.
struct Line {
    /// What the row is about, and where it links to, if anywhere.
    label: String,
    href: Option<String>,
    attempts: u64,
    input: u64,
    output: u64,
    cache: u64,
    cost: String,
}

impl Line {
    fn new(label: String, href: Option<String>, attempts: u64, usage: &Usage) -> Self {
        Self {
            label,
            href,
            attempts,
            input: usage.input_tokens,
            output: usage.output_tokens,
            cache: usage.cache_read_tokens + usage.cache_write_tokens,
            cost: dollars(usage.cost_usd),
        }
    }
}

fn dollars(cost: f64) -> String {
    if cost > 0.0 && cost < 0.01 {
        "< $0.01".to_owned()
    } else {
        format!("${cost:.2}")
    }
}

/// A table of the page.
struct Table {
    heading: &'static str,
    /// What the rows are.
    what: &'static str,
    lines: Vec<Line>,
    empty: &'static str,
}

#[derive(Template)]
#[template(path = "usage.html")]
struct UsagePage {
    section: Section,
    viewer: Viewer,
    days: u32,
    problem: Option<String>,
    /// The rendered [`UsageLive`].
    live: String,
}

impl UsagePage {
    fn windows(&self) -> &'static [(u32, &'static str)] {
        &WINDOWS
    }
}

/// The page's figures, rendered again after events.
#[derive(Template)]
#[template(path = "usage_live.html")]
struct UsageLive {
    since: String,
    until: String,
    total: Line,
    tables: Vec<Table>,
}

/// The window `params` ask for (`days`), or the default with what was wrong.
fn window(params: &Params) -> (u32, Option<String>) {
    match params.text("days") {
        None => (DEFAULT_DAYS, None),
        Some(text) => match text.parse::<u32>() {
            Ok(days) if WINDOWS.iter().any(|(d, _)| *d == days) => (days, None),
            _ => (
                DEFAULT_DAYS,
                Some(format!(
                    "days: {text:?} is not one of the windows offered (1, 7, 30, 90 or 365); showing the last 30 days"
                )),
            ),
        },
    }
}

async fn usage_live(state: &AppState, days: u32) -> ApiResult<String> {
    cached_part(state, format!("usage:{days}"), || async {
        let until = state.now();
        let since = until.sub(std::time::Duration::from_secs(u64::from(days) * 86_400));
        let summary = state
            .store
            .usage_summary(&UsageQuery {
                since,
                until,
                top_tasks: TOP_TASKS,
            })
            .await?;
        Ok(live_part(&summary))
    })
    .await
}

fn live_part(summary: &UsageSummary) -> UsageLive {
    let unnamed =
        |name: &Option<String>, none: &str| name.clone().unwrap_or_else(|| none.to_owned());
    UsageLive {
        since: summary.since.to_string(),
        until: summary.until.to_string(),
        total: Line::new(
            "All attempts".to_owned(),
            None,
            summary.attempts,
            &summary.usage,
        ),
        tables: vec![
            Table {
                heading: "Per day",
                what: "Day (UTC)",
                lines: summary
                    .days
                    .iter()
                    .rev()
                    .filter(|day| day.attempts > 0)
                    .map(|day| Line::new(day.day.to_string(), None, day.attempts, &day.usage))
                    .collect(),
                empty: "No attempt in this window.",
            },
            Table {
                heading: "Per runner",
                what: "Runner",
                lines: summary
                    .runners
                    .iter()
                    .map(|runner| {
                        Line::new(
                            unnamed(&runner.name, "no runner session (local)"),
                            None,
                            runner.attempts,
                            &runner.usage,
                        )
                    })
                    .collect(),
                empty: "No runner ran an attempt in this window.",
            },
            Table {
                heading: "Per backend and model",
                what: "Backend · model",
                lines: summary
                    .models
                    .iter()
                    .map(|model| {
                        Line::new(
                            format!(
                                "{} · {}",
                                unnamed(&model.backend, "backend not reported"),
                                unnamed(&model.model, "model not reported")
                            ),
                            None,
                            model.attempts,
                            &model.usage,
                        )
                    })
                    .collect(),
                empty: "No attempt in this window.",
            },
            Table {
                heading: "Costliest tasks",
                what: "Task",
                lines: summary
                    .tasks
                    .iter()
                    .map(|task| {
                        Line::new(
                            task.title.clone(),
                            Some(format!("/tasks/{}", task.task_id)),
                            task.attempts,
                            &task.usage,
                        )
                    })
                    .collect(),
                empty: "No task ran in this window.",
            },
        ],
    }
}

async fn usage(
    viewer: Viewer,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    let (days, problem) = window(&params);
    let template = UsagePage {
        section: Section::Usage,
        viewer: viewer.clone(),
        days,
        problem,
        live: usage_live(&state, days).await?,
    };
    Ok(page(&state, &viewer, StatusCode::OK, &template))
}

async fn usage_fragment(
    _: PartViewer,
    state: web::Data<AppState>,
    params: Params,
) -> ApiResult<HttpResponse> {
    Ok(fragment_response(
        usage_live(&state, window(&params).0).await?,
    ))
}
