//! The fleet's activity hour by hour: tasks that arrived, attempts that started,
//! completed and failed, how long tasks waited in the queue before their first attempt,
//! and how many were waiting at each hour's end.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::AttemptOutcome;
use crate::time::Timestamp;

/// Most hours one activity read covers (a week).
pub const MAX_ACTIVITY_HOURS: u32 = 168;

const HOUR_MS: i64 = 3_600_000;

/// One hour of activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HourActivity {
    /// The hour's start.
    pub hour: Timestamp,
    /// Tasks created in the hour.
    pub arrived: u64,
    /// Attempts started in the hour.
    pub started: u64,
    /// Attempts that ended in the hour with their task completed.
    pub completed: u64,
    /// Attempts that ended in the hour failed or with their lease run out.
    pub failed: u64,
    /// Mean time from a task's creation to its first attempt's start, over the first
    /// attempts that started in the hour; `None` without any.
    pub mean_wait_ms: Option<f64>,
    /// Tasks waiting in the queue at the hour's end (or now, for the current hour).
    pub queued_at_end: u64,
}

/// A task's stay in the queue: from `entered` until `left` (`None`: still there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStay {
    pub entered: Timestamp,
    pub left: Option<Timestamp>,
    /// The stay began with the task's creation (not with a retry or a reopening).
    pub arrival: bool,
}

impl QueueStay {
    /// The stays of a task created at `created`, now in a queued state or not
    /// (`queued_now`), whose first attempt started at `first_start`, last changed at
    /// `updated`. A task back in the queue after attempts stays again from its last
    /// change; one that left without an attempt (cancelled, deleted as dependent) left
    /// at its last change.
    pub fn of_task(
        created: Timestamp,
        queued_now: bool,
        first_start: Option<Timestamp>,
        updated: Timestamp,
    ) -> Vec<Self> {
        match (first_start, queued_now) {
            (Some(start), true) => vec![
                Self::arriving(created, Some(start)),
                Self {
                    entered: updated.max(start),
                    left: None,
                    arrival: false,
                },
            ],
            (Some(start), false) => vec![Self::arriving(created, Some(start))],
            (None, true) => vec![Self::arriving(created, None)],
            (None, false) => vec![Self::arriving(created, Some(updated))],
        }
    }

    fn arriving(created: Timestamp, left: Option<Timestamp>) -> Self {
        Self {
            entered: created,
            left,
            arrival: true,
        }
    }

    fn holds_at(&self, at: Timestamp) -> bool {
        self.entered <= at && self.left.is_none_or(|left| left > at)
    }
}

/// An attempt as the activity counts it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttemptSpan {
    pub started: Timestamp,
    pub ended: Option<Timestamp>,
    pub outcome: AttemptOutcome,
    /// For a task's first attempt, how long the task waited for it.
    pub waited_ms: Option<i64>,
}

/// Activity over consecutive hours, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Activity {
    pub hours: Vec<HourActivity>,
}

impl Activity {
    /// Checks the number of hours asked for (1 to [`MAX_ACTIVITY_HOURS`]).
    pub fn check_hours(hours: u32) -> Result<()> {
        if hours == 0 || hours > MAX_ACTIVITY_HOURS {
            return Err(Error::invalid(
                "hours",
                format!("must be 1 to {MAX_ACTIVITY_HOURS}"),
            ));
        }
        Ok(())
    }

    /// The first hour of `hours` hours that end with the one holding `now`.
    pub fn window_start(now: Timestamp, hours: u32) -> Timestamp {
        let current = now.as_millis().div_euclid(HOUR_MS) * HOUR_MS;
        Timestamp::from_millis(current - i64::from(hours.saturating_sub(1)) * HOUR_MS)
            .unwrap_or(now)
    }

    /// Tallies `stays` and `attempts` into the `hours` hours that end with the one
    /// holding `now`.
    pub fn tally(
        now: Timestamp,
        hours: u32,
        stays: &[QueueStay],
        attempts: &[AttemptSpan],
    ) -> Self {
        let first = Self::window_start(now, hours).as_millis();
        let bucket = |at: Timestamp| -> Option<usize> {
            let offset = at.as_millis() - first;
            (offset >= 0 && offset < i64::from(hours) * HOUR_MS)
                .then(|| usize::try_from(offset / HOUR_MS).unwrap_or(usize::MAX))
        };
        let mut tallies: Vec<HourActivity> = (0..hours)
            .map(|index| {
                let start = first + i64::from(index) * HOUR_MS;
                let end = Timestamp::from_millis(start + HOUR_MS - 1)
                    .unwrap_or(now)
                    .min(now);
                HourActivity {
                    hour: Timestamp::from_millis(start).unwrap_or(now),
                    arrived: 0,
                    started: 0,
                    completed: 0,
                    failed: 0,
                    mean_wait_ms: None,
                    queued_at_end: stays.iter().filter(|stay| stay.holds_at(end)).count() as u64,
                }
            })
            .collect();
        let mut waits: Vec<(f64, u64)> = vec![(0.0, 0); tallies.len()];
        for stay in stays.iter().filter(|stay| stay.arrival) {
            if let Some(index) = bucket(stay.entered) {
                tallies[index].arrived += 1;
            }
        }
        for attempt in attempts {
            if let Some(index) = bucket(attempt.started) {
                tallies[index].started += 1;
                if let Some(waited) = attempt.waited_ms {
                    waits[index].0 += waited.max(0) as f64;
                    waits[index].1 += 1;
                }
            }
            if let Some(index) = attempt.ended.and_then(bucket) {
                match attempt.outcome {
                    AttemptOutcome::Completed => tallies[index].completed += 1,
                    AttemptOutcome::Failed | AttemptOutcome::Expired => {
                        tallies[index].failed += 1;
                    }
                    _ => {}
                }
            }
        }
        for (tally, (sum, count)) in tallies.iter_mut().zip(waits) {
            tally.mean_wait_ms = (count > 0).then(|| sum / count as f64);
        }
        Self { hours: tallies }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: i64, minute: i64) -> Timestamp {
        Timestamp::from_millis(
            1_800_000_000_000 / HOUR_MS * HOUR_MS + hour * HOUR_MS + minute * 60_000,
        )
        .unwrap()
    }

    #[test]
    fn hours_count_arrivals_starts_ends_waits_and_the_queue() {
        let now = at(3, 30);
        let mut stays = QueueStay::of_task(at(1, 0), false, Some(at(1, 20)), at(2, 0));
        stays.extend(QueueStay::of_task(at(2, 10), true, None, at(2, 10)));
        stays.extend(QueueStay::of_task(at(0, 5), false, None, at(1, 50)));
        let attempts = [
            AttemptSpan {
                started: at(1, 20),
                ended: Some(at(2, 0)),
                outcome: AttemptOutcome::Completed,
                waited_ms: Some(20 * 60_000),
            },
            AttemptSpan {
                started: at(3, 0),
                ended: Some(at(3, 10)),
                outcome: AttemptOutcome::Expired,
                waited_ms: None,
            },
        ];
        let activity = Activity::tally(now, 4, &stays, &attempts);
        let hours = &activity.hours;
        assert_eq!(hours.len(), 4);
        assert_eq!(hours[0].hour, at(0, 0));
        let arrived: Vec<u64> = hours.iter().map(|h| h.arrived).collect();
        assert_eq!(arrived, [1, 1, 1, 0]);
        assert_eq!(hours[1].started, 1);
        assert_eq!(hours[1].mean_wait_ms, Some(20.0 * 60_000.0));
        assert_eq!(hours[2].completed, 1);
        assert_eq!(hours[3].failed, 1);
        let queued: Vec<u64> = hours.iter().map(|h| h.queued_at_end).collect();
        // Hour 0 ends with the cancelled task waiting; hour 1 after it left and the
        // first started; hours 2 and 3 with the task that still waits.
        assert_eq!(queued, [1, 0, 1, 1]);
    }

    #[test]
    fn a_task_back_in_the_queue_arrives_once() {
        let stays = QueueStay::of_task(at(0, 0), true, Some(at(0, 10)), at(0, 30));
        let activity = Activity::tally(at(0, 40), 1, &stays, &[]);
        assert_eq!(activity.hours[0].arrived, 1);
        assert_eq!(activity.hours[0].queued_at_end, 1);
    }

    #[test]
    fn the_window_is_checked() {
        assert!(Activity::check_hours(0).is_err());
        assert!(Activity::check_hours(MAX_ACTIVITY_HOURS + 1).is_err());
        Activity::check_hours(24).unwrap();
    }
}
