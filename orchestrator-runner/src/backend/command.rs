//! Any command-line agent (codex exec, aider, gemini…) from a command template whose
//! `{prompt_file}` placeholder receives the path of a file holding the prompt, or whose
//! `{prompt}` placeholder receives the prompt itself as part of one argument.

use async_trait::async_trait;
use orchestrator_core::backend::{
    AgentBackend, AgentOutcome, AgentOutput, AgentOutputSink, AgentRequest,
};
use orchestrator_core::model::{LogType, Usage};
use serde_json::json;

use std::io::Write;
use std::path::Path;

use super::tail;
use crate::process::AgentProcess;

/// Where the prompt goes in a command template, as text. An argument is visible to every
/// user of the machine (in the process list) and holds at most [`MAX_ARGUMENT_BYTES`].
pub const PROMPT_PLACEHOLDER: &str = "{prompt}";

/// Where the path of a file holding the prompt goes in a command template. The file is
/// readable by the runner's user alone, lies outside the worktree, and is removed when
/// the agent ends.
pub const PROMPT_FILE_PLACEHOLDER: &str = "{prompt_file}";

/// Longest single argument Linux passes to a program (`MAX_ARG_STRLEN`, 32 pages), less
/// its terminating NUL.
const MAX_ARGUMENT_BYTES: usize = 32 * 4096 - 1;

/// Runs a command per task; its output lines become logs and exit status 0 is success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandAgent {
    template: Vec<String>,
    /// Variables the agent gets besides the runner's basics.
    env: Vec<(String, String)>,
}

impl CommandAgent {
    /// `template` is the program and its arguments; one of them must contain
    /// `{prompt_file}` or `{prompt}`.
    pub fn new(template: Vec<String>) -> Result<Self, String> {
        if template
            .first()
            .is_none_or(|program| program.trim().is_empty())
        {
            return Err("the agent command is empty: give the program and its arguments".into());
        }
        if !template
            .iter()
            .any(|arg| arg.contains(PROMPT_PLACEHOLDER) || arg.contains(PROMPT_FILE_PLACEHOLDER))
        {
            return Err(format!(
                "the agent command has neither {PROMPT_FILE_PLACEHOLDER} nor \
                 {PROMPT_PLACEHOLDER}: put {PROMPT_FILE_PLACEHOLDER} where the path of a file \
                 holding the prompt goes (e.g. sh -c 'codex exec \"$(cat \"$1\")\"' - \
                 {PROMPT_FILE_PLACEHOLDER}), or {PROMPT_PLACEHOLDER} where the prompt itself goes"
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

    fn uses_prompt_file(&self) -> bool {
        self.template
            .iter()
            .any(|arg| arg.contains(PROMPT_FILE_PLACEHOLDER))
    }

    /// The command for `prompt`, with the prompt file's path where the template asks for
    /// it; an error says when the prompt is too long to be an argument.
    fn argv(&self, prompt: &str, prompt_file: Option<&Path>) -> Result<Vec<String>, String> {
        let path = prompt_file.map(|path| path.to_string_lossy());
        let argv: Vec<String> = self
            .template
            .iter()
            .map(|arg| {
                let arg = match &path {
                    Some(path) => arg.replace(PROMPT_FILE_PLACEHOLDER, path),
                    None => arg.clone(),
                };
                arg.replace(PROMPT_PLACEHOLDER, prompt)
            })
            .collect();
        match argv.iter().find(|arg| arg.len() > MAX_ARGUMENT_BYTES) {
            Some(long) => Err(format!(
                "the prompt makes an argument of {} KiB, more than a program may be given in one \
                 ({} KiB): put {PROMPT_FILE_PLACEHOLDER} in the agent command instead of \
                 {PROMPT_PLACEHOLDER}, and the agent reads the prompt from that file",
                long.len() / 1024,
                MAX_ARGUMENT_BYTES / 1024
            )),
            None => Ok(argv),
        }
    }
}

/// The prompt in a file of its own, outside the worktree and readable by this user
/// alone; removed when dropped.
fn prompt_file(prompt: &str) -> std::io::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new()
        .prefix("orchestrator-prompt-")
        .suffix(".md")
        .tempfile()?;
    file.write_all(prompt.as_bytes())?;
    file.flush()?;
    Ok(file)
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
        let file = if self.uses_prompt_file() {
            Some(prompt_file(&request.prompt).map_err(|err| {
                orchestrator_core::Error::backend(format!(
                    "the prompt file could not be written in {}: {err}",
                    std::env::temp_dir().display()
                ))
            })?)
        } else {
            None
        };
        let argv = self
            .argv(&request.prompt, file.as_ref().map(|f| f.path()))
            .map_err(orchestrator_core::Error::backend)?;
        let mut process = AgentProcess::spawn(
            &argv,
            &request.work_dir,
            &self.env,
            request.pause.clone(),
            None,
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
            // A command names no model.
            model: None,
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
            agent.argv("fix it; rm -rf / $(whoami)", None).unwrap(),
            ["codex", "exec", "fix it; rm -rf / $(whoami)"]
        );
        let refused = CommandAgent::new(vec!["aider".into()]).unwrap_err();
        assert!(
            refused.contains("{prompt_file}") && refused.contains("{prompt}"),
            "{refused}"
        );
        assert!(CommandAgent::new(Vec::new()).is_err());
    }

    #[test]
    fn a_long_prompt_goes_in_a_file_and_is_refused_as_an_argument() {
        let long = "x".repeat(150 * 1024);
        let by_file = CommandAgent::new(vec![
            "aider".into(),
            "--message-file".into(),
            "{prompt_file}".into(),
        ])
        .unwrap();
        assert!(by_file.uses_prompt_file());
        let file = prompt_file(&long).unwrap();
        let argv = by_file.argv(&long, Some(file.path())).unwrap();
        assert_eq!(argv[2], file.path().to_string_lossy());
        assert_eq!(std::fs::read_to_string(file.path()).unwrap(), long);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "only its owner may read it: {mode:o}");

        let by_argument =
            CommandAgent::new(vec!["codex".into(), "exec".into(), "{prompt}".into()]).unwrap();
        let refused = by_argument.argv(&long, None).unwrap_err();
        assert!(refused.contains("{prompt_file}"), "{refused}");
    }
}
