//! Claude Code: the `claude` CLI in print mode with `--output-format stream-json`, each
//! line of its stream turned into a log entry, the opening `system` event naming the
//! model, and the final `result` event deciding success (not the exit status).

use std::path::PathBuf;

use async_trait::async_trait;
use orchestrator_core::backend::{
    AgentBackend, AgentOutcome, AgentOutput, AgentOutputSink, AgentRequest,
};
use orchestrator_core::model::{LogType, Usage};
use serde_json::{Value, json};

use super::tail;
use crate::process::AgentProcess;

/// Characters of a tool's result kept in a log entry.
const RESULT_CHARS: usize = 4_000;

/// The tools Claude Code may use without asking, unless configured otherwise.
pub const DEFAULT_ALLOWED_TOOLS: &str = "Read,Write,Edit,MultiEdit,Glob,Grep,LS,Bash";

/// Prefixes of the runner's variables that are Claude Code's own settings (its key, its
/// endpoint, its options): an agent run by this backend gets them, and no other secret.
const OWN_SETTINGS: &[&str] = &["ANTHROPIC_", "CLAUDE_"];

/// Runs the `claude` binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaudeCode {
    /// The binary: a path, or a name looked up on `PATH`.
    pub binary: PathBuf,
    /// Passed to `--allowedTools`.
    pub allowed_tools: String,
    /// Passed to `--max-turns`.
    pub max_turns: u32,
    /// Passed to `--model` when set.
    pub model: Option<String>,
    /// Variables for the agent (an API key, a base URL) on top of the runner's basics and
    /// Claude Code's own settings (`ANTHROPIC_*`, `CLAUDE_*`).
    pub env: Vec<(String, String)>,
    /// Passes `--dangerously-skip-permissions` instead of `--permission-mode acceptEdits`:
    /// the agent runs any command without asking. Refused when running as root.
    pub skip_permissions: bool,
}

impl Default for ClaudeCode {
    fn default() -> Self {
        Self {
            binary: PathBuf::from("claude"),
            allowed_tools: DEFAULT_ALLOWED_TOOLS.to_owned(),
            max_turns: 50,
            model: None,
            env: Vec::new(),
            skip_permissions: false,
        }
    }
}

impl ClaudeCode {
    /// Whether this configuration may run here. Skipping permissions as root is refused:
    /// every command the model chose would run unchecked with the machine's full rights.
    pub fn check(&self) -> Result<(), String> {
        if self.skip_permissions && nix::unistd::geteuid().is_root() {
            return Err(
                "--dangerously-skip-permissions is refused when running as root: \
                 the agent's commands would run unchecked with full control of the machine; \
                 run the runner as an ordinary user, or drop the flag (edits are accepted \
                 and --allowed-tools lists the commands allowed without asking)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The command line; the prompt itself goes on standard input, where neither the
    /// argument limit nor the process list applies.
    fn argv(&self) -> Vec<String> {
        let permissions: &[&str] = if self.skip_permissions {
            &["--dangerously-skip-permissions"]
        } else {
            &["--permission-mode", "acceptEdits"]
        };
        let mut argv: Vec<String> = vec![
            self.binary.to_string_lossy().into_owned(),
            "-p".into(),
            "--output-format".into(),
            "stream-json".into(),
            "--verbose".into(),
        ];
        argv.extend(permissions.iter().map(|&flag| flag.to_owned()));
        argv.extend([
            "--allowedTools".into(),
            self.allowed_tools.clone(),
            "--max-turns".into(),
            self.max_turns.to_string(),
        ]);
        if let Some(model) = &self.model {
            argv.extend(["--model".into(), model.clone()]);
        }
        argv
    }
}

/// What one line of the stream says.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Entries for the log.
    Output(Vec<AgentOutput>),
    /// A `system` event naming the model the session runs on, with its log entry.
    Started { model: String, entry: AgentOutput },
    /// The closing `result` event.
    Finished(AgentOutcome),
}

/// Reads one line of `--output-format stream-json`.
pub fn parse_stream_line(line: &str) -> StreamEvent {
    let Ok(event) = serde_json::from_str::<Value>(line) else {
        return StreamEvent::Output(vec![entry(LogType::Info, line.to_owned(), None)]);
    };
    match event["type"].as_str().unwrap_or_default() {
        "system" => {
            let subtype = event["subtype"].as_str().unwrap_or("system");
            let opened = |model: &str| {
                entry(
                    LogType::Info,
                    format!("claude {subtype} ({model})"),
                    Some(json!({ "sessionId": event["session_id"] })),
                )
            };
            match event["model"].as_str() {
                Some(model) => StreamEvent::Started {
                    model: model.to_owned(),
                    entry: opened(model),
                },
                None => StreamEvent::Output(vec![opened("unknown model")]),
            }
        }
        "assistant" => StreamEvent::Output(
            blocks(&event)
                .filter_map(|block| match block["type"].as_str()? {
                    "text" => Some(entry(
                        LogType::Thinking,
                        block["text"].as_str()?.to_owned(),
                        None,
                    )),
                    "thinking" => Some(entry(
                        LogType::Thinking,
                        block["thinking"].as_str()?.to_owned(),
                        None,
                    )),
                    "tool_use" => Some(entry(
                        LogType::ToolCall,
                        describe_tool_call(block),
                        Some(json!({ "tool": block["name"], "input": block["input"], "id": block["id"] })),
                    )),
                    _ => None,
                })
                .collect(),
        ),
        "user" => StreamEvent::Output(
            blocks(&event)
                .filter(|block| block["type"] == "tool_result")
                .map(|block| {
                    let failed = block["is_error"].as_bool().unwrap_or(false);
                    let text: String = result_text(&block["content"])
                        .chars()
                        .take(RESULT_CHARS)
                        .collect();
                    entry(
                        if failed { LogType::Error } else { LogType::ToolResult },
                        text,
                        Some(json!({ "toolUseId": block["tool_use_id"] })),
                    )
                })
                .collect(),
        ),
        "result" => StreamEvent::Finished(outcome(&event)),
        _ => StreamEvent::Output(Vec::new()),
    }
}

fn entry(log_type: LogType, content: String, metadata: Option<Value>) -> AgentOutput {
    AgentOutput {
        log_type,
        content,
        metadata,
    }
}

fn blocks(event: &Value) -> impl Iterator<Item = &Value> {
    event["message"]["content"].as_array().into_iter().flatten()
}

/// `Write src/lib.rs`, `Bash cargo test`, or the tool's name.
fn describe_tool_call(block: &Value) -> String {
    let name = block["name"].as_str().unwrap_or("tool");
    let input = &block["input"];
    let detail = ["file_path", "path", "command", "pattern", "url"]
        .iter()
        .find_map(|key| input[*key].as_str());
    match detail {
        Some(detail) => format!("{name} {detail}"),
        None => name.to_owned(),
    }
}

/// A tool result's content: a string, or text blocks.
fn result_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

fn outcome(event: &Value) -> AgentOutcome {
    let success = event["subtype"] == "success" && event["is_error"] == false;
    let usage = &event["usage"];
    let count = |key: &str| usage[key].as_u64().unwrap_or(0);
    let text = event["result"].as_str().map(str::to_owned);
    AgentOutcome {
        success,
        summary: text.clone().filter(|_| success),
        error: (!success).then(|| {
            let subtype = event["subtype"].as_str().unwrap_or("error");
            match text {
                Some(text) if !text.is_empty() => format!("claude ended with {subtype}: {text}"),
                _ => format!("claude ended with {subtype}"),
            }
        }),
        usage: Usage {
            input_tokens: count("input_tokens"),
            output_tokens: count("output_tokens"),
            cache_read_tokens: count("cache_read_input_tokens"),
            cache_write_tokens: count("cache_creation_input_tokens"),
            cost_usd: event["total_cost_usd"].as_f64().unwrap_or(0.0),
        },
        // The session's opening event names the model, not its result.
        model: None,
    }
}

#[async_trait]
impl AgentBackend for ClaudeCode {
    fn name(&self) -> &str {
        "claude-code"
    }

    async fn run(
        &self,
        request: AgentRequest,
        sink: &dyn AgentOutputSink,
    ) -> orchestrator_core::Result<AgentOutcome> {
        self.check().map_err(orchestrator_core::Error::backend)?;
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(name, _)| OWN_SETTINGS.iter().any(|prefix| name.starts_with(prefix)))
            .collect();
        env.extend(self.env.iter().cloned());
        let mut process = AgentProcess::spawn(
            &self.argv(),
            &request.work_dir,
            &env,
            request.pause.clone(),
            Some(request.prompt.clone()),
        )
        .map_err(|err| {
            orchestrator_core::Error::backend(format!(
                "`{}` could not be started ({err}); install Claude Code \
                     (npm install -g @anthropic-ai/claude-code) or give its path with --claude-bin",
                self.binary.display()
            ))
        })?;
        let mut model = None;
        let mut finished = None;
        let mut stderr = Vec::new();
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            tokio::select! {
                line = process.stdout.next_line(), if out_open => match line {
                    Ok(Some(line)) if line.trim().is_empty() => {}
                    Ok(Some(line)) => match parse_stream_line(&line) {
                        StreamEvent::Output(entries) => entries.into_iter().for_each(|e| sink.emit(e)),
                        StreamEvent::Started { model: named, entry } => {
                            model = Some(named);
                            sink.emit(entry);
                        }
                        StreamEvent::Finished(outcome) => finished = Some(outcome),
                    },
                    _ => out_open = false,
                },
                line = process.stderr.next_line(), if err_open => match line {
                    Ok(Some(line)) => stderr.push(line),
                    _ => err_open = false,
                },
            }
        }
        let status = process
            .wait()
            .await
            .map_err(orchestrator_core::Error::backend)?;
        let outcome = finished.unwrap_or_else(|| {
            AgentOutcome::failed(
                format!(
                    "claude ended without a result ({status}): {}",
                    tail(&stderr, 5)
                ),
                Usage::default(),
            )
        });
        Ok(AgentOutcome { model, ..outcome })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(line: &str) -> Vec<AgentOutput> {
        match parse_stream_line(line) {
            StreamEvent::Output(entries) => entries,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn permissions_are_accepted_edits_unless_skipped_and_never_skipped_as_root() {
        let claude = ClaudeCode::default();
        let argv = claude.argv();
        assert!(
            argv.windows(2)
                .any(|w| w == ["--permission-mode", "acceptEdits"])
        );
        assert!(!argv.contains(&"--dangerously-skip-permissions".to_owned()));
        assert_eq!(claude.check(), Ok(()));

        let skipping = ClaudeCode {
            skip_permissions: true,
            ..ClaudeCode::default()
        };
        let argv = skipping.argv();
        assert!(argv.contains(&"--dangerously-skip-permissions".to_owned()));
        assert!(!argv.contains(&"acceptEdits".to_owned()));
        assert_eq!(
            argv[1..3],
            ["-p", "--output-format"],
            "the prompt goes on stdin"
        );
        let refused = skipping.check();
        assert_eq!(refused.is_err(), nix::unistd::geteuid().is_root());
        if let Err(why) = refused {
            assert!(
                why.contains("root") && why.contains("ordinary user"),
                "{why}"
            );
        }
    }

    #[test]
    fn stream_lines_become_log_entries() {
        let init = r#"{"type":"system","subtype":"init","model":"claude-sonnet","session_id":"s1","tools":["Write"]}"#;
        let StreamEvent::Started { model, entry } = parse_stream_line(init) else {
            panic!("the init event names the model");
        };
        assert_eq!(model, "claude-sonnet");
        assert_eq!(entry.content, "claude init (claude-sonnet)");
        let unnamed = r#"{"type":"system","subtype":"compact_boundary","session_id":"s1"}"#;
        assert_eq!(
            outputs(unnamed)[0].content,
            "claude compact_boundary (unknown model)"
        );

        let assistant = r#"{"type":"assistant","message":{"content":[{"type":"text","text":"I will add it."},{"type":"tool_use","id":"t1","name":"Write","input":{"file_path":"/w/src/a.rs","content":"x"}}]}}"#;
        let entries = outputs(assistant);
        assert_eq!(entries[0].log_type, LogType::Thinking);
        assert_eq!(entries[1].log_type, LogType::ToolCall);
        assert_eq!(entries[1].content, "Write /w/src/a.rs");

        let user = r#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"File created"}]},{"type":"tool_result","tool_use_id":"t2","content":"no such file","is_error":true}]}}"#;
        let entries = outputs(user);
        assert_eq!(
            (entries[0].log_type, entries[0].content.as_str()),
            (LogType::ToolResult, "File created")
        );
        assert_eq!(entries[1].log_type, LogType::Error);

        assert_eq!(outputs("plain text")[0].log_type, LogType::Info);
    }

    #[test]
    fn the_result_event_decides_success_and_carries_usage() {
        let done = r#"{"type":"result","subtype":"success","is_error":false,"result":"Added a.rs","total_cost_usd":0.0123,"usage":{"input_tokens":100,"output_tokens":20,"cache_read_input_tokens":5,"cache_creation_input_tokens":7}}"#;
        let StreamEvent::Finished(outcome) = parse_stream_line(done) else {
            panic!("no result");
        };
        assert!(outcome.success);
        assert_eq!(outcome.summary.as_deref(), Some("Added a.rs"));
        assert_eq!(
            (
                outcome.usage.input_tokens,
                outcome.usage.output_tokens,
                outcome.usage.cache_read_tokens,
                outcome.usage.cache_write_tokens
            ),
            (100, 20, 5, 7)
        );
        assert!((outcome.usage.cost_usd - 0.0123).abs() < 1e-9);

        let capped = r#"{"type":"result","subtype":"error_max_turns","is_error":true}"#;
        let StreamEvent::Finished(outcome) = parse_stream_line(capped) else {
            panic!("no result");
        };
        assert!(!outcome.success);
        assert_eq!(
            outcome.error.as_deref(),
            Some("claude ended with error_max_turns")
        );
    }
}
