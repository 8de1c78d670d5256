//! The domain model's enumerations, with their exact wire spelling.
//!
//! Every enum serializes as the value its variant names (see `wire_enum!`), upper case
//! unless noted.

#[cfg(test)]
use crate::error::Error;

wire_enum!(
    /// Where a task is in its lifecycle; see [`crate::state::task`].
    TaskStatus, "status" {
        /// Waiting to be claimed.
        Queued = "QUEUED",
        /// Claimed by an agent; the attempt's lease is running but work has not started.
        Assigned = "ASSIGNED",
        /// The agent is working on it.
        InProgress = "IN_PROGRESS",
        /// The agent has finished; its change is being verified.
        Verifying = "VERIFYING",
        /// Done and verified. Final.
        Completed = "COMPLETED",
        /// The last attempt failed; a retry puts it back in the queue.
        Failed = "FAILED",
        /// Withdrawn by a person; can be reopened.
        Cancelled = "CANCELLED",
    }
);

impl TaskStatus {
    /// Whether an attempt is live (a runner holds the lease).
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Assigned | Self::InProgress | Self::Verifying)
    }
}

wire_enum!(
    /// What an agent slot is doing; see [`crate::state::agent`].
    AgentStatus, "status" {
        /// Free to take a task.
        Idle = "IDLE",
        /// Running a task attempt.
        Working = "WORKING",
        /// Told to pause; keeps its task and locks.
        Paused = "PAUSED",
        /// Retired normally. Final.
        Completed = "COMPLETED",
        /// Broken beyond recovery. Final.
        Failed = "FAILED",
        /// Its lease expired without a heartbeat; it may come back.
        Stuck = "STUCK",
    }
);

wire_enum!(
    /// How risky a task's change is.
    RiskLevel, "riskLevel" {
        /// Low risk.
        Low = "LOW",
        /// Medium risk (the default).
        Medium = "MEDIUM",
        /// High risk.
        High = "HIGH",
        /// Critical risk.
        Critical = "CRITICAL",
    }
);

wire_enum!(
    /// Outcome of a task's latest verification.
    VerificationStatus, "verificationStatus" {
        /// Not verified yet.
        Pending = "PENDING",
        /// The latest verification passed.
        Passed = "PASSED",
        /// The latest verification failed.
        Failed = "FAILED",
        /// The latest change touched only files no check applies to (documentation,
        /// data): it is not verified.
        Unverified = "UNVERIFIED",
    }
);

wire_enum!(
    /// Estimated size of a task.
    TaskComplexity, "estimatedComplexity" {
        /// A small change.
        Simple = "SIMPLE",
        /// A moderate change.
        Medium = "MEDIUM",
        /// A large change.
        Complex = "COMPLEX",
    }
);

wire_enum!(
    /// Kind of an agent log entry.
    LogType, "logType" {
        /// The model's reasoning or text.
        Thinking = "THINKING",
        /// A tool invocation.
        ToolCall = "TOOL_CALL",
        /// A tool's output.
        ToolResult = "TOOL_RESULT",
        /// An error.
        Error = "ERROR",
        /// A lifecycle change.
        StatusChange = "STATUS_CHANGE",
        /// Anything else.
        Info = "INFO",
    }
);

wire_enum!(
    /// Why an exception needs a human.
    ExceptionType, "exceptionType" {
        /// Verification failed and retries are used up or need review.
        VerificationFailed = "VERIFICATION_FAILED",
        /// An agent stopped making progress.
        AgentStuck = "AGENT_STUCK",
        /// Two agents wanted the same files, or a lock was taken away.
        ConflictDetected = "CONFLICT_DETECTED",
        /// The change touches something risky.
        HighRiskCode = "HIGH_RISK_CODE",
        /// A queued task waits for a dependency that failed or was cancelled: it cannot
        /// run until that one completes.
        DependencyFailed = "DEPENDENCY_FAILED",
        /// Anything else.
        UnknownError = "UNKNOWN_ERROR",
    }
);

wire_enum!(
    /// How urgent an exception is.
    ExceptionSeverity, "severity" {
        /// For information.
        Info = "INFO",
        /// Worth a look.
        Warning = "WARNING",
        /// Something failed.
        Error = "ERROR",
        /// Needs attention now.
        Critical = "CRITICAL",
    }
);

impl ExceptionSeverity {
    /// Sort rank, most urgent first (CRITICAL = 0).
    pub fn urgency_rank(&self) -> u8 {
        match self {
            Self::Critical => 0,
            Self::Error => 1,
            Self::Warning => 2,
            Self::Info => 3,
        }
    }
}

wire_enum!(
    /// Where an exception is in its review; see [`crate::state::exception`].
    ExceptionStatus, "status" {
        /// Waiting for a human.
        Open = "OPEN",
        /// Someone is looking at it.
        Acknowledged = "ACKNOWLEDGED",
        /// Dealt with. Final.
        Resolved = "RESOLVED",
        /// Judged not worth acting on; can be reopened.
        Dismissed = "DISMISSED",
    }
);

impl ExceptionStatus {
    /// Whether the exception still waits for a human (OPEN or ACKNOWLEDGED).
    pub fn is_unresolved(&self) -> bool {
        matches!(self, Self::Open | Self::Acknowledged)
    }
}

wire_enum!(
    /// Whether a runner session may act; see [`crate::state::runner_session`].
    RunnerSessionStatus, "status" {
        /// Seen recently.
        Active = "ACTIVE",
        /// Not seen for a while; becomes active again when it calls in.
        Inactive = "INACTIVE",
        /// Its token was revoked. Final.
        Revoked = "REVOKED",
    }
);

wire_enum!(
    /// Lifecycle of a file lock; see [`crate::state::file_lock`].
    FileLockStatus, "status" {
        /// Held by its agent.
        Held = "HELD",
        /// Given back by its holder. Final.
        Released = "RELEASED",
        /// Its time ran out. Final.
        Expired = "EXPIRED",
        /// Taken away by an administrator. Final.
        ForceReleased = "FORCE_RELEASED",
    }
);

wire_enum!(
    /// How a lock shares its paths.
    LockMode, "mode" {
        /// Nobody else may hold an overlapping path.
        Exclusive = "EXCLUSIVE",
        /// Other shared holders may overlap; exclusive ones may not.
        Shared = "SHARED",
    }
);

wire_enum!(
    /// How a task attempt ended.
    AttemptOutcome, "outcome" {
        /// Still running.
        Running = "RUNNING",
        /// The task completed.
        Completed = "COMPLETED",
        /// The attempt failed.
        Failed = "FAILED",
        /// The lease ran out before the runner finished.
        Expired = "EXPIRED",
        /// The task was cancelled while the attempt ran.
        Cancelled = "CANCELLED",
        /// The runner stopped before the attempt finished and gave the task back; the
        /// attempt does not count against the task's attempts.
        Returned = "RETURNED",
    }
);

wire_enum!(
    /// The check a verification failure came from (lower case on the wire).
    FailureKind, "type" {
        /// A file does not parse.
        Syntax = "syntax",
        /// The type checker or compiler rejected the change.
        Type = "type",
        /// The linter reported errors.
        Lint = "lint",
        /// Tests failed.
        Test = "test",
        /// A reviewer (model) judged the change not to do the task.
        Semantic = "semantic",
        /// A check ran out of time.
        Timeout = "timeout",
        /// The change broke a policy (files outside locks, secrets, size limits).
        Policy = "policy",
    }
);

wire_enum!(
    /// How a file changed in an attempt's change.
    FileChangeStatus, "changes.files[].status" {
        /// A new file.
        Added = "ADDED",
        /// A file whose content (or type) changed.
        Modified = "MODIFIED",
        /// A file that is gone.
        Deleted = "DELETED",
        /// A file moved to a new path, its content the same or similar.
        Renamed = "RENAMED",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_wire_spelling() {
        for status in TaskStatus::ALL {
            let json = serde_json::to_string(status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
            assert_eq!(status.as_str().parse::<TaskStatus>().unwrap(), *status);
        }
        assert_eq!(FailureKind::Syntax.as_str(), "syntax");
    }

    #[test]
    fn unknown_values_are_invalid_input_naming_the_choices() {
        let err = "DONE".parse::<TaskStatus>().unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidInput { .. }));
        assert!(
            text.contains("QUEUED") && text.contains("\"DONE\""),
            "{text}"
        );
        assert!("queued".parse::<TaskStatus>().is_err());
        assert!(serde_json::from_str::<RiskLevel>("\"EXTREME\"").is_err());
    }
}
