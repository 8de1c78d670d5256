//! What attempts used over a time window ([`UsageQuery`]), summed per day, per runner,
//! per agent backend and model, per task and in all ([`UsageSummary`]). Costs are what
//! the runners reported: estimates from list prices.

use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{RunnerSessionId, TaskId};
use crate::model::Usage;
use crate::time::Timestamp;

/// Longest window a usage summary covers, in days.
pub const MAX_USAGE_DAYS: u64 = 366;
/// Most tasks a usage summary lists.
pub const MAX_USAGE_TASKS: u32 = 100;

/// Which attempts a usage summary sums: those started at or after `since` and before
/// `until`, at most [`MAX_USAGE_DAYS`] apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageQuery {
    pub since: Timestamp,
    pub until: Timestamp,
    /// How many tasks the summary lists, the costliest first (1 to [`MAX_USAGE_TASKS`]).
    pub top_tasks: u32,
}

impl UsageQuery {
    /// Checks the window and the number of tasks.
    pub fn validate(&self) -> Result<()> {
        if self.since >= self.until {
            return Err(Error::invalid(
                "since",
                format!("must be before until ({})", self.until),
            ));
        }
        if self.until.since(self.since) > Duration::from_secs(MAX_USAGE_DAYS * 24 * 60 * 60) {
            return Err(Error::invalid(
                "since",
                format!(
                    "must be at most {MAX_USAGE_DAYS} days before until ({})",
                    self.until
                ),
            ));
        }
        if !(1..=MAX_USAGE_TASKS).contains(&self.top_tasks) {
            return Err(Error::invalid(
                "topTasks",
                format!("list 1 to {MAX_USAGE_TASKS} tasks (got {})", self.top_tasks),
            ));
        }
        Ok(())
    }
}

/// What the attempts started on one day (UTC) used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DayUsage {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub day: NaiveDate,
    pub attempts: u64,
    pub usage: Usage,
}

/// What the attempts of one runner session used; attempts given to no runner session
/// have none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunnerUsage {
    pub runner_session_id: Option<RunnerSessionId>,
    /// The runner session's name.
    pub name: Option<String>,
    pub attempts: u64,
    pub usage: Usage,
}

/// What the attempts run by one agent backend on one model used; either is absent when
/// the runners did not report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ModelUsage {
    #[cfg_attr(feature = "openapi", schema(value_type = Option<super::BackendName>))]
    pub backend: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<super::ModelName>))]
    pub model: Option<String>,
    pub attempts: u64,
    pub usage: Usage,
}

/// What the attempts at one task used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TaskUsage {
    pub task_id: TaskId,
    pub title: String,
    pub attempts: u64,
    pub usage: Usage,
}

/// What the attempts started in a window used: how many there were and their tokens and
/// cost in all, and the same per day (oldest first), per runner session, per backend and
/// model (each costliest first), and for the costliest tasks. The attempts of a deleted
/// task went with it and are not counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UsageSummary {
    pub since: Timestamp,
    pub until: Timestamp,
    pub attempts: u64,
    pub usage: Usage,
    /// Days with attempts only.
    pub days: Vec<DayUsage>,
    pub runners: Vec<RunnerUsage>,
    pub models: Vec<ModelUsage>,
    /// The `topTasks` costliest tasks.
    pub tasks: Vec<TaskUsage>,
}

impl UsageSummary {
    /// The summary of the window `query` names from its groups; the days hold every
    /// attempt once, so the totals are theirs.
    pub fn from_groups(
        query: &UsageQuery,
        days: Vec<DayUsage>,
        runners: Vec<RunnerUsage>,
        models: Vec<ModelUsage>,
        tasks: Vec<TaskUsage>,
    ) -> Self {
        let mut usage = Usage::default();
        for day in &days {
            usage += day.usage;
        }
        Self {
            since: query.since,
            until: query.until,
            attempts: days.iter().map(|day| day.attempts).sum(),
            usage,
            days,
            runners,
            models,
            tasks,
        }
    }
}
