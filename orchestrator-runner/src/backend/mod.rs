//! Agent backends: [`ClaudeCode`] runs the `claude` CLI, [`CommandAgent`] any command-line
//! agent from a template.

pub use orchestrator_core::backend::AgentBackend;

mod anthropic;
mod claude;
mod command;
mod openai;
pub mod tools;

pub use anthropic::{AnthropicAgent, DEFAULT_BASE_URL, DEFAULT_MODEL};
pub use claude::{ClaudeCode, DEFAULT_ALLOWED_TOOLS, StreamEvent, parse_stream_line};
pub use command::{CommandAgent, PROMPT_PLACEHOLDER};
pub use openai::{DEFAULT_OPENAI_BASE_URL, OpenAiAgent};

/// The last `count` non-empty lines of `lines`, joined.
fn tail(lines: &[String], count: usize) -> String {
    let kept: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| !l.trim().is_empty())
        .collect();
    kept[kept.len().saturating_sub(count)..].join("\n")
}
