//! OpenAI-compatible Chat Completions as an agent (vLLM, llama.cpp's server, Ollama, or
//! OpenAI itself): the same tool loop and tools as the anthropic backend, with
//! `OPENAI_BASE_URL` honoured.

use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::backend::{
    AgentBackend, AgentOutcome, AgentOutput, AgentOutputSink, AgentRequest,
};
use orchestrator_core::model::{LogType, Usage};
use serde_json::{Value, json};

use super::priced;
use super::pricing::Prices;
use super::tools::{self, Workspace};

/// The API's address unless `OPENAI_BASE_URL` says otherwise.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Attempts per request when the server is overloaded or fails.
const REQUEST_ATTEMPTS: u32 = 5;

const SYSTEM: &str = "You are a coding agent working in a git worktree of a repository. Use \
the tools to read the code and make the change the task asks for, staying inside the paths \
it allows. Do not commit. When the work is done, answer with a one-sentence summary.";

/// Talks to a Chat Completions endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiAgent {
    pub base_url: String,
    api_key: Option<String>,
    pub model: String,
    pub max_turns: u32,
    /// What the model's tokens cost; unknown (recorded as 0) unless set.
    pub prices: Option<Prices>,
    http: reqwest::Client,
}

impl OpenAiAgent {
    /// An agent on `model` at `OPENAI_BASE_URL` (or OpenAI's API); local servers often
    /// need no key.
    pub fn new(api_key: Option<&str>, model: &str) -> Self {
        let base_url = std::env::var("OPENAI_BASE_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_OPENAI_BASE_URL.to_owned());
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.map(str::to_owned),
            model: model.to_owned(),
            max_turns: 50,
            prices: None,
            http: reqwest::Client::new(),
        }
    }

    async fn completion(&self, messages: &[Value]) -> Result<Value, String> {
        let body = json!({
            "model": self.model,
            "messages": messages,
            "tools": tools::function_definitions(),
        });
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .post(format!("{}/chat/completions", self.base_url))
                .json(&body)
                .timeout(Duration::from_secs(600));
            if let Some(key) = &self.api_key {
                request = request.bearer_auth(key);
            }
            let outcome = request.send().await;
            let retry = match &outcome {
                Err(_) => true,
                Ok(response) => {
                    let status = response.status().as_u16();
                    status == 429 || status >= 500
                }
            };
            if retry && attempt < REQUEST_ATTEMPTS {
                tokio::time::sleep(Duration::from_secs(1 << (attempt - 1).min(3))).await;
                continue;
            }
            let response = outcome.map_err(|err| {
                format!(
                    "the model server at {} could not be reached: {err}",
                    self.base_url
                )
            })?;
            let status = response.status();
            let text = response.text().await.map_err(|err| err.to_string())?;
            if !status.is_success() {
                return Err(format!(
                    "the model server answered {status}: {}",
                    text.chars().take(500).collect::<String>()
                ));
            }
            return serde_json::from_str(&text)
                .map_err(|err| format!("the model server's answer is not JSON: {err}"));
        }
    }
}

#[async_trait]
impl AgentBackend for OpenAiAgent {
    fn name(&self) -> &str {
        "openai"
    }

    async fn run(
        &self,
        request: AgentRequest,
        sink: &dyn AgentOutputSink,
    ) -> orchestrator_core::Result<AgentOutcome> {
        priced(
            self.prices,
            &self.model,
            sink,
            self.tool_loop(request, sink),
        )
        .await
    }
}

impl OpenAiAgent {
    /// Completions until the model stops calling tools.
    async fn tool_loop(
        &self,
        request: AgentRequest,
        sink: &dyn AgentOutputSink,
    ) -> orchestrator_core::Result<AgentOutcome> {
        let workspace =
            Workspace::new(&request.work_dir).map_err(orchestrator_core::Error::backend)?;
        let mut messages = vec![
            json!({"role": "system", "content": SYSTEM}),
            json!({"role": "user", "content": request.prompt}),
        ];
        let mut usage = Usage::default();
        let mut pause = request.pause.clone();
        for _ in 0..self.max_turns {
            pause.until_resumed().await;
            let answer = match self.completion(&messages).await {
                Ok(answer) => answer,
                Err(err) => return Ok(AgentOutcome::failed(err, usage)),
            };
            usage += answer_usage(&answer["usage"]);
            let choice = &answer["choices"][0];
            let message = choice["message"].clone();
            if let Some(text) = message["content"].as_str().filter(|t| !t.trim().is_empty()) {
                sink.emit(AgentOutput {
                    log_type: LogType::Thinking,
                    content: text.to_owned(),
                    metadata: None,
                });
            }
            let calls = message["tool_calls"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            messages.push(message.clone());
            if calls.is_empty() {
                return Ok(match choice["finish_reason"].as_str() {
                    Some("stop") | None => AgentOutcome::succeeded(
                        message["content"].as_str().map(str::to_owned),
                        usage,
                    ),
                    Some(other) => {
                        AgentOutcome::failed(format!("the model stopped with {other}"), usage)
                    }
                });
            }
            for call in calls {
                pause.until_resumed().await;
                let name = call["function"]["name"].as_str().unwrap_or_default();
                let input: Value = call["function"]["arguments"]
                    .as_str()
                    .and_then(|a| serde_json::from_str(a).ok())
                    .unwrap_or_else(|| json!({}));
                sink.emit(AgentOutput {
                    log_type: LogType::ToolCall,
                    content: tools::describe_call(name, &input),
                    metadata: Some(json!({ "tool": name, "input": input, "id": call["id"] })),
                });
                let (text, _) = workspace.call_logged(name, &input, &call["id"], sink).await;
                messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": text}));
            }
        }
        Ok(AgentOutcome::failed(
            format!(
                "the agent used all its {} turns without finishing",
                self.max_turns
            ),
            usage,
        ))
    }
}

/// The tokens of one Chat Completions answer. Cached prompt tokens are part of the
/// prompt count; they are counted (and priced) apart.
fn answer_usage(usage: &Value) -> Usage {
    let count = |value: &Value| value.as_u64().unwrap_or(0);
    let prompt = count(&usage["prompt_tokens"]);
    let cached = count(&usage["prompt_tokens_details"]["cached_tokens"]).min(prompt);
    Usage {
        input_tokens: prompt - cached,
        output_tokens: count(&usage["completion_tokens"]),
        cache_read_tokens: cached,
        ..Usage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_prompt_tokens_are_counted_apart() {
        let usage = answer_usage(&json!({
            "prompt_tokens": 1000,
            "completion_tokens": 50,
            "prompt_tokens_details": {"cached_tokens": 800}
        }));
        assert_eq!(
            (
                usage.input_tokens,
                usage.cache_read_tokens,
                usage.output_tokens
            ),
            (200, 800, 50)
        );
        let plain = answer_usage(&json!({"prompt_tokens": 12, "completion_tokens": 6}));
        assert_eq!((plain.input_tokens, plain.cache_read_tokens), (12, 0));
        assert_eq!(answer_usage(&json!(null)), Usage::default());
    }
}
