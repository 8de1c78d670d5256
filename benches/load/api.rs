//! The calls the load tool makes, timed: an admin's (queue tasks, mint setup tokens, page
//! through tasks) and a runner's (connect, claim, heartbeat, log batch, completion), each
//! with the protocol's own messages.

use std::time::{Duration, Instant};

use orchestrator_core::model::{NewTask, RunnerIdentity, Task};
use orchestrator_core::protocol::{
    AttemptRef, ClaimWork, Claimed, CompletionReport, HeartbeatAnswer, HeartbeatReport, LogBatch,
    LogEntry, RunnerConnected, SetupExchange,
};
use orchestrator_runner::ConnectionToken;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Slack on top of a claim's wait before the request gives up.
const CLAIM_SLACK: Duration = Duration::from_secs(15);
/// The lease every claim and heartbeat asks for.
const LEASE: Duration = Duration::from_secs(300);
/// Time allowed for every other call.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a call failed: the HTTP status, or 0 when no answer came.
#[derive(Debug, Clone)]
pub(crate) struct Failed {
    pub(crate) status: u16,
    pub(crate) detail: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            0 => write!(f, "no answer: {}", self.detail),
            status => write!(f, "{status}: {}", self.detail),
        }
    }
}

/// A call's answer and how long it took.
pub(crate) type Timed<T> = (Result<T, Failed>, Duration);

/// One identity on the server: the admin, or a runner session.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub(crate) fn new(http: reqwest::Client, base: &str, token: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// The same server and token through a client of its own (its own connections,
    /// made on the runtime that first uses it).
    pub(crate) fn with_own_client(&self) -> Self {
        Self::new(reqwest::Client::new(), &self.base, &self.token)
    }

    /// Sends a request; the answer's `data` member as `T`.
    async fn send<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Timed<T> {
        let (answer, took) = self.send_for_json(method, path, body, timeout).await;
        let outcome = answer.and_then(|(status, envelope)| {
            serde_json::from_value(envelope["data"].clone()).map_err(|err| Failed {
                status,
                detail: format!("unexpected answer to {path}: {err}"),
            })
        });
        (outcome, took)
    }

    /// Sends a request; the status and the whole JSON answer of a success.
    async fn send_for_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Timed<(u16, Value)> {
        let started = Instant::now();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(timeout);
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let outcome = async {
            let response = request.send().await.map_err(|err| Failed {
                status: 0,
                detail: err.to_string(),
            })?;
            let status = response.status();
            let bytes = response.bytes().await.map_err(|err| Failed {
                status: 0,
                detail: err.to_string(),
            })?;
            if !status.is_success() {
                return Err(Failed {
                    status: status.as_u16(),
                    detail: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
                });
            }
            let answer: Value = serde_json::from_slice(&bytes).map_err(|err| Failed {
                status: status.as_u16(),
                detail: format!("not JSON: {err}"),
            })?;
            Ok((status.as_u16(), answer))
        }
        .await;
        (outcome, started.elapsed())
    }

    /// `GET path`: the whole JSON answer.
    pub(crate) async fn get(&self, path: &str) -> Timed<Value> {
        let (answer, took) = self
            .send_for_json(reqwest::Method::GET, path, None::<&()>, CALL_TIMEOUT)
            .await;
        (answer.map(|(_, answer)| answer), took)
    }

    /// The server's `host:port`, for clients that speak HTTP themselves.
    pub(crate) fn address(&self) -> Result<String, Failed> {
        self.base
            .strip_prefix("http://")
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_owned())
            .ok_or_else(|| Failed {
                status: 0,
                detail: format!("{} is not an http:// address", self.base),
            })
    }

    /// The bearer token this identity sends.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Queues one task.
    pub(crate) async fn create_task(&self, task: &NewTask) -> Timed<Task> {
        self.send(
            reqwest::Method::POST,
            "/api/tasks",
            Some(task),
            CALL_TIMEOUT,
        )
        .await
    }

    /// Queues up to 50 tasks in one transaction.
    pub(crate) async fn create_tasks(&self, tasks: &[NewTask]) -> Timed<Vec<Task>> {
        #[derive(Serialize)]
        struct Batch<'a> {
            tasks: &'a [NewTask],
        }
        #[derive(serde::Deserialize)]
        struct Created {
            tasks: Vec<Task>,
        }
        let (outcome, took) = self
            .send::<Created>(
                reqwest::Method::POST,
                "/api/tasks/batch",
                Some(&Batch { tasks }),
                CALL_TIMEOUT,
            )
            .await;
        (outcome.map(|created| created.tasks), took)
    }

    /// A page of tasks in creation order: the tasks and the total.
    pub(crate) async fn tasks_page(
        &self,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<Task>, u64), Failed> {
        #[derive(serde::Deserialize)]
        struct Item {
            #[serde(flatten)]
            task: Task,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Pagination {
            total_count: u64,
        }
        #[derive(serde::Deserialize)]
        struct List {
            tasks: Vec<Item>,
            pagination: Pagination,
        }
        let path =
            format!("/api/tasks?sortBy=createdAt&sortOrder=asc&limit={limit}&offset={offset}");
        let (outcome, _) = self
            .send::<List>(reqwest::Method::GET, &path, None::<&()>, CALL_TIMEOUT)
            .await;
        let list = outcome?;
        let tasks = list.tasks.into_iter().map(|item| item.task).collect();
        Ok((tasks, list.pagination.total_count))
    }

    /// Mints a setup token and exchanges it for a runner session named `name`.
    pub(crate) async fn connect_runner(&self, name: &str) -> Result<Api, Failed> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Minted {
            connection_token: String,
        }
        let (minted, _) = self
            .send::<Minted>(
                reqwest::Method::GET,
                "/api/connect",
                None::<&()>,
                CALL_TIMEOUT,
            )
            .await;
        let token: ConnectionToken = minted?.connection_token.parse().map_err(|err| Failed {
            status: 0,
            detail: format!("an unreadable connection token: {err}"),
        })?;
        let anonymous = Api::new(self.http.clone(), &self.base, "");
        let exchange = SetupExchange {
            setup_token: token.setup_token,
            name: Some(name.to_owned()),
            working_dir: Some("/load".into()),
            runner: None,
        };
        let (connected, _) = anonymous
            .send::<RunnerConnected>(
                reqwest::Method::POST,
                "/api/connect",
                Some(&exchange),
                CALL_TIMEOUT,
            )
            .await;
        Ok(Api::new(
            self.http.clone(),
            &self.base,
            &connected?.runner_token,
        ))
    }

    /// Claims up to `max` tasks, waiting up to `wait`.
    pub(crate) async fn claim(&self, max: usize, wait: Duration) -> Timed<Claimed> {
        let request = ClaimWork::new(max, wait, LEASE, RunnerIdentity::default());
        self.send(
            reqwest::Method::POST,
            "/api/runner/claim",
            Some(&request),
            wait + CLAIM_SLACK,
        )
        .await
    }

    /// Keeps the attempt's lease and reports it in progress.
    pub(crate) async fn heartbeat(&self, attempt: AttemptRef) -> Timed<HeartbeatAnswer> {
        let report = HeartbeatReport::keeping(
            attempt,
            LEASE,
            Some(orchestrator_core::model::TaskStatus::InProgress),
        );
        self.send(
            reqwest::Method::POST,
            "/api/runner/heartbeat",
            Some(&report),
            CALL_TIMEOUT,
        )
        .await
    }

    /// Sends `count` log entries on the attempt.
    pub(crate) async fn logs(&self, attempt: AttemptRef, count: usize) -> Timed<Value> {
        let entries = (0..count)
            .map(|n| LogEntry {
                log_type: orchestrator_core::model::LogType::Info,
                content: format!("load tool: step {n} of the attempt"),
                metadata: None,
                timestamp: None,
            })
            .collect();
        let batch = LogBatch::new(attempt, entries);
        self.send(
            reqwest::Method::POST,
            "/api/runner/logs",
            Some(&batch),
            CALL_TIMEOUT,
        )
        .await
    }

    /// Ends the attempt as a success with a commit.
    pub(crate) async fn complete(&self, attempt: AttemptRef) -> Timed<Value> {
        let report = CompletionReport::new(
            attempt,
            true,
            false,
            false,
            false,
            Some("done by the load tool".into()),
            None,
            Some(format!("{:040x}", attempt.task_id().as_uuid().as_u128())),
            orchestrator_core::model::Usage::default(),
            None,
            None,
            None,
            None,
            None,
        );
        self.send(
            reqwest::Method::POST,
            "/api/runner/complete",
            Some(&report),
            CALL_TIMEOUT,
        )
        .await
    }
}
