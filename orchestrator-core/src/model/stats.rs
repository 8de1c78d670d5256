//! Counts over the whole system, for the dashboard.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{AgentStatus, ExceptionSeverity, TaskStatus};

/// How many completed tasks the mean completion time is taken over (the newest).
pub const COMPLETION_SAMPLE: u32 = 100;

/// The state of the queue, the agents and the inbox at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemStats {
    /// Tasks per status (statuses without tasks are absent).
    pub tasks_by_status: BTreeMap<TaskStatus, u64>,
    /// Agent slots per status.
    pub agents_by_status: BTreeMap<AgentStatus, u64>,
    /// OPEN exceptions per severity.
    pub open_exceptions_by_severity: BTreeMap<ExceptionSeverity, u64>,
    /// Exceptions in any status.
    pub exceptions_total: u64,
    /// Tasks completed at or after the `since` instant asked for.
    pub completed_since: u64,
    /// FAILED tasks last changed at or after `since`.
    pub failed_since: u64,
    /// Mean time from assignment to completion over the newest [`COMPLETION_SAMPLE`]
    /// completed tasks, in milliseconds; `None` before any.
    pub mean_completion_ms: Option<f64>,
}

impl SystemStats {
    /// Tasks in `status`.
    pub fn tasks(&self, status: TaskStatus) -> u64 {
        self.tasks_by_status.get(&status).copied().unwrap_or(0)
    }

    /// Agent slots in `status`.
    pub fn agents(&self, status: AgentStatus) -> u64 {
        self.agents_by_status.get(&status).copied().unwrap_or(0)
    }

    /// OPEN exceptions of `severity`.
    pub fn open_exceptions(&self, severity: ExceptionSeverity) -> u64 {
        self.open_exceptions_by_severity
            .get(&severity)
            .copied()
            .unwrap_or(0)
    }

    /// The mean of `durations_ms`, `None` when empty.
    pub fn mean(durations_ms: &[i64]) -> Option<f64> {
        (!durations_ms.is_empty()).then(|| {
            durations_ms.iter().map(|d| *d as f64).sum::<f64>() / durations_ms.len() as f64
        })
    }
}
