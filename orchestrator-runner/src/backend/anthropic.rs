//! The Anthropic Messages API as an agent: a streamed tool loop over the worktree's tools
//! ([`super::tools`]), with retries on overload and server errors. The same client serves
//! the verification's semantic review.

use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::backend::{
    AgentBackend, AgentOutcome, AgentOutput, AgentOutputSink, AgentRequest,
};
use orchestrator_core::model::{LogType, Usage};
use orchestrator_verify::ReviewModel;
use serde_json::{Value, json};

use super::priced;
use super::pricing::Prices;
use super::tools::{self, Workspace};

/// The API's address unless `ANTHROPIC_BASE_URL` says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The model unless configured otherwise.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";
/// Attempts per request when the API is overloaded or fails.
const REQUEST_ATTEMPTS: u32 = 5;

const SYSTEM: &str = "You are a coding agent working in a git worktree of a repository. Use \
the tools to read the code and make the change the task asks for, staying inside the paths \
it allows. Run the project's checks with run_command when useful. Do not commit. When the \
work is done, answer with a one-sentence summary of what you changed.";

/// Talks to the Messages API.
#[derive(Debug, Clone)]
pub struct AnthropicAgent {
    pub base_url: String,
    api_key: String,
    pub model: String,
    pub max_tokens: u32,
    pub max_turns: u32,
    /// What the model's tokens cost; the list price of a known model unless set.
    pub prices: Option<Prices>,
    http: reqwest::Client,
}

/// One assistant turn, assembled from the stream.
#[derive(Debug, Default)]
struct Turn {
    content: Vec<Value>,
    stop_reason: String,
    usage: Usage,
}

impl AnthropicAgent {
    /// An agent with `api_key` on `model`, at `ANTHROPIC_BASE_URL` or the public API.
    pub fn new(api_key: &str, model: &str) -> Self {
        let base_url = std::env::var("ANTHROPIC_BASE_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            model: model.to_owned(),
            max_tokens: 8_192,
            max_turns: 50,
            prices: Prices::anthropic(model),
            http: reqwest::Client::new(),
        }
    }

    /// One streamed request, retried on 429, 529 and 5xx answers.
    async fn turn(
        &self,
        system: &str,
        messages: &[Value],
        with_tools: bool,
        sink: Option<&dyn AgentOutputSink>,
    ) -> Result<Turn, String> {
        let mut body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "system": system,
            "messages": messages,
            "stream": true,
        });
        if with_tools {
            body["tools"] = tools::definitions();
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = self
                .http
                .post(format!("{}/v1/messages", self.base_url))
                .header("x-api-key", &self.api_key)
                .header("anthropic-version", "2023-06-01")
                .json(&body)
                .timeout(Duration::from_secs(600))
                .send()
                .await;
            let response = match response {
                Ok(response) => response,
                Err(err) if attempt < REQUEST_ATTEMPTS => {
                    tracing::warn!(error = %err, "the model API could not be reached; retrying");
                    tokio::time::sleep(backoff(attempt, None)).await;
                    continue;
                }
                Err(err) => {
                    return Err(format!(
                        "the model API at {} could not be reached: {err}",
                        self.base_url
                    ));
                }
            };
            let status = response.status().as_u16();
            if (status == 429 || status == 529 || status >= 500) && attempt < REQUEST_ATTEMPTS {
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                tokio::time::sleep(backoff(attempt, wait)).await;
                continue;
            }
            if !(200..300).contains(&status) {
                let text = response.text().await.unwrap_or_default();
                return Err(format!(
                    "the model API answered {status}: {}",
                    text.chars().take(500).collect::<String>()
                ));
            }
            return read_stream(response, sink).await;
        }
    }
}

/// Waits 1, 2, 4, 8 s (or what the server asked for, up to a minute).
fn backoff(attempt: u32, asked_secs: Option<u64>) -> Duration {
    match asked_secs {
        Some(secs) => Duration::from_secs(secs.min(60)),
        None => Duration::from_secs(1 << (attempt - 1).min(3)),
    }
}

/// Assembles a turn from the server-sent events, logging each block as it completes.
async fn read_stream(
    mut response: reqwest::Response,
    sink: Option<&dyn AgentOutputSink>,
) -> Result<Turn, String> {
    let mut turn = Turn::default();
    let mut partial_json: Vec<String> = Vec::new();
    let mut events = ServerSentEvents::default();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|err| format!("the model's answer broke off: {err}"))?;
        let Some(chunk) = chunk else { break };
        for data in events.push(&chunk) {
            let Ok(data) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            match data["type"].as_str().unwrap_or_default() {
                "message_start" => {
                    turn.usage.input_tokens += data["message"]["usage"]["input_tokens"]
                        .as_u64()
                        .unwrap_or(0);
                    turn.usage.cache_read_tokens +=
                        data["message"]["usage"]["cache_read_input_tokens"]
                            .as_u64()
                            .unwrap_or(0);
                    turn.usage.cache_write_tokens +=
                        data["message"]["usage"]["cache_creation_input_tokens"]
                            .as_u64()
                            .unwrap_or(0);
                }
                "content_block_start" => {
                    turn.content.push(data["content_block"].clone());
                    partial_json.push(String::new());
                }
                "content_block_delta" => {
                    let index = data["index"].as_u64().unwrap_or(0) as usize;
                    let delta = &data["delta"];
                    match delta["type"].as_str() {
                        Some("text_delta") => {
                            if let Some(block) = turn.content.get_mut(index) {
                                let text = format!(
                                    "{}{}",
                                    block["text"].as_str().unwrap_or_default(),
                                    delta["text"].as_str().unwrap_or_default()
                                );
                                block["text"] = json!(text);
                            }
                        }
                        Some("input_json_delta") => {
                            if let Some(part) = partial_json.get_mut(index) {
                                part.push_str(delta["partial_json"].as_str().unwrap_or_default());
                            }
                        }
                        _ => {}
                    }
                }
                "content_block_stop" => {
                    let index = data["index"].as_u64().unwrap_or(0) as usize;
                    let Some(block) = turn.content.get_mut(index) else {
                        continue;
                    };
                    if block["type"] == "tool_use" {
                        let raw = partial_json
                            .get(index)
                            .map(String::as_str)
                            .unwrap_or_default();
                        block["input"] = if raw.trim().is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str(raw).map_err(|err| {
                                format!("the model sent a broken tool input: {err}")
                            })?
                        };
                    }
                    if let Some(sink) = sink {
                        log_block(block, sink);
                    }
                }
                "message_delta" => {
                    if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                        turn.stop_reason = reason.to_owned();
                    }
                    turn.usage.output_tokens +=
                        data["usage"]["output_tokens"].as_u64().unwrap_or(0);
                }
                "error" => {
                    return Err(format!(
                        "the model API failed mid-answer: {}",
                        data["error"]
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(turn)
}

/// Splits a server-sent event stream, arriving in chunks, into its events' `data`.
#[derive(Debug, Default)]
struct ServerSentEvents {
    /// Bytes, not text: a character may be split between two chunks.
    pending: Vec<u8>,
}

impl ServerSentEvents {
    /// Takes a chunk; returns the data of the events it completed.
    fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        // Lines may end in CRLF; a carriage return is never part of a UTF-8 character.
        self.pending
            .extend(chunk.iter().filter(|&&byte| byte != b'\r'));
        let mut complete = Vec::new();
        while let Some(end) = self.pending.windows(2).position(|pair| pair == b"\n\n") {
            let event: Vec<u8> = self.pending.drain(..end + 2).collect();
            let event = String::from_utf8_lossy(&event);
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|data| data.strip_prefix(' ').unwrap_or(data))
                .collect();
            if !data.is_empty() {
                complete.push(data.join("\n"));
            }
        }
        complete
    }
}

fn log_block(block: &Value, sink: &dyn AgentOutputSink) {
    match block["type"].as_str() {
        Some("text") => {
            let text = block["text"].as_str().unwrap_or_default();
            if !text.trim().is_empty() {
                sink.emit(AgentOutput {
                    log_type: LogType::Thinking,
                    content: text.to_owned(),
                    metadata: None,
                });
            }
        }
        Some("tool_use") => {
            let name = block["name"].as_str().unwrap_or("tool");
            let input = &block["input"];
            sink.emit(AgentOutput {
                log_type: LogType::ToolCall,
                content: tools::describe_call(name, input),
                metadata: Some(json!({ "tool": name, "input": input, "id": block["id"] })),
            });
        }
        _ => {}
    }
}

#[async_trait]
impl AgentBackend for AnthropicAgent {
    fn name(&self) -> &str {
        "anthropic"
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

impl AnthropicAgent {
    /// Turns until the model stops asking for tools.
    async fn tool_loop(
        &self,
        request: AgentRequest,
        sink: &dyn AgentOutputSink,
    ) -> orchestrator_core::Result<AgentOutcome> {
        let workspace =
            Workspace::new(&request.work_dir).map_err(orchestrator_core::Error::backend)?;
        let mut messages = vec![json!({"role": "user", "content": request.prompt})];
        let mut usage = Usage::default();
        let mut pause = request.pause.clone();
        for _ in 0..self.max_turns {
            pause.until_resumed().await;
            let turn = match self.turn(SYSTEM, &messages, true, Some(sink)).await {
                Ok(turn) => turn,
                Err(err) => return Ok(AgentOutcome::failed(err, usage)),
            };
            usage += turn.usage;
            messages.push(json!({"role": "assistant", "content": turn.content}));
            if turn.stop_reason != "tool_use" {
                let summary = turn
                    .content
                    .iter()
                    .rev()
                    .find_map(|b| b["text"].as_str())
                    .map(str::to_owned);
                return Ok(match turn.stop_reason.as_str() {
                    "end_turn" | "stop_sequence" => AgentOutcome::succeeded(summary, usage),
                    other => AgentOutcome::failed(format!("the model stopped with {other}"), usage),
                });
            }
            let mut results = Vec::new();
            for block in turn.content.iter().filter(|b| b["type"] == "tool_use") {
                pause.until_resumed().await;
                let name = block["name"].as_str().unwrap_or_default();
                let (text, is_error) = workspace
                    .call_logged(name, &block["input"], &block["id"], sink)
                    .await;
                results.push(json!({"type": "tool_result", "tool_use_id": block["id"], "content": text, "is_error": is_error}));
            }
            messages.push(json!({"role": "user", "content": results}));
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

#[async_trait]
impl ReviewModel for AnthropicAgent {
    async fn complete(&self, system: &str, prompt: &str) -> Result<String, String> {
        let turn = self
            .turn(
                system,
                &[json!({"role": "user", "content": prompt})],
                false,
                None,
            )
            .await?;
        Ok(turn
            .content
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_whole_whatever_the_chunks() {
        let stream = "event: content_block_delta\r\ndata: {\"text\":\"caf\u{e9}\"}\r\n\r\n: keep-alive\n\ndata: {\"a\":1}\ndata: {\"b\":2}\n\n";
        let bytes = stream.as_bytes();
        let split_in_e_acute = stream.find('\u{e9}').unwrap() + 1;
        for cut in [1, split_in_e_acute, bytes.len() - 1] {
            let mut events = ServerSentEvents::default();
            let mut data = events.push(&bytes[..cut]);
            data.extend(events.push(&bytes[cut..]));
            assert_eq!(
                data,
                ["{\"text\":\"caf\u{e9}\"}", "{\"a\":1}\n{\"b\":2}"],
                "cut at {cut}"
            );
        }
    }
}
