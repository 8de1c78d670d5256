//! The in-memory store's usage summary: the attempts of the window, summed per grouping.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::Hash;

use super::State;
use crate::model::{
    DayUsage, ModelUsage, RunnerUsage, TaskAttempt, TaskUsage, Usage, UsageQuery, UsageSummary,
};

/// The attempts of `attempts` summed per `key`: each key with its count and usage.
fn summed<'a, K: Eq + Hash>(
    attempts: &[&'a TaskAttempt],
    key: impl Fn(&'a TaskAttempt) -> K,
) -> Vec<(K, u64, Usage)> {
    let mut groups: HashMap<K, (u64, Usage)> = HashMap::new();
    for attempt in attempts {
        let (count, usage) = groups.entry(key(attempt)).or_default();
        *count += 1;
        *usage += attempt.usage;
    }
    groups
        .into_iter()
        .map(|(key, (count, usage))| (key, count, usage))
        .collect()
}

/// The costlier of two usages first.
fn costliest_first(a: &Usage, b: &Usage) -> Ordering {
    b.cost_usd.total_cmp(&a.cost_usd)
}

/// Absent values after present ones, which are in their own order.
fn absent_last<T: Ord>(a: &Option<T>, b: &Option<T>) -> Ordering {
    (a.is_none(), a).cmp(&(b.is_none(), b))
}

impl State {
    /// What the attempts started in the window of `query` used (see
    /// [`TaskStore::usage_summary`](crate::store::TaskStore::usage_summary)).
    pub(super) fn usage_summary(&self, query: &UsageQuery) -> UsageSummary {
        let started: Vec<&TaskAttempt> = self
            .attempts
            .values()
            .flatten()
            .filter(|attempt| (query.since..query.until).contains(&attempt.started_at))
            .collect();
        let mut days: Vec<DayUsage> = summed(&started, |a| a.started_at.as_datetime().date_naive())
            .into_iter()
            .map(|(day, attempts, usage)| DayUsage {
                day,
                attempts,
                usage,
            })
            .collect();
        days.sort_by_key(|row| row.day);
        let mut runners: Vec<RunnerUsage> = summed(&started, |a| a.runner_session_id)
            .into_iter()
            .map(|(id, attempts, usage)| RunnerUsage {
                runner_session_id: id,
                name: id
                    .and_then(|id| self.sessions.get(&id))
                    .map(|session| session.name.clone()),
                attempts,
                usage,
            })
            .collect();
        runners.sort_by(|a, b| {
            costliest_first(&a.usage, &b.usage)
                .then_with(|| absent_last(&a.runner_session_id, &b.runner_session_id))
        });
        let mut models: Vec<ModelUsage> = summed(&started, |a| (&a.backend, &a.model))
            .into_iter()
            .map(|((backend, model), attempts, usage)| ModelUsage {
                backend: backend.clone(),
                model: model.clone(),
                attempts,
                usage,
            })
            .collect();
        models.sort_by(|a, b| {
            costliest_first(&a.usage, &b.usage)
                .then_with(|| absent_last(&a.backend, &b.backend))
                .then_with(|| absent_last(&a.model, &b.model))
        });
        let mut tasks: Vec<TaskUsage> = summed(&started, |a| a.task_id)
            .into_iter()
            .filter_map(|(task_id, attempts, usage)| {
                Some(TaskUsage {
                    task_id,
                    title: self.tasks.get(&task_id)?.title.clone(),
                    attempts,
                    usage,
                })
            })
            .collect();
        tasks.sort_by(|a, b| costliest_first(&a.usage, &b.usage).then(a.task_id.cmp(&b.task_id)));
        tasks.truncate(query.top_tasks as usize);
        UsageSummary::from_groups(query, days, runners, models, tasks)
    }
}
