//! Agent backends: [`ClaudeCode`] runs the `claude` CLI, [`CommandAgent`] any command-line
//! agent from a template.

pub use orchestrator_core::backend::AgentBackend;
use orchestrator_core::backend::{AgentOutcome, AgentOutput, AgentOutputSink};
use orchestrator_core::model::LogType;

mod anthropic;
mod claude;
mod command;
mod openai;
mod pricing;
pub mod tools;

pub use anthropic::{AnthropicAgent, DEFAULT_BASE_URL, DEFAULT_MODEL};
pub use claude::{ClaudeCode, DEFAULT_ALLOWED_TOOLS, StreamEvent, parse_stream_line};
pub use command::{CommandAgent, PROMPT_FILE_PLACEHOLDER, PROMPT_PLACEHOLDER};
pub use openai::{DEFAULT_OPENAI_BASE_URL, OpenAiAgent};
pub use pricing::{Prices, PricesError};

/// The last `count` non-empty lines of `lines`, joined.
fn tail(lines: &[String], count: usize) -> String {
    let kept: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| !l.trim().is_empty())
        .collect();
    kept[kept.len().saturating_sub(count)..].join("\n")
}

/// Runs a model backend's `work` on `model`, and puts the model and the cost of its tokens
/// at `prices` on the outcome; without prices, the attempt's log says once that the cost
/// is recorded as 0.
async fn priced(
    prices: Option<Prices>,
    model: &str,
    sink: &dyn AgentOutputSink,
    work: impl Future<Output = orchestrator_core::Result<AgentOutcome>>,
) -> orchestrator_core::Result<AgentOutcome> {
    if prices.is_none() {
        sink.emit(AgentOutput {
            log_type: LogType::Info,
            content: format!(
                "no price is known for the model `{model}`: the attempt's cost is recorded as 0 \
                 (give --prices INPUT,OUTPUT in US dollars per million tokens)"
            ),
            metadata: None,
        });
    }
    let mut outcome = work.await?;
    outcome.usage.cost_usd = prices.map_or(0.0, |p| p.cost(&outcome.usage));
    outcome.model = Some(model.to_owned());
    Ok(outcome)
}
