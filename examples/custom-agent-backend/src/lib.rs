//! An agent backend of your own: anything that implements
//! [`AgentBackend`] can do a task's work — a model behind your own
//! gateway, a code generator, a script. This one is deliberately simple: it records the
//! task in `CHANGELOG.md` of the task's worktree, streaming what it does as log entries.
//!
//! Register it with a runner like any other backend:
//! `Runner::builder(client, Arc::new(ChangelogAgent), worktrees)`.

use async_trait::async_trait;
use orchestrator_core::backend::{
    AgentBackend, AgentOutcome, AgentOutput, AgentOutputSink, AgentRequest,
};
use orchestrator_core::model::{LogType, Usage};
use serde_json::json;

/// Adds a line naming the task to `CHANGELOG.md`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChangelogAgent;

/// The task's title: the prompt's first line without its `# Task: ` heading.
fn title(prompt: &str) -> &str {
    let first = prompt.lines().next().unwrap_or_default();
    first.strip_prefix("# Task: ").unwrap_or(first).trim()
}

#[async_trait]
impl AgentBackend for ChangelogAgent {
    fn name(&self) -> &str {
        "changelog"
    }

    async fn run(
        &self,
        request: AgentRequest,
        sink: &dyn AgentOutputSink,
    ) -> orchestrator_core::Result<AgentOutcome> {
        let title = title(&request.prompt).to_owned();
        sink.emit(AgentOutput {
            log_type: LogType::Thinking,
            content: format!("Recording \"{title}\" in the changelog."),
            metadata: None,
        });
        // A human may pause the agent from the dashboard; hold still until resumed
        // before each step that changes something.
        let mut pause = request.pause.clone();
        pause.until_resumed().await;
        let path = request.work_dir.join("CHANGELOG.md");
        let mut changelog = tokio::fs::read_to_string(&path).await.unwrap_or_default();
        if changelog.is_empty() {
            changelog.push_str("# Changelog\n\n");
        }
        changelog.push_str(&format!("- {title}\n"));
        sink.emit(AgentOutput {
            log_type: LogType::ToolCall,
            content: "write CHANGELOG.md".into(),
            metadata: Some(json!({ "bytes": changelog.len() })),
        });
        if let Err(err) = tokio::fs::write(&path, &changelog).await {
            // The agent failed at its task; that is an outcome, not a backend error.
            return Ok(AgentOutcome::failed(
                format!("CHANGELOG.md could not be written: {err}"),
                Usage::default(),
            ));
        }
        Ok(AgentOutcome::succeeded(
            Some(format!("Added \"{title}\" to CHANGELOG.md")),
            Usage::default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use orchestrator_core::backend::PauseSignal;

    use super::*;

    #[derive(Default)]
    struct Collected(Mutex<Vec<AgentOutput>>);

    impl AgentOutputSink for Collected {
        fn emit(&self, output: AgentOutput) {
            self.0.lock().unwrap().push(output);
        }
    }

    #[tokio::test]
    async fn the_task_is_recorded_and_narrated() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Collected::default();
        let request = AgentRequest {
            prompt: "# Task: Add login\n\nJWT login.".into(),
            work_dir: dir.path().to_owned(),
            locked_paths: Vec::new(),
            pause: PauseSignal::never(),
        };
        let outcome = ChangelogAgent.run(request.clone(), &sink).await.unwrap();
        assert!(outcome.success);
        ChangelogAgent.run(request, &sink).await.unwrap();
        let changelog = std::fs::read_to_string(dir.path().join("CHANGELOG.md")).unwrap();
        assert_eq!(changelog, "# Changelog\n\n- Add login\n- Add login\n");
        {
            let said = sink.0.lock().unwrap();
            assert_eq!(said[0].log_type, LogType::Thinking);
            assert_eq!(said[1].content, "write CHANGELOG.md");
        }

        let missing = AgentRequest {
            prompt: "# Task: x".into(),
            work_dir: dir.path().join("missing"),
            locked_paths: Vec::new(),
            pause: PauseSignal::never(),
        };
        let outcome = ChangelogAgent.run(missing, &sink).await.unwrap();
        assert!(!outcome.success && outcome.error.is_some());
    }
}
