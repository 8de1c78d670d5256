//! Automatic retries: a failed attempt is classified from its structured verification
//! result, and a configurable strategy per class says whether to retry, after how long,
//! how often, and whether a human should look.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::change::TaskAction;
use crate::error::{Error, Result};
use crate::ids::TaskId;
use crate::model::{
    ExceptionSeverity, ExceptionType, FailureKind, NewException, Task, TaskStatus,
    VerificationResult,
};
use crate::store::Store;
use crate::store::StoreExt;
use crate::time::Timestamp;

/// The semantic score below which a change counts as not doing the task.
pub const SEMANTIC_PASS_SCORE: f64 = 0.7;

wire_enum!(
    /// Why an attempt failed, as far as retrying is concerned.
    FailureClass, "failureType" {
        /// A file does not parse.
        Syntax = "SYNTAX_ERROR",
        /// The type checker or compiler rejected the change.
        Type = "TYPE_ERROR",
        /// The linter reported errors.
        Lint = "LINT_ERROR",
        /// Tests failed.
        Test = "TEST_FAILURE",
        /// The change does not do what the task asks.
        Semantic = "SEMANTIC_ERROR",
        /// A check or the agent ran out of time.
        Timeout = "TIMEOUT",
        /// Anything else, including failures without a verification result.
        Unknown = "UNKNOWN",
    }
);

/// What to do about one class of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    pub should_retry: bool,
    /// Wait before the task becomes claimable again.
    #[serde(with = "crate::time::millis")]
    pub delay: Duration,
    /// Retries allowed for this class (counted by the task's retry counter).
    pub max_attempts: u32,
    pub requires_human_review: bool,
}

/// The strategy for every failure class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    strategies: BTreeMap<FailureClass, RetryStrategy>,
}

impl Default for RetryPolicy {
    /// The default table, one strategy per failure class.
    fn default() -> Self {
        let strategy = |retry, delay_ms, max, review| RetryStrategy {
            should_retry: retry,
            delay: Duration::from_millis(delay_ms),
            max_attempts: max,
            requires_human_review: review,
        };
        Self {
            strategies: BTreeMap::from([
                (FailureClass::Syntax, strategy(true, 5_000, 3, false)),
                (FailureClass::Type, strategy(true, 10_000, 3, false)),
                (FailureClass::Lint, strategy(true, 5_000, 2, false)),
                (FailureClass::Test, strategy(true, 30_000, 2, true)),
                (FailureClass::Semantic, strategy(false, 0, 1, true)),
                (FailureClass::Timeout, strategy(true, 60_000, 2, false)),
                (FailureClass::Unknown, strategy(true, 30_000, 1, true)),
            ]),
        }
    }
}

impl RetryPolicy {
    /// The strategy for `class`.
    pub fn strategy(&self, class: FailureClass) -> RetryStrategy {
        self.strategies
            .get(&class)
            .copied()
            .unwrap_or(RetryStrategy {
                should_retry: false,
                delay: Duration::ZERO,
                max_attempts: 0,
                requires_human_review: true,
            })
    }

    /// Replaces the strategy for `class`.
    pub fn with(mut self, class: FailureClass, strategy: RetryStrategy) -> Self {
        self.strategies.insert(class, strategy);
        self
    }

    /// This table with the strategies of `json` in place of its own: an object keyed by
    /// failure class (`"TYPE_ERROR"`, ...), each value a whole strategy, e.g.
    /// `{"TYPE_ERROR": {"shouldRetry": true, "delay": 20000, "maxAttempts": 5,
    /// "requiresHumanReview": false}}` (`delay` in milliseconds). Classes it leaves out
    /// keep their strategy; an unknown class or field, a missing field, a delay over a day
    /// or more than [`MAX_RETRIES`] retries is refused, naming what is wrong.
    pub fn overridden_by_json(mut self, json: &str) -> Result<Self> {
        let overrides: BTreeMap<FailureClass, StrategyOverride> = serde_json::from_str(json)
            .map_err(|err| Error::invalid("retryPolicy", err.to_string()))?;
        for (class, strategy) in overrides {
            let strategy = RetryStrategy::from(strategy);
            if strategy.delay > MAX_RETRY_DELAY {
                return Err(Error::invalid(
                    "retryPolicy",
                    format!("{class}: delay may be at most a day (86400000 ms)"),
                ));
            }
            if strategy.max_attempts > MAX_RETRIES {
                return Err(Error::invalid(
                    "retryPolicy",
                    format!("{class}: maxAttempts may be at most {MAX_RETRIES}"),
                ));
            }
            self.strategies.insert(class, strategy);
        }
        Ok(self)
    }
}

/// The most retries a strategy may allow.
pub const MAX_RETRIES: u32 = 100;
/// The longest delay a strategy may ask for.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(86_400);

/// A strategy as an operator writes it: every field required, no other.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StrategyOverride {
    should_retry: bool,
    #[serde(with = "crate::time::millis")]
    delay: Duration,
    max_attempts: u32,
    requires_human_review: bool,
}

impl From<StrategyOverride> for RetryStrategy {
    fn from(written: StrategyOverride) -> Self {
        Self {
            should_retry: written.should_retry,
            delay: written.delay,
            max_attempts: written.max_attempts,
            requires_human_review: written.requires_human_review,
        }
    }
}

/// The class of a failed verification: the first failing stage in pipeline order
/// (syntax, types, lint, tests), then timeouts, then a failing semantic review.
pub fn classify(result: Option<&VerificationResult>) -> FailureClass {
    let Some(result) = result else {
        return FailureClass::Unknown;
    };
    let failed = |kind: FailureKind| result.failures.iter().any(|f| f.kind == kind);
    if result.syntax_passed == Some(false) || failed(FailureKind::Syntax) {
        FailureClass::Syntax
    } else if result.types_passed == Some(false) || failed(FailureKind::Type) {
        FailureClass::Type
    } else if result.lint_passed == Some(false) || failed(FailureKind::Lint) {
        FailureClass::Lint
    } else if result.tests_passed == Some(false) || failed(FailureKind::Test) {
        FailureClass::Test
    } else if failed(FailureKind::Timeout) {
        FailureClass::Timeout
    } else if failed(FailureKind::Semantic)
        || result
            .semantic_score
            .is_some_and(|s| s < SEMANTIC_PASS_SCORE)
    {
        FailureClass::Semantic
    } else {
        FailureClass::Unknown
    }
}

/// What an automatic retry decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RetryInfo {
    /// The retry this is (1 for the first).
    pub attempt: u32,
    pub max_attempts: u32,
    pub failure_type: FailureClass,
    pub requires_human_review: bool,
    /// When the task may be claimed again.
    pub not_before: Timestamp,
}

impl FailureClass {
    /// What failed, as a phrase for a sentence ("after …").
    pub fn phrase(self) -> &'static str {
        match self {
            Self::Syntax => "a syntax error",
            Self::Type => "a type error",
            Self::Lint => "lint errors",
            Self::Test => "failing tests",
            Self::Semantic => "a review finding the change does not do what was asked",
            Self::Timeout => "running out of time",
            Self::Unknown => "an unclassified failure",
        }
    }
}

impl RetryInfo {
    /// The description of the exception asking for a review of this retry.
    pub(crate) fn review_note(&self) -> String {
        format!(
            "Retried automatically after {} (retry {} of {}); a review is advised.",
            self.failure_type.phrase(),
            self.attempt,
            self.max_attempts
        )
    }
}

/// Decides whether `task` (FAILED) may be retried automatically after `latest`.
/// A refusal is a `Conflict` that says why.
pub fn decide(
    task: &Task,
    latest: Option<&VerificationResult>,
    policy: &RetryPolicy,
    now: Timestamp,
) -> Result<RetryInfo> {
    if task.status != TaskStatus::Failed {
        return Err(crate::state::task::transition(
            task.status,
            crate::state::task::TaskEvent::Retry,
        )
        .err()
        .map(Error::from)
        .unwrap_or_else(|| Error::conflict("only a FAILED task can be retried")));
    }
    let class = classify(latest);
    let strategy = policy.strategy(class);
    if !strategy.should_retry {
        return Err(Error::conflict(format!(
            "the attempt failed with {} ({class}), which the retry policy does not retry \
             automatically: a person decides",
            class.phrase()
        )));
    }
    if task.attempts_used >= task.max_attempts {
        return Err(Error::conflict(format!(
            "all {} attempts of the task are used (maxAttempts); retry it by hand to give it one more",
            task.max_attempts
        )));
    }
    if task.retry_count >= strategy.max_attempts {
        return Err(Error::conflict(format!(
            "the retry policy allows {} automatic retries after {} ({class}), and all are used",
            strategy.max_attempts,
            class.phrase()
        )));
    }
    Ok(RetryInfo {
        attempt: task.retry_count + 1,
        max_attempts: strategy.max_attempts,
        failure_type: class,
        requires_human_review: strategy.requires_human_review,
        not_before: now.add(strategy.delay),
    })
}

/// Retries a FAILED task automatically if its policy allows, with the delay applied
/// through `notBefore`; raises a VERIFICATION_FAILED exception when a human should look
/// (the strategy asks for review, or no retry is allowed).
pub async fn auto_retry(
    store: &dyn Store,
    task_id: TaskId,
    policy: &RetryPolicy,
    now: Timestamp,
) -> Result<(Task, RetryInfo)> {
    let task = store.get_task(task_id).await?;
    let latest = store.list_verification_results(task_id, 1).await?;
    match decide(&task, latest.first(), policy, now) {
        Ok(info) => {
            let retried = store
                .apply_task_action(
                    task_id,
                    TaskAction::Retry {
                        not_before: Some(info.not_before),
                        note: None,
                    },
                    None,
                    now,
                )
                .await?;
            if info.requires_human_review {
                store
                    .raise_exception(
                        review_exception(&task, ExceptionSeverity::Warning, info.review_note()),
                        now,
                    )
                    .await?;
            }
            Ok((retried, info))
        }
        Err(Error::Conflict(reason)) => {
            store
                .raise_exception(
                    review_exception(&task, ExceptionSeverity::Error, reason.clone()),
                    now,
                )
                .await?;
            Err(Error::Conflict(reason))
        }
        Err(other) => Err(other),
    }
}

/// The VERIFICATION_FAILED exception asking a human to look at `task`.
pub(crate) fn review_exception(
    task: &Task,
    severity: ExceptionSeverity,
    description: String,
) -> NewException {
    let mut exception = NewException::new(
        ExceptionType::VerificationFailed,
        severity,
        "Task verification failed",
    );
    exception.description = Some(description);
    exception.suggested_action = Some(
        "Read the verification failures and the agent's logs, then retry or edit the task".into(),
    );
    exception.task_id = Some(task.id);
    exception.agent_id = task.assigned_agent_id;
    exception
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::VerificationResultId;
    use crate::model::{NewTask, VerificationFailure};

    fn result(edit: impl FnOnce(&mut VerificationResult)) -> VerificationResult {
        let mut result = VerificationResult {
            id: VerificationResultId::new(),
            task_id: TaskId::new(),
            attempt_number: 1,
            passed: false,
            confidence_score: 0.4,
            syntax_passed: Some(true),
            types_passed: Some(true),
            lint_passed: Some(true),
            tests_passed: Some(true),
            tests_total: Some(3),
            tests_failed: Some(0),
            semantic_score: None,
            semantic_explanation: None,
            failures: Vec::new(),
            recommendations: Vec::new(),
            unverified: false,
            stages: Vec::new(),
            created_at: Timestamp::from_millis(0).unwrap(),
        };
        edit(&mut result);
        result
    }

    #[test]
    fn classification_reads_structure_not_keywords() {
        assert_eq!(classify(None), FailureClass::Unknown);
        // A message that mentions "type" does not make a test failure a type error.
        let tests = result(|r| {
            r.tests_passed = Some(false);
            r.failures.push(VerificationFailure {
                kind: FailureKind::Test,
                message: "expected type Foo, found syntax error in fixture".into(),
                file: None,
                line: None,
                column: None,
            });
        });
        assert_eq!(classify(Some(&tests)), FailureClass::Test);
        assert_eq!(
            classify(Some(&result(|r| r.syntax_passed = Some(false)))),
            FailureClass::Syntax
        );
        assert_eq!(
            classify(Some(&result(|r| {
                r.types_passed = Some(false);
                r.lint_passed = Some(false);
            }))),
            FailureClass::Type
        );
        assert_eq!(
            classify(Some(&result(|r| r.lint_passed = Some(false)))),
            FailureClass::Lint
        );
        assert_eq!(
            classify(Some(&result(|r| r.semantic_score = Some(0.5)))),
            FailureClass::Semantic
        );
        let timeout = result(|r| {
            r.failures.push(VerificationFailure {
                kind: FailureKind::Timeout,
                message: "cargo test ran past 300 s".into(),
                file: None,
                line: None,
                column: None,
            })
        });
        assert_eq!(classify(Some(&timeout)), FailureClass::Timeout);
    }

    #[test]
    fn an_operators_table_replaces_the_classes_it_names() {
        let policy = RetryPolicy::default()
            .overridden_by_json(
                r#"{"TYPE_ERROR": {"shouldRetry": true, "delay": 20000, "maxAttempts": 5,
                    "requiresHumanReview": true}}"#,
            )
            .unwrap();
        let expected = RetryStrategy {
            should_retry: true,
            delay: Duration::from_secs(20),
            max_attempts: 5,
            requires_human_review: true,
        };
        assert_eq!(policy.strategy(FailureClass::Type), expected);
        assert_eq!(
            policy.strategy(FailureClass::Lint),
            RetryPolicy::default().strategy(FailureClass::Lint),
            "the classes it leaves out keep the default strategy"
        );
        for (bad, says) in [
            (r#"{"TYPO_ERROR": {}}"#, "TYPO_ERROR"),
            (
                r#"{"LINT_ERROR": {"shouldRetry": true, "delay": 1, "maxAttempts": 1}}"#,
                "requiresHumanReview",
            ),
            (
                r#"{"LINT_ERROR": {"shouldRetry": true, "delay": 1, "maxAttempts": 1,
                    "requiresHumanReview": false, "dealy": 5}}"#,
                "dealy",
            ),
            (
                r#"{"TIMEOUT": {"shouldRetry": true, "delay": 86400001, "maxAttempts": 1,
                    "requiresHumanReview": false}}"#,
                "at most a day",
            ),
            (
                r#"{"TIMEOUT": {"shouldRetry": true, "delay": 1, "maxAttempts": 101,
                    "requiresHumanReview": false}}"#,
                "at most 100",
            ),
            ("[]", "map"),
        ] {
            match RetryPolicy::default().overridden_by_json(bad) {
                Err(Error::InvalidInput { field, message }) => {
                    assert_eq!(field, "retryPolicy");
                    assert!(message.contains(says), "{bad}: {message}");
                }
                other => panic!("{bad} gave {other:?}"),
            }
        }
    }

    #[test]
    fn the_default_table_is_kept() {
        let policy = RetryPolicy::default();
        // (class, retried, delay in seconds, retries allowed, human review)
        let table = [
            (FailureClass::Syntax, true, 5, 3, false),
            (FailureClass::Type, true, 10, 3, false),
            (FailureClass::Lint, true, 5, 2, false),
            (FailureClass::Test, true, 30, 2, true),
            (FailureClass::Semantic, false, 0, 1, true),
            (FailureClass::Timeout, true, 60, 2, false),
            (FailureClass::Unknown, true, 30, 1, true),
        ];
        for (class, retried, delay, max_attempts, review) in table {
            let expected = RetryStrategy {
                should_retry: retried,
                delay: Duration::from_secs(delay),
                max_attempts,
                requires_human_review: review,
            };
            assert_eq!(policy.strategy(class), expected, "{class}");
        }
    }

    #[test]
    fn decisions_follow_the_table_and_its_limits() {
        let now = Timestamp::from_millis(1_000).unwrap();
        let mut task = NewTask::new("t", "d").into_task(TaskId::new(), now);
        task.status = TaskStatus::Failed;
        let policy = RetryPolicy::default();
        let syntax = result(|r| r.syntax_passed = Some(false));
        let info = decide(&task, Some(&syntax), &policy, now).unwrap();
        assert_eq!((info.attempt, info.max_attempts), (1, 3));
        assert_eq!(info.not_before, now.add(Duration::from_secs(5)));
        assert!(!info.requires_human_review);
        task.retry_count = 3;
        assert!(matches!(
            decide(&task, Some(&syntax), &policy, now),
            Err(Error::Conflict(_))
        ));
        task.retry_count = 0;
        let semantic = result(|r| r.semantic_score = Some(0.1));
        assert!(matches!(
            decide(&task, Some(&semantic), &policy, now),
            Err(Error::Conflict(_))
        ));
        let tests = result(|r| r.tests_passed = Some(false));
        assert!(
            decide(&task, Some(&tests), &policy, now)
                .unwrap()
                .requires_human_review
        );
        task.status = TaskStatus::Queued;
        assert!(matches!(
            decide(&task, None, &policy, now),
            Err(Error::InvalidTransition(_))
        ));
    }

    #[test]
    fn the_table_is_configurable() {
        let policy = RetryPolicy::default().with(
            FailureClass::Semantic,
            RetryStrategy {
                should_retry: true,
                delay: Duration::from_secs(1),
                max_attempts: 5,
                requires_human_review: false,
            },
        );
        let now = Timestamp::from_millis(0).unwrap();
        let mut task = NewTask::new("t", "d").into_task(TaskId::new(), now);
        task.status = TaskStatus::Failed;
        let semantic = result(|r| r.semantic_score = Some(0.1));
        assert_eq!(
            decide(&task, Some(&semantic), &policy, now)
                .unwrap()
                .max_attempts,
            5
        );
        let json = serde_json::to_string(&policy).unwrap();
        assert!(json.contains("SEMANTIC_ERROR"), "{json}");
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;
    use crate::InMemoryStore;
    use crate::coordination::ClaimRequest;
    use crate::model::{ExceptionQuery, NewAgent, NewTask, NewVerificationResult, Usage};
    use crate::store::{AgentStore, EvidenceStore, ExceptionStore, QueueStore, TaskStore};

    #[tokio::test]
    async fn auto_retry_requeues_with_a_delay_and_asks_for_review_when_due() {
        let store = InMemoryStore::new();
        let now = Timestamp::from_millis(0).unwrap();
        let task = store
            .create_task(NewTask::new("t", "d"), now)
            .await
            .unwrap()
            .value;
        let agent = store.create_agent(NewAgent::default(), now).await.unwrap();
        let claim = store
            .claim(
                ClaimRequest {
                    agents: vec![agent.id],
                    runner_session_id: None,
                    task_id: None,
                    lease_ttl: Duration::from_secs(60),
                },
                now,
            )
            .await
            .unwrap()
            .remove(0);
        let failing_tests = NewVerificationResult {
            passed: false,
            confidence_score: 0.5,
            syntax_passed: Some(true),
            types_passed: Some(true),
            lint_passed: Some(true),
            tests_passed: Some(false),
            tests_total: Some(4),
            tests_failed: Some(1),
            semantic_score: None,
            semantic_explanation: None,
            failures: Vec::new(),
            recommendations: Vec::new(),
            unverified: false,
            stages: Vec::new(),
        };
        store
            .record_verification(task.id, None, failing_tests, now)
            .await
            .unwrap();
        let fail = TaskAction::Fail {
            reason: "1 test failed".into(),
            usage: Usage::default(),
        };
        store
            .apply_task_action(task.id, fail, Some(claim.lease), now)
            .await
            .unwrap();

        let (retried, info) = auto_retry(&store, task.id, &RetryPolicy::default(), now)
            .await
            .unwrap();
        assert_eq!(info.failure_type, FailureClass::Test);
        assert_eq!(retried.status, TaskStatus::Queued);
        assert_eq!(retried.not_before, Some(now.add(Duration::from_secs(30))));
        let inbox = store
            .list_exceptions(&ExceptionQuery::default())
            .await
            .unwrap();
        assert_eq!(inbox.total_count, 1, "tests failing asks for a review");

        let queued_again = auto_retry(&store, task.id, &RetryPolicy::default(), now).await;
        assert!(matches!(queued_again, Err(Error::InvalidTransition(_))));
    }
}
