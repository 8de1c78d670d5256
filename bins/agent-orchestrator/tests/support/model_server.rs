//! A scripted model server speaking the Anthropic Messages API (streaming), for running
//! the real `claude` CLI offline: each request that offers tools gets the script's next
//! step; other requests (titles, summaries) get a short text.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One answer of the script. Paths in tool inputs may use `{cwd}`, replaced by the
/// working directory the client reports in its system prompt.
#[derive(Debug, Clone)]
pub enum Step {
    /// The model calls a tool.
    Tool { name: &'static str, input: Value },
    /// The model answers with text and ends its turn, after `delay`.
    Text { text: &'static str, delay: Duration },
}

/// The server's state: the script and what it was sent.
#[derive(Debug, Default)]
struct Script {
    steps: Vec<Step>,
    next: usize,
    requests: Vec<Value>,
    /// The answer to requests without tools.
    plain: &'static str,
}

/// A running scripted server on a loopback port; stops when dropped.
pub struct ModelServer {
    pub url: String,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl ModelServer {
    pub async fn start(steps: Vec<Step>) -> Self {
        Self::start_answering(steps, "ok").await
    }

    /// Like [`ModelServer::start`], answering requests without tools with `plain`.
    pub async fn start_answering(steps: Vec<Step>, plain: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(Script {
            steps,
            plain,
            ..Script::default()
        }));
        let shared = script.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let script = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, script).await;
                });
            }
        });
        Self { url, script, task }
    }

    /// The request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.script.lock().unwrap().requests.clone()
    }

    /// How many steps of the script were played.
    pub fn played(&self) -> usize {
        self.script.lock().unwrap().next
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers requests on one connection until the client closes it.
async fn serve(stream: tokio::net::TcpStream, script: Arc<Mutex<Script>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).await?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let openai = request_line.starts_with("POST /v1/chat/completions");
        if !request_line.starts_with("POST /v1/messages") && !openai {
            write
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .await?;
            continue;
        }
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (step, streaming) = {
            let mut script = script.lock().unwrap();
            script.requests.push(request.clone());
            let offers_tools = request["tools"].as_array().is_some_and(|t| !t.is_empty());
            let step = if offers_tools && script.next < script.steps.len() {
                script.next += 1;
                script.steps[script.next - 1].clone()
            } else {
                Step::Text {
                    text: script.plain,
                    delay: Duration::ZERO,
                }
            };
            (step, request["stream"] == true)
        };
        let model = request["model"].as_str().unwrap_or("scripted").to_owned();
        let cwd = working_directory(&request);
        if let Step::Text { delay, .. } = &step {
            tokio::time::sleep(*delay).await;
        }
        let (content, stop_reason) = match &step {
            Step::Tool { name, input } => {
                let input: Value =
                    serde_json::from_str(&input.to_string().replace("{cwd}", &cwd)).unwrap();
                (
                    json!({"type": "tool_use", "id": format!("toolu_{}", rand_id()), "name": name, "input": input}),
                    "tool_use",
                )
            }
            Step::Text { text, .. } => (json!({"type": "text", "text": text}), "end_turn"),
        };
        let (content_type, payload) = if openai {
            (
                "application/json",
                chat_completion(&model, &content, stop_reason),
            )
        } else if streaming {
            ("text/event-stream", sse(&model, &content, stop_reason))
        } else {
            let message = json!({
                "id": "msg_scripted", "type": "message", "role": "assistant", "model": model,
                "content": [content], "stop_reason": stop_reason, "stop_sequence": null,
                "usage": {"input_tokens": 12, "output_tokens": 6}
            });
            ("application/json", message.to_string())
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        );
        write.write_all(head.as_bytes()).await?;
        write.write_all(payload.as_bytes()).await?;
    }
}

/// The step as a Chat Completions answer.
fn chat_completion(model: &str, content: &Value, stop_reason: &str) -> String {
    let message = if content["type"] == "tool_use" {
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": content["id"], "type": "function",
            "function": {"name": content["name"], "arguments": content["input"].to_string()}}]})
    } else {
        json!({"role": "assistant", "content": content["text"]})
    };
    let finish = if stop_reason == "tool_use" {
        "tool_calls"
    } else {
        "stop"
    };
    json!({"id": "chatcmpl-scripted", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}})
    .to_string()
}

/// The working directory the client names in its system prompt.
fn working_directory(request: &Value) -> String {
    let text = request.to_string();
    let marker = "Primary working directory: ";
    text.split(marker)
        .nth(1)
        .and_then(|rest| rest.split("\\n").next())
        .unwrap_or_default()
        .to_owned()
}

fn rand_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:012}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The streamed events of one assistant message with one content block.
fn sse(model: &str, content: &Value, stop_reason: &str) -> String {
    let mut events = Vec::new();
    let mut event =
        |name: &str, data: Value| events.push(format!("event: {name}\ndata: {data}\n\n"));
    event(
        "message_start",
        json!({"type": "message_start", "message": {
        "id": "msg_scripted", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    );
    match content["type"].as_str() {
        Some("tool_use") => {
            let start = json!({"type": "tool_use", "id": content["id"], "name": content["name"], "input": {}});
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": start}),
            );
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": content["input"].to_string()}}),
            );
        }
        _ => {
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            );
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": content["text"]}}),
            );
        }
    }
    event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    );
    event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 6}}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    events.concat()
}
