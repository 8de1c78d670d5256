//! A fault-injecting HTTP proxy: it sits between a real runner and a real server, passes
//! requests through, and for a window answers chosen routes with errors (503, 429 with
//! `Retry-After`, a gateway's 502 page) or drops their connections, as an overloaded
//! server, a proxy in front of it or a flaky network would.
//!
//! One request per connection: each answer carries `Connection: close`, which HTTP
//! clients handle by opening a new connection for the next request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// What the proxy does with a request it faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 503 with the server's error envelope.
    Unavailable,
    /// 429 with `Retry-After: 1`.
    RateLimited,
    /// 502 with an HTML page, as a gateway answers when the server behind it is down.
    BadGateway,
    /// The connection is closed without an answer.
    Drop,
}

/// A window of faults on requests whose path starts with `path`.
#[derive(Debug)]
struct Fault {
    path: String,
    /// The answers given in turn.
    answers: Vec<Answer>,
    length: Duration,
    /// When the window ends; set when the first matching request arrives.
    ends: Option<Instant>,
    faulted: usize,
}

/// The proxy; it stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    pub url: String,
    faults: Arc<Mutex<Vec<Fault>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on a free loopback port passing requests to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("an http:// upstream")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let faults: Arc<Mutex<Vec<Fault>>> = Arc::default();
        let shared = faults.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let faults = shared.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let _ = serve(client, &upstream, &faults).await;
                });
            }
        });
        Self {
            url,
            faults,
            accepting,
        }
    }

    /// Faults requests to paths starting with `path` for `length` from the first such
    /// request on, giving `answers` in turn.
    pub fn outage(&self, path: &str, answers: &[Answer], length: Duration) {
        self.faults.lock().unwrap().push(Fault {
            path: path.to_owned(),
            answers: answers.to_vec(),
            length,
            ends: None,
            faulted: 0,
        });
    }

    /// Requests to `path` answered with a fault so far.
    pub fn faulted(&self, path: &str) -> usize {
        self.faults
            .lock()
            .unwrap()
            .iter()
            .filter(|fault| fault.path == path)
            .map(|fault| fault.faulted)
            .sum()
    }

    /// Whether every outage on `path` has begun and ended.
    pub fn outage_over(&self, path: &str) -> bool {
        let now = Instant::now();
        self.faults
            .lock()
            .unwrap()
            .iter()
            .filter(|fault| fault.path == path)
            .all(|fault| fault.ends.is_some_and(|ends| ends <= now))
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// The fault for a request to `path` now, if one applies.
fn fault_for(faults: &Mutex<Vec<Fault>>, path: &str) -> Option<Answer> {
    let now = Instant::now();
    let mut faults = faults.lock().unwrap();
    let fault = faults
        .iter_mut()
        .find(|fault| path.starts_with(&fault.path) && fault.ends.is_none_or(|ends| now < ends))?;
    let length = fault.length;
    fault.ends.get_or_insert(now + length);
    let answer = fault.answers[fault.faulted % fault.answers.len()];
    fault.faulted += 1;
    Some(answer)
}

/// Reads one request from `client`, then faults it or passes it to `upstream` and its
/// answer back.
async fn serve(
    mut client: TcpStream,
    upstream: &str,
    faults: &Mutex<Vec<Fault>>,
) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 8192];
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > 1 << 20 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
    let mut headers: Vec<&str> = lines.filter(|line| !line.is_empty()).collect();
    let length: usize = headers
        .iter()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 8192];
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    if let Some(answer) = fault_for(faults, &path) {
        let (status, extra, content_type, body) = match answer {
            Answer::Drop => return Ok(()),
            Answer::Unavailable => (
                "503 Service Unavailable",
                "",
                "application/json",
                r#"{"error":{"code":"SERVICE_UNAVAILABLE","message":"injected outage"}}"#,
            ),
            Answer::RateLimited => (
                "429 Too Many Requests",
                "Retry-After: 1\r\n",
                "application/json",
                r#"{"error":{"code":"RATE_LIMITED","message":"injected rate limit"}}"#,
            ),
            Answer::BadGateway => (
                "502 Bad Gateway",
                "",
                "text/html",
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
            ),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\n{extra}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        client.write_all(response.as_bytes()).await?;
        return client.shutdown().await;
    }
    headers.retain(|line| {
        let name = line.split(':').next().unwrap_or_default().trim();
        !name.eq_ignore_ascii_case("connection")
    });
    let mut forwarded = format!("{request_line}\r\n");
    for header in headers {
        forwarded.push_str(header);
        forwarded.push_str("\r\n");
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(forwarded.as_bytes()).await?;
    server.write_all(&buffer[head_end..]).await?;
    tokio::io::copy(&mut server, &mut client).await?;
    client.shutdown().await
}
