//! What `start` shows while it runs: a spinner per running attempt on a terminal, one
//! plain line per event otherwise (logs, pipes, CI).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use orchestrator_core::ids::TaskId;
use orchestrator_runner::RunnerEvent;

/// Where events go.
pub(crate) enum Display {
    Terminal {
        bars: MultiProgress,
        running: HashMap<TaskId, ProgressBar>,
    },
    Plain,
}

impl Display {
    /// Spinners when standard output is a terminal, plain lines otherwise.
    pub(crate) fn new() -> Self {
        if std::io::stdout().is_terminal() {
            Self::Terminal {
                bars: MultiProgress::new(),
                running: HashMap::new(),
            }
        } else {
            Self::Plain
        }
    }

    pub(crate) fn show(&mut self, event: &RunnerEvent) {
        let text = event.to_string();
        match self {
            Self::Plain => match event {
                RunnerEvent::Disconnected { .. }
                | RunnerEvent::Warning { .. }
                | RunnerEvent::NotAccepted { .. } => eprintln!("{text}"),
                _ => println!("{text}"),
            },
            Self::Terminal { bars, running } => match event {
                RunnerEvent::Claimed { task, .. } => {
                    let bar = bars.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_message(text);
                    bar.enable_steady_tick(Duration::from_millis(120));
                    running.insert(*task, bar);
                }
                RunnerEvent::Verifying { task } => {
                    if let Some(bar) = running.get(task) {
                        bar.set_message(text);
                    }
                }
                RunnerEvent::Finished { task, .. }
                | RunnerEvent::NotAccepted { task, .. }
                | RunnerEvent::GivenBack { task } => match running.remove(task) {
                    Some(bar) => bar.finish_with_message(text),
                    None => {
                        let _ = bars.println(text);
                    }
                },
                RunnerEvent::Disconnected { .. }
                | RunnerEvent::Warning { .. }
                | RunnerEvent::Resending { .. } => {
                    let _ = bars.println(text);
                }
            },
        }
    }
}
