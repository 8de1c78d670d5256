//! [`OrchestratorClient`] over the orchestrator's HTTP API (`/api/runner/*`).

use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::attempts::{AttemptCompletion, LockAnswer};
use orchestrator_core::coordination::ControlSignal;
use orchestrator_core::ids::TaskId;
use orchestrator_core::model::{RunnerIdentity, TaskStatus};
use orchestrator_core::protocol::{
    AttemptRef, ChangedPaths, ClaimWork, Claimed, ClaimedTask, Completed, CompletionReport,
    HeartbeatAnswer, HeartbeatReport, LogBatch, LogEntry, LogsReceived, RunnerConnected,
    SetupExchange,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::{ClientError, OrchestratorClient, Refusal};

/// Slack on top of a claim's wait before the HTTP request itself gives up.
const CLAIM_SLACK: Duration = Duration::from_secs(15);

/// Time allowed for every other call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A runner's connection to one orchestrator.
#[derive(Debug, Clone)]
pub struct HttpClient {
    base_url: String,
    token: String,
    http: reqwest::Client,
}

/// `{"data": …}`.
#[derive(Debug, Deserialize)]
struct Data<T> {
    data: T,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

/// Reads the PEM certificates in `path`: the private certificate authority of an
/// orchestrator served over TLS with a certificate the public roots do not vouch for.
pub fn read_ca_certificates(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem =
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certificates) if !certificates.is_empty() => Ok(certificates),
        _ => Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the CA's certificate file",
            path.display()
        )),
    }
}

impl HttpClient {
    /// A client of the orchestrator at `base_url` (scheme, host and port) with a runner
    /// token.
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        Self::trusting(base_url, token, &[])
    }

    /// [`HttpClient::new`] that also trusts `ca_certificates` for `https://` addresses
    /// (see [`read_ca_certificates`]).
    pub fn trusting(
        base_url: &str,
        token: &str,
        ca_certificates: &[reqwest::Certificate],
    ) -> Result<Self, ClientError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("agent-orchestrator/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10));
        for certificate in ca_certificates {
            builder = builder.add_root_certificate(certificate.clone());
        }
        let http = builder.build().map_err(|err| ClientError::Unreachable {
            url: base_url.clone(),
            detail: err.to_string(),
        })?;
        Ok(Self {
            base_url,
            token: token.to_owned(),
            http,
        })
    }

    /// The orchestrator's address.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn unreachable(&self, err: impl std::fmt::Display) -> ClientError {
        ClientError::Unreachable {
            url: self.base_url.clone(),
            detail: err.to_string(),
        }
    }

    /// Sends `body` to `path` with the client's token and reads `{"data": T}`; an error
    /// envelope becomes [`ClientError::Refused`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .timeout(timeout);
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| {
            let mut detail = with_causes(&err);
            if detail.contains("certificate") {
                detail.push_str(
                    " (an orchestrator whose certificate comes from a private CA needs that \
                     CA's certificate: --ca-cert FILE)",
                );
            }
            self.unreachable(detail)
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response
            .bytes()
            .await
            .map_err(|err| self.unreachable(err))?;
        if status.is_success() {
            return serde_json::from_slice::<Data<T>>(&bytes)
                .map(|data| data.data)
                .map_err(|err| self.unreachable(format!("unexpected answer to {path}: {err}")));
        }
        let refusal = refusal_of(status);
        Err(match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
            Ok(envelope) => ClientError::Refused {
                refusal,
                code: envelope.error.code,
                message: envelope.error.message,
                retry_after,
            },
            Err(_) => ClientError::Refused {
                refusal,
                code: status.to_string(),
                message: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
                retry_after,
            },
        })
    }
}

impl HttpClient {
    /// POSTs one of the protocol's messages to `path` and reads the answer.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        message: &impl Serialize,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_value(message)
            .map_err(|err| self.unreachable(format!("cannot encode the call to {path}: {err}")))?;
        self.call(reqwest::Method::POST, path, Some(&body), timeout)
            .await
    }
}

/// The protocol's reason behind an HTTP status that is not a success.
fn refusal_of(status: reqwest::StatusCode) -> Refusal {
    match status.as_u16() {
        400 | 413 | 422 => Refusal::Invalid,
        401 | 403 => Refusal::Unauthorized,
        404 => Refusal::NotFound,
        409 => Refusal::Conflict,
        429 => Refusal::RateLimited,
        500..=599 => Refusal::Unavailable,
        _ => Refusal::Other,
    }
}

/// What a connection token holds: the orchestrator's address and a setup token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionToken {
    pub url: String,
    pub setup_token: String,
}

impl std::str::FromStr for ConnectionToken {
    type Err = String;

    /// base64 of `<url>|<secret>:<expiresAtMs>`, as `GET /api/connect` mints it.
    fn from_str(token: &str) -> Result<Self, String> {
        use base64::Engine as _;

        let invalid = "this is not a connection token: ask an admin for a new one \
                       (GET /api/connect, or the dashboard's Connect page)";
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .map_err(|_| invalid.to_owned())?;
        let decoded = String::from_utf8(decoded).map_err(|_| invalid.to_owned())?;
        let (url, setup_token) = decoded.split_once('|').ok_or(invalid)?;
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || !setup_token.contains(':')
        {
            return Err(invalid.to_owned());
        }
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            setup_token: setup_token.to_owned(),
        })
    }
}

impl HttpClient {
    /// Exchanges the setup token in `token` for a runner token (single use), stating
    /// what `runner` is, trusting `ca_certificates` as well as the public roots.
    pub async fn connect(
        token: &ConnectionToken,
        name: Option<&str>,
        working_dir: &str,
        runner: RunnerIdentity,
        ca_certificates: &[reqwest::Certificate],
    ) -> Result<(Self, RunnerConnected), ClientError> {
        let anonymous = Self::trusting(&token.url, "", ca_certificates)?;
        let exchange = SetupExchange {
            setup_token: token.setup_token.clone(),
            name: name.map(str::to_owned),
            working_dir: Some(working_dir.to_owned()),
            runner: Some(runner),
        };
        let connected: RunnerConnected = anonymous
            .post("/api/connect", &exchange, CALL_TIMEOUT)
            .await?;
        let client = Self::trusting(&token.url, &connected.runner_token, ca_certificates)?;
        Ok((client, connected))
    }

    /// The runner's session, its busy agents and the queue, as the server sees them.
    pub async fn status(&self) -> Result<Value, ClientError> {
        self.call(
            reqwest::Method::GET,
            "/api/runner/status",
            None,
            CALL_TIMEOUT,
        )
        .await
    }

    /// Where the tasks `ids` stand (the ones that exist): id, title and status of each.
    pub async fn task_states(&self, ids: &[TaskId]) -> Result<Value, ClientError> {
        self.call(
            reqwest::Method::POST,
            "/api/runner/tasks",
            Some(&serde_json::json!({ "ids": ids })),
            CALL_TIMEOUT,
        )
        .await
    }

    /// Revokes this runner's session on the server.
    pub async fn disconnect(&self) -> Result<(), ClientError> {
        let _: Value = self
            .call(reqwest::Method::DELETE, "/api/connect", None, CALL_TIMEOUT)
            .await?;
        Ok(())
    }
}

/// An error with the causes behind it (`error sending request: … : connection refused`).
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[async_trait]
impl OrchestratorClient for HttpClient {
    async fn claim(
        &self,
        max: usize,
        wait: Duration,
        lease_ttl: Duration,
        runner: &RunnerIdentity,
    ) -> Result<Vec<ClaimedTask>, ClientError> {
        let request = ClaimWork::new(max, wait, lease_ttl, runner.clone());
        let claimed: Claimed = self
            .post("/api/runner/claim", &request, wait + CLAIM_SLACK)
            .await?;
        Ok(claimed.claims)
    }

    async fn heartbeat(
        &self,
        attempt: AttemptRef,
        lease_ttl: Duration,
        status: Option<TaskStatus>,
    ) -> Result<ControlSignal, ClientError> {
        let report = HeartbeatReport::keeping(attempt, lease_ttl, status);
        let answer: HeartbeatAnswer = self
            .post("/api/runner/heartbeat", &report, CALL_TIMEOUT)
            .await?;
        Ok(answer.signal)
    }

    async fn send_logs(&self, attempt: AttemptRef, logs: &[LogEntry]) -> Result<(), ClientError> {
        let batch = LogBatch::new(attempt, logs.to_vec());
        let _: LogsReceived = self.post("/api/runner/logs", &batch, CALL_TIMEOUT).await?;
        Ok(())
    }

    async fn acquire_locks(
        &self,
        attempt: AttemptRef,
        paths: &[String],
    ) -> Result<LockAnswer, ClientError> {
        let request = ChangedPaths::new(attempt, paths.to_vec());
        self.post("/api/runner/locks", &request, CALL_TIMEOUT).await
    }

    async fn complete(
        &self,
        attempt: AttemptRef,
        completion: &AttemptCompletion,
    ) -> Result<(), ClientError> {
        let report = CompletionReport::from_completion(attempt, completion.clone());
        let _: Completed = self
            .post("/api/runner/complete", &report, CALL_TIMEOUT)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_tokens_are_decoded_and_garbage_is_refused() {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD
            .encode("https://orchestrator.example.com/|secret:1795574271826");
        let parsed: ConnectionToken = token.parse().unwrap();
        assert_eq!(parsed.url, "https://orchestrator.example.com");
        assert_eq!(parsed.setup_token, "secret:1795574271826");
        for bad in [
            "",
            "not base64!",
            "aGVsbG8=",
            &base64::engine::general_purpose::STANDARD.encode("ftp://x|a:1"),
        ] {
            assert!(bad.parse::<ConnectionToken>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn https_servers_are_reachable_over_tls() {
        // Nothing listens there: the failure must be the connection, not a client that
        // cannot speak TLS at all.
        let client = HttpClient::new("https://127.0.0.1:9", "token").unwrap();
        let err = client.status().await.unwrap_err();
        let ClientError::Unreachable { detail, .. } = &err else {
            panic!("{err}");
        };
        assert!(detail.contains("onnection refused"), "{detail}");
    }
}
