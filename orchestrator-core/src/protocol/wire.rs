//! The runner protocol's messages: what a runner sends (a claim, reports on its
//! attempts) and what it gets back. The HTTP routes take and answer them as JSON; the
//! HTTP client sends and reads the same types; an in-process runner passes them directly.

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::attempts::{AttemptCompletion, DiffStats};
use crate::change::LeaseRef;
use crate::coordination::{Claim, ControlSignal};
use crate::ids::{AgentId, LeaseToken, RunnerSessionId, TaskId};
use crate::model::{
    AgentStatus, ChangeReport, FileLock, LogType, NewVerificationResult, RunnerIdentity, Task,
    TaskStatus, Usage,
};
use crate::time::Timestamp;

/// Who holds an attempt: every report on it carries this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptRef {
    pub agent_id: AgentId,
    pub lease: LeaseRef,
}

impl AttemptRef {
    pub fn task_id(&self) -> TaskId {
        self.lease.task_id
    }
}

impl From<&ClaimedTask> for AttemptRef {
    fn from(claimed: &ClaimedTask) -> Self {
        Self {
            agent_id: claimed.agent.id,
            lease: claimed.lease,
        }
    }
}

/// A runner asking for work for its idle agent slots, waiting up to `waitMs` for some.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimWork {
    /// The runner token, for runners that send it here rather than as a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_token: Option<String>,
    /// Claim this task (alone) instead of the next in the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<TaskId>,
    /// Echoed in the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// How long to wait for work when none is claimable now (at most 30,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 30_000))]
    pub wait_ms: Option<u64>,
    /// How many tasks to claim at once, one per agent slot (1 to 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 32))]
    pub max: Option<usize>,
    /// Lease length in milliseconds (5 s to 1 h; default 5 min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 5_000, maximum = 3_600_000))]
    pub lease_ttl_ms: Option<u64>,
    /// What the runner states about itself; its session keeps the latest.
    #[serde(
        default,
        deserialize_with = "object_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub runner: Option<RunnerIdentity>,
}

impl ClaimWork {
    /// A claim by `runner` of up to `max` tasks, waiting up to `wait`, under leases of
    /// `lease_ttl`.
    pub fn new(max: usize, wait: Duration, lease_ttl: Duration, runner: RunnerIdentity) -> Self {
        Self {
            max: Some(max),
            wait_ms: Some(millis(wait)),
            lease_ttl_ms: Some(millis(lease_ttl)),
            runner: Some(runner),
            ..Self::default()
        }
    }
}

/// A nested message that is a JSON object, or `null` for none. Serde takes a struct from
/// an array of its fields as well; a message refuses that form.
fn object_or_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOrNull<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOrNull<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object or null")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
    }

    deserializer.deserialize_any(ObjectOrNull(PhantomData))
}

/// `duration` in whole milliseconds, as the messages carry it.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The agent slot a task was given to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClaimedAgent {
    pub id: AgentId,
    pub branch_name: Option<String>,
}

/// One task handed to one of the runner's slots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ClaimedTask {
    pub task: Task,
    pub agent: ClaimedAgent,
    /// What every report on this attempt presents.
    pub lease: LeaseRef,
    pub lease_expires_at: Option<Timestamp>,
    /// The locks taken on the task's files hint.
    #[serde(default)]
    pub locks: Vec<FileLock>,
}

impl From<Claim> for ClaimedTask {
    fn from(claim: Claim) -> Self {
        Self {
            agent: ClaimedAgent {
                id: claim.agent_id,
                branch_name: claim.task.branch_name.clone(),
            },
            lease: claim.lease,
            lease_expires_at: claim.task.lease_expires_at,
            locks: claim.locks,
            task: claim.task,
        }
    }
}

/// The answer to a claim. The first claim's task and agent are also at the top level, in
/// the shape of the older single-task API; `claims` holds every claim of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Claimed {
    pub task: Option<Task>,
    pub agent: Option<ClaimedAgent>,
    pub lease: Option<LeaseRef>,
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub claims: Vec<ClaimedTask>,
}

/// Every report on an attempt carries its agent and its lease (`agentId`, `taskId`,
/// `attempt`, `leaseToken`), and may carry the runner token.
macro_rules! attempt_report {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            /// The runner token, for runners that send it here rather than as a bearer
            /// token.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub runner_token: Option<String>,
            pub agent_id: AgentId,
            pub task_id: TaskId,
            pub attempt: u32,
            pub lease_token: LeaseToken,
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $name {
            /// A report on `attempt`, without a runner token.
            #[allow(clippy::too_many_arguments)]
            pub fn new(attempt: AttemptRef, $($field: $ty),*) -> Self {
                Self {
                    runner_token: None,
                    agent_id: attempt.agent_id,
                    task_id: attempt.lease.task_id,
                    attempt: attempt.lease.attempt,
                    lease_token: attempt.lease.lease_token,
                    $($field,)*
                }
            }

            /// The attempt the report is about.
            pub fn attempt_ref(&self) -> AttemptRef {
                AttemptRef {
                    agent_id: self.agent_id,
                    lease: LeaseRef {
                        task_id: self.task_id,
                        attempt: self.attempt,
                        lease_token: self.lease_token,
                    },
                }
            }
        }
    };
}

attempt_report! {
    /// Keeps the attempt's lease, and says where it has got to.
    pub struct HeartbeatReport {
        /// Lease length to extend to, in milliseconds (5 s to 1 h; default 5 min).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(minimum = 5_000, maximum = 3_600_000))]
        pub lease_ttl_ms: Option<u64>,
        /// Where the attempt has got to: IN_PROGRESS once the agent works, VERIFYING once
        /// it has finished and its change is being checked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub status: Option<TaskStatus>,
    }
}

impl HeartbeatReport {
    /// A heartbeat on `attempt` asking for a lease of `lease_ttl`, reporting `status`.
    pub fn keeping(attempt: AttemptRef, lease_ttl: Duration, status: Option<TaskStatus>) -> Self {
        Self::new(attempt, Some(millis(lease_ttl)), status)
    }
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatAnswer {
    pub success: bool,
    pub timestamp: Timestamp,
    /// What the runner must do: continue, stop (the task was cancelled) or pause.
    pub signal: ControlSignal,
    pub lease_expires_at: Timestamp,
}

/// One log entry of an attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogEntry {
    pub log_type: LogType,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// The runner's clock; kept in the metadata, never used as the entry's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

attempt_report! {
    /// Log entries of the attempt, 1 to 500 at once.
    pub struct LogBatch {
        #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 500))]
        pub logs: Vec<LogEntry>,
    }
}

/// How many entries of a batch were stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LogsReceived {
    pub success: bool,
    pub logs_received: u64,
}

attempt_report! {
    /// Paths the attempt changed outside the locks it holds, to lock all or none.
    pub struct ChangedPaths {
        /// 1 to 1,000 repository-relative paths.
        #[cfg_attr(
            feature = "openapi",
            schema(min_items = 1, max_items = 1_000, value_type = Vec<crate::lock::LockPath>)
        )]
        pub paths: Vec<String>,
    }
}

attempt_report! {
    /// How the attempt ended, with its evidence.
    pub struct CompletionReport {
        pub success: bool,
        /// The runner stopped because the task was cancelled (its heartbeat said stop).
        #[serde(default)]
        pub cancelled: bool,
        /// The runner stopped before the attempt finished and gives the task back: it is
        /// queued again and the attempt does not count against its attempts.
        #[serde(default)]
        pub returned: bool,
        /// The attempt failed because its change touches paths other agents hold (the
        /// CONFLICT_DETECTED exception raised when its locks were refused says so).
        #[serde(default)]
        pub lock_conflict: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub summary: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub error: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub commit_sha: Option<String>,
        #[serde(default)]
        pub usage: Usage,
        /// The agent backend that ran the attempt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::model::BackendName>))]
        pub backend: Option<String>,
        /// The model the agent ran on, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::model::ModelName>))]
        pub model: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub diff_stats: Option<DiffStats>,
        /// The changed files and the patch, kept with the attempt's end.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub changes: Option<ChangeReport>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub verification: Option<NewVerificationResult>,
    }
}

impl CompletionReport {
    /// The report of `completion` on `attempt`.
    pub fn from_completion(attempt: AttemptRef, completion: AttemptCompletion) -> Self {
        Self::new(
            attempt,
            completion.success,
            completion.cancelled,
            completion.returned,
            completion.lock_conflict,
            completion.summary,
            completion.error,
            completion.commit_sha,
            completion.usage,
            completion.backend,
            completion.model,
            completion.diff_stats,
            completion.changes,
            completion.verification,
        )
    }

    /// The attempt's end as the runner reported it.
    pub fn completion(self) -> AttemptCompletion {
        AttemptCompletion {
            success: self.success,
            cancelled: self.cancelled,
            returned: self.returned,
            lock_conflict: self.lock_conflict,
            summary: self.summary,
            error: self.error,
            commit_sha: self.commit_sha,
            usage: self.usage,
            backend: self.backend,
            model: self.model,
            diff_stats: self.diff_stats,
            changes: self.changes,
            verification: self.verification,
        }
    }
}

/// Where an ended attempt left its task and its slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Completed {
    pub success: bool,
    pub task_status: TaskStatus,
    pub agent_status: AgentStatus,
}

/// A runner's own slot, set to the status it reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SlotStatusSet {
    pub success: bool,
    pub agent_id: AgentId,
    pub status: AgentStatus,
}

/// A machine asking to become a runner: it exchanges a single-use setup token for a
/// runner token of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetupExchange {
    /// `<secret>:<expiresAtMs>`, from the connection token an admin minted.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9_-]+:[0-9]+$"))]
    pub setup_token: String,
    /// The runner's name, at most 100 characters (default: `runner-` and the time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 100))]
    pub name: Option<String>,
    /// The repository the runner works on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// What the runner states about itself.
    #[serde(
        default,
        deserialize_with = "object_or_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub runner: Option<RunnerIdentity>,
}

/// The runner session a setup token was exchanged for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunnerConnected {
    /// The runner's token: shown once, kept only as a hash on the server.
    pub runner_token: String,
    pub runner_name: String,
    pub runner_id: RunnerSessionId,
}
