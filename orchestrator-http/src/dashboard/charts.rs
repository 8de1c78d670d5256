//! The board's charts of the last 24 hours, drawn on the server as SVG: attempts
//! completed and failed per hour, the queue's depth at each hour's end, and how long
//! tasks waited for their first attempt. The activity behind them is read again after a
//! commit, at most once per [`AT_MOST_EVERY`], and shared by every board.

use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use orchestrator_core::model::{Activity, HourActivity};

use crate::error::ApiResult;
use crate::state::AppState;

/// Hours the board's charts cover.
const HOURS: u32 = 24;

/// The shortest time between two reads of the activity while commits go on.
const AT_MOST_EVERY: Duration = Duration::from_secs(2);

/// A read of the activity: when, after which commit, and what it found.
type ActivityRead = (Instant, i64, Activity);

/// The latest read of the activity, shared by every board.
#[derive(Debug, Default)]
pub(crate) struct ActivityCache {
    latest: Mutex<Option<ActivityRead>>,
}

impl ActivityCache {
    async fn get(&self, state: &AppState) -> ApiResult<Activity> {
        let generation = *state.store.subscribe().borrow();
        if let Some((read_at, read_after, activity)) = self.lock().as_ref()
            && (*read_after == generation || read_at.elapsed() < AT_MOST_EVERY)
        {
            return Ok(activity.clone());
        }
        let activity = state.store.activity(state.now(), HOURS).await?;
        *self.lock() = Some((Instant::now(), generation, activity.clone()));
        Ok(activity)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ActivityRead>> {
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A chart as the board shows it.
pub(super) struct Chart {
    pub(super) title: &'static str,
    /// The chart in words, for people who do not see it.
    pub(super) summary: String,
    pub(super) svg: String,
}

/// The board's charts.
pub(super) async fn board_charts(state: &AppState) -> ApiResult<Vec<Chart>> {
    let activity = state.dashboard_activity.get(state).await?;
    Ok(charts(&activity.hours))
}

fn charts(hours: &[HourActivity]) -> Vec<Chart> {
    let completed: u64 = hours.iter().map(|h| h.completed).sum();
    let failed: u64 = hours.iter().map(|h| h.failed).sum();
    let deepest = hours.iter().map(|h| h.queued_at_end).max().unwrap_or(0);
    let now_queued = hours.last().map_or(0, |h| h.queued_at_end);
    let waits: Vec<f64> = hours.iter().filter_map(|h| h.mean_wait_ms).collect();
    let longest_wait = waits.iter().copied().fold(0.0, f64::max);
    vec![
        Chart {
            title: "Completed and failed",
            summary: format!(
                "{completed} attempts completed and {failed} failed in the last 24 hours."
            ),
            svg: bars(
                hours,
                1.0,
                |h| vec![("ok", h.completed as f64), ("bad", h.failed as f64)],
                |h| format!("{} completed, {} failed", h.completed, h.failed),
            ),
        },
        Chart {
            title: "Queue depth",
            summary: format!("{now_queued} tasks wait now; at most {deepest} at an hour's end."),
            svg: bars(
                hours,
                1.0,
                |h| vec![("queue", h.queued_at_end as f64)],
                |h| format!("{} waiting at the hour's end", h.queued_at_end),
            ),
        },
        Chart {
            title: "Wait before the first attempt",
            summary: if waits.is_empty() {
                "No task started in the last 24 hours.".to_owned()
            } else {
                format!("The longest hourly mean was {}.", minutes(longest_wait))
            },
            // A minute at least, so that waits of moments draw as moments.
            svg: bars(
                hours,
                60_000.0,
                |h| vec![("wait", h.mean_wait_ms.unwrap_or(0.0))],
                |h| match h.mean_wait_ms {
                    Some(wait) => format!("{} on average", minutes(wait)),
                    None => "no start".to_owned(),
                },
            ),
        },
    ]
}

fn minutes(ms: f64) -> String {
    let seconds = ms / 1000.0;
    if seconds < 10.0 {
        format!("{seconds:.1} s")
    } else if seconds < 60.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{:.0} min", seconds / 60.0)
    }
}

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 110.0;
const AXIS: f64 = 16.0;

/// Stacked bars, one per hour, each stack's parts `(class, value)` from `parts`, and a
/// tooltip per hour from `describe`; the hour every six hours under the bars (the
/// page's script writes them in the browser's time zone). The scale reaches at least
/// `least`, so that small values draw small bars.
fn bars(
    hours: &[HourActivity],
    least: f64,
    parts: impl Fn(&HourActivity) -> Vec<(&'static str, f64)>,
    describe: impl Fn(&HourActivity) -> String,
) -> String {
    let top = hours
        .iter()
        .map(|h| parts(h).iter().map(|(_, v)| v).sum::<f64>())
        .fold(least, f64::max);
    let slot = WIDTH / hours.len().max(1) as f64;
    let plot = HEIGHT - AXIS;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-hidden=\"true\" focusable=\"false\">"
    );
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"0\" y1=\"{plot}\" x2=\"{WIDTH}\" y2=\"{plot}\"/>"
    );
    for (index, hour) in hours.iter().enumerate() {
        let x = index as f64 * slot;
        let _ = write!(
            svg,
            "<g><title>{} UTC: {}</title>",
            hour.hour,
            describe(hour)
        );
        let mut base = plot;
        for (class, value) in parts(hour) {
            let height = value / top * (plot - 4.0);
            base -= height;
            let _ = write!(
                svg,
                "<rect class=\"{class}\" x=\"{:.1}\" y=\"{base:.1}\" width=\"{:.1}\" height=\"{height:.1}\"/>",
                x + 1.0,
                (slot - 2.0).max(1.0)
            );
        }
        // A transparent bar over the whole slot carries the tooltip.
        let _ = write!(
            svg,
            "<rect class=\"hit\" x=\"{x:.1}\" y=\"0\" width=\"{slot:.1}\" height=\"{plot}\"/></g>"
        );
        if index % 6 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{HEIGHT}\" data-hour=\"{}\">{}</text>",
                hour.hour,
                &hour.hour.to_string()[11..16]
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use orchestrator_core::Timestamp;

    use super::*;

    fn hour(index: i64, completed: u64, failed: u64) -> HourActivity {
        HourActivity {
            hour: Timestamp::from_millis(1_735_689_600_000 + index * 3_600_000).unwrap(),
            arrived: 0,
            started: 0,
            completed,
            failed,
            mean_wait_ms: (completed > 0).then_some(90_000.0),
            queued_at_end: completed + failed,
        }
    }

    #[test]
    fn charts_draw_a_bar_per_hour_and_say_what_they_show() {
        let hours: Vec<HourActivity> = (0..24)
            .map(|i| hour(i, (i % 3) as u64, (i % 2) as u64))
            .collect();
        let charts = charts(&hours);
        assert_eq!(charts.len(), 3);
        assert_eq!(charts[0].svg.matches("<title>").count(), 24);
        assert_eq!(charts[0].svg.matches("data-hour=").count(), 4);
        assert!(
            charts[0]
                .summary
                .starts_with("24 attempts completed and 12 failed"),
            "{}",
            charts[0].summary
        );
        assert!(
            charts[2].summary.contains("2 min")
                || charts[2].summary.contains("90 s")
                || charts[2].summary.contains("1 min"),
            "{}",
            charts[2].summary
        );
        assert!(charts[0].svg.starts_with("<svg") && charts[0].svg.ends_with("</svg>"));
    }

    #[test]
    fn an_empty_day_draws_flat_charts() {
        let hours: Vec<HourActivity> = (0..24).map(|i| hour(i, 0, 0)).collect();
        for chart in charts(&hours) {
            assert!(!chart.svg.contains("NaN"), "{}", chart.svg);
        }
    }
}
