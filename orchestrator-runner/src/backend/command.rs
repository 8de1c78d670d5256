//! Any command-line agent (codex exec, aider, gemini…) from a command template whose
//! `{prompt}` placeholder receives the prompt as part of one argument.

use async_trait::async_trait;
use orchestrator_core::backend::{
    AgentBackend, AgentOutcome, AgentOutput, AgentOutputSink, AgentRequest,
};
use orchestrator_core::model::{LogType, Usage};
use serde_json::json;

use super::tail;
use crate::process::AgentProcess;

/// Where the prompt goes in a command template.
pub const PROMPT_PLACEHOLDER: &str = "{prompt}";

/// Runs a command per task; its output lines become logs and exit status 0 is success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandAgent {
    template: Vec<String>,
    /// Variables the agent gets besides the runner's basics.
    env: Vec<(String, String)>,
}

impl CommandAgent {
    /// `template` is the program and its arguments; one of them must contain `{prompt}`.
    pub fn new(template: Vec<String>) -> Result<Self, String> {
        if template
            .first()
            .is_none_or(|program| program.trim().is_empty())
        {
            return Err("the agent command is empty: give the program and its arguments".into());
        }
        if !template.iter().any(|arg| arg.contains(PROMPT_PLACEHOLDER)) {
            return Err(format!(
                "the agent command has no {PROMPT_PLACEHOLDER} argument: put it where the \
                 prompt goes, e.g. codex exec {PROMPT_PLACEHOLDER}"
            ));
        }
        Ok(Self {
            template,
            env: Vec::new(),
        })
    }

    /// Gives the agent `env` besides the runner's basics (its key, variables the user
    /// passes through).
    pub fn with_env(mut self, env: Vec<(String, String)>) -> Self {
        self.env = env;
        self
    }

    fn argv(&self, prompt: &str) -> Vec<String> {
        self.template
            .iter()
            .map(|arg| arg.replace(PROMPT_PLACEHOLDER, prompt))
            .collect()
    }
}

#[async_trait]
impl AgentBackend for CommandAgent {
    fn name(&self) -> &str {
        "command"
    }

    async fn run(
        &self,
        request: AgentRequest,
        sink: &dyn AgentOutputSink,
    ) -> orchestrator_core::Result<AgentOutcome> {
        let mut process = AgentProcess::spawn(
            &self.argv(&request.prompt),
            &request.work_dir,
            &self.env,
            request.pause.clone(),
        )
        .map_err(|err| {
            orchestrator_core::Error::backend(format!(
                "`{}` could not be started: {err}",
                self.template[0]
            ))
        })?;
        let mut errors = Vec::new();
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            tokio::select! {
                line = process.stdout.next_line(), if out_open => match line {
                    Ok(Some(line)) => sink.emit(AgentOutput {
                        log_type: LogType::Info,
                        content: line,
                        metadata: None,
                    }),
                    _ => out_open = false,
                },
                line = process.stderr.next_line(), if err_open => match line {
                    Ok(Some(line)) => {
                        sink.emit(AgentOutput {
                            log_type: LogType::Info,
                            content: line.clone(),
                            metadata: Some(json!({ "stream": "stderr" })),
                        });
                        errors.push(line);
                    }
                    _ => err_open = false,
                },
            }
        }
        let status = process
            .wait()
            .await
            .map_err(orchestrator_core::Error::backend)?;
        let success = status.success();
        Ok(AgentOutcome {
            success,
            summary: None,
            error: (!success).then(|| {
                let code = status.code().map_or_else(
                    || "was killed by a signal".to_owned(),
                    |c| format!("exited with {c}"),
                );
                format!("the agent {code}: {}", tail(&errors, 5))
            }),
            usage: Usage::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_is_one_argument_and_the_template_is_checked() {
        let agent =
            CommandAgent::new(vec!["codex".into(), "exec".into(), "{prompt}".into()]).unwrap();
        assert_eq!(
            agent.argv("fix it; rm -rf / $(whoami)"),
            ["codex", "exec", "fix it; rm -rf / $(whoami)"]
        );
        assert!(
            CommandAgent::new(vec!["aider".into()])
                .unwrap_err()
                .contains("{prompt}")
        );
        assert!(CommandAgent::new(Vec::new()).is_err());
    }
}
