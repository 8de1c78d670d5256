//! Which backend and model ran each attempt, and what the attempts used, summed.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;

use super::helpers::*;
use crate::change::{AttemptEnd, LateEvidence, LeaseRef, TaskAction};
use crate::ids::RunnerSessionId;
use crate::model::{
    DayUsage, MAX_BACKEND_CHARS, MAX_MODEL_CHARS, MAX_USAGE_DAYS, MAX_USAGE_TASKS, ModelUsage,
    NewRunnerSession, RunnerIdentity, RunnerUsage, Task, TaskStatus, TaskUsage, Usage, UsageQuery,
    UsageSummary,
};
use crate::retry::RetryPolicy;
use crate::store::{Store, StoreExt};
use crate::time::Timestamp;

const DAY: i64 = 24 * 60 * 60 * 1000;

/// An end of its attempt by `action`, run by `backend` on `model`.
fn end_by(action: TaskAction, backend: Option<&str>, model: Option<&str>) -> AttemptEnd {
    AttemptEnd {
        action,
        verification: None,
        changes: None,
        backend: backend.map(str::to_owned),
        model: model.map(str::to_owned),
        logs: Vec::new(),
        retry_policy: RetryPolicy::default(),
        lock_conflict: false,
    }
}

/// What an attempt used: `tokens` input tokens, a tenth of them output, half and a
/// quarter of them read from and written to the cache, for `cost_usd`.
fn spent(tokens: u64, cost_usd: f64) -> Usage {
    Usage {
        input_tokens: tokens,
        output_tokens: tokens / 10,
        cache_read_tokens: tokens / 2,
        cache_write_tokens: tokens / 4,
        cost_usd,
    }
}

/// The usages of `usages` summed.
fn sum(usages: &[Usage]) -> Usage {
    let mut total = Usage::default();
    for usage in usages {
        total += *usage;
    }
    total
}

/// A completion that used `usage`.
fn completed(usage: Usage) -> TaskAction {
    TaskAction::Complete {
        commit_sha: None,
        usage,
    }
}

/// A failure that used `usage`.
fn failed(usage: Usage) -> TaskAction {
    TaskAction::Fail {
        reason: "tests".into(),
        usage,
    }
}

/// Starts an attempt at `task` at `now` for a new agent slot of `runner`.
async fn start(
    store: &Arc<dyn Store>,
    task: &Task,
    runner: Option<RunnerSessionId>,
    now: Timestamp,
) -> LeaseRef {
    let agent = new_agent(store, now).await;
    assign_for(store, task, agent.id, runner, now).await.1
}

/// The backend and the model that ran an attempt.
type RanBy<'a> = (Option<&'a str>, Option<&'a str>);

/// An attempt at `task` by a slot of `runner` from `started` until `ended` by `action`, run
/// by `backend` on `model`.
async fn attempt(
    store: &Arc<dyn Store>,
    task: &Task,
    runner: Option<RunnerSessionId>,
    (started, ended): (Timestamp, Timestamp),
    action: TaskAction,
    (backend, model): RanBy<'_>,
) {
    let lease = start(store, task, runner, started).await;
    store
        .end_attempt(lease, end_by(action, backend, model), ended)
        .await
        .expect("the attempt ends");
}

/// A runner session called `name`.
async fn runner(store: &Arc<dyn Store>, name: &str) -> RunnerSessionId {
    store
        .create_runner_session(
            NewRunnerSession {
                name: name.into(),
                working_dir: "/srv/app".into(),
                token_hash: format!("{name}-token"),
                runner: RunnerIdentity::default(),
            },
            at(-DAY),
        )
        .await
        .expect("runner session")
        .id
}

/// The summary of the window from `since` to `until` with the `top_tasks` costliest
/// tasks.
async fn summary(
    store: &Arc<dyn Store>,
    since: Timestamp,
    until: Timestamp,
    top_tasks: u32,
) -> UsageSummary {
    store
        .usage_summary(&UsageQuery {
            since,
            until,
            top_tasks,
        })
        .await
        .expect("usage summary")
}

/// An attempt keeps the backend and the model its runner reported with its end, also with
/// a late completion; names beyond their bounds refuse the whole end; an end sent again
/// changes neither; an end that names none leaves them absent.
pub async fn an_attempt_keeps_the_backend_and_model_that_ran_it(store: Arc<dyn Store>) {
    let agent = new_agent(&store, at(0)).await;
    let task = new_task(&store, "backend and model", at(0)).await;
    let (_, lease) = assign(&store, &task, agent.id, at(1)).await;
    let longest_backend = "b".repeat(MAX_BACKEND_CHARS);
    let longest_model = "模".repeat(MAX_MODEL_CHARS);
    for (backend, model, field) in [
        (Some("b".repeat(MAX_BACKEND_CHARS + 1)), None, "backend"),
        (Some(" \t".to_owned()), None, "backend"),
        (None, Some("m".repeat(MAX_MODEL_CHARS + 1)), "model"),
        (Some("claude-code".to_owned()), Some(String::new()), "model"),
    ] {
        assert_invalid_input(
            store
                .end_attempt(
                    lease,
                    end_by(complete(), backend.as_deref(), model.as_deref()),
                    at(2),
                )
                .await,
            field,
        );
    }
    assert_eq!(
        store.get_task(task.id).await.unwrap().status,
        TaskStatus::Assigned,
        "a refused end changes nothing"
    );
    store
        .end_attempt(
            lease,
            end_by(complete(), Some(&longest_backend), Some(&longest_model)),
            at(3),
        )
        .await
        .unwrap();
    store
        .end_attempt(lease, end_by(complete(), Some("command"), None), at(4))
        .await
        .unwrap();
    let kept = &store.list_attempts(task.id).await.unwrap()[0];
    assert_eq!(
        (kept.backend.as_deref(), kept.model.as_deref()),
        (Some(longest_backend.as_str()), Some(longest_model.as_str())),
        "kept at their limits, once"
    );

    let unnamed = new_task(&store, "unnamed", at(10)).await;
    let (_, lease) = assign(&store, &unnamed, agent.id, at(11)).await;
    store
        .end_attempt(lease, end_by(fail("crashed"), None, None), at(12))
        .await
        .unwrap();
    let kept = &store.list_attempts(unnamed.id).await.unwrap()[0];
    assert_eq!((&kept.backend, &kept.model), (&None, &None));

    let late = new_task(&store, "late", at(20)).await;
    let (_, lease) = assign(&store, &late, agent.id, at(21)).await;
    let after_the_lease = at(21).add(LEASE);
    let evidence = |model: &str| LateEvidence {
        commit_sha: None,
        usage: spent(100, 0.5),
        backend: Some("openai".into()),
        model: Some(model.into()),
        content: "late".into(),
        metadata: serde_json::json!({}),
    };
    assert_invalid_input(
        store
            .keep_late_evidence(lease, evidence(&" ".repeat(3)), after_the_lease)
            .await,
        "model",
    );
    let kept = store
        .keep_late_evidence(lease, evidence("qwen2.5-coder"), after_the_lease)
        .await
        .unwrap();
    assert_eq!(
        (kept.backend.as_deref(), kept.model.as_deref()),
        (Some("openai"), Some("qwen2.5-coder"))
    );
}

/// The attempts started in a window are summed in all, per UTC day, per runner session,
/// per backend and model and per task (the costliest first, as many as asked): attempts
/// without usage count with none, attempts outside the window and those of a deleted
/// task do not count, and a window must be short and the right way round.
pub async fn usage_is_summed_per_day_runner_model_and_task(store: Arc<dyn Store>) {
    let first_day = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let second_day = NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
    let (since, until) = (at(0), at(2 * DAY));
    let empty = summary(&store, since, until, 10).await;
    assert_eq!(
        empty,
        UsageSummary::from_groups(
            &UsageQuery {
                since,
                until,
                top_tasks: 10
            },
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new()
        )
    );
    assert_eq!((empty.attempts, empty.usage), (0, Usage::default()));

    let first = Some(runner(&store, "build-01").await);
    let second = Some(runner(&store, "build-02").await);
    let sonnet: RanBy = (Some("claude-code"), Some("claude-sonnet-4-5"));
    let opus: RanBy = (Some("anthropic"), Some("claude-opus-4-1"));

    // Two attempts at the schema: a failure on the first day, a completion on the second.
    let schema = new_task(&store, "schema", at(-DAY)).await;
    let schema_first = spent(1_000, 0.5);
    let window = (since, at(10));
    let ended = failed(schema_first);
    attempt(&store, &schema, first, window, ended, sonnet).await;
    retry(&store, schema.id, at(20)).await;
    let schema_second = spent(8_000, 2.0);
    let window = (at(DAY + 1_000), at(DAY + 2_000));
    let ended = completed(schema_second);
    attempt(&store, &schema, second, window, ended, opus).await;

    let login = new_task(&store, "login", at(-DAY)).await;
    let login_usage = spent(400, 0.25);
    let window = (at(2_000), at(3_000));
    let ended = completed(login_usage);
    attempt(&store, &login, first, window, ended, sonnet).await;

    // Attempts without usage: one that crashed without a runner, one still running.
    let docs = new_task(&store, "docs", at(-DAY)).await;
    let window = (at(DAY + 3_000), at(DAY + 4_000));
    attempt(&store, &docs, None, window, fail("crashed"), (None, None)).await;
    let running = new_task(&store, "running", at(-DAY)).await;
    start(&store, &running, second, at(DAY + 5_000)).await;

    // Outside the window: started just before it, and at its end.
    for (title, started) in [("before", at(-1)), ("after", until)] {
        let outside = new_task(&store, title, at(-DAY)).await;
        let window = (started, started.add(Duration::from_secs(1)));
        let costly = completed(spent(50_000, 64.0));
        attempt(&store, &outside, first, window, costly, opus).await;
    }

    // The costliest task, deleted below.
    let dropped = new_task(&store, "dropped", at(-DAY)).await;
    let window = (at(4_000), at(5_000));
    let costliest = failed(spent(20_000, 4.0));
    attempt(&store, &dropped, first, window, costliest, sonnet).await;
    let before_deletion = summary(&store, since, until, 1).await;
    assert_eq!(before_deletion.tasks[0].task_id, dropped.id);
    assert_eq!(before_deletion.attempts, 6);
    retry(&store, dropped.id, at(6_000)).await;
    store.delete_task(dropped.id, at(7_000)).await.unwrap();

    let zero = Usage::default();
    let found = summary(&store, since, until, MAX_USAGE_TASKS).await;
    assert_eq!((found.since, found.until), (since, until));
    assert_eq!(found.attempts, 5);
    assert_eq!(
        found.usage,
        sum(&[schema_first, schema_second, login_usage])
    );
    assert_eq!(
        found.days,
        [
            DayUsage {
                day: first_day,
                attempts: 2,
                usage: sum(&[schema_first, login_usage]),
            },
            DayUsage {
                day: second_day,
                attempts: 3,
                usage: schema_second,
            },
        ]
    );
    assert_eq!(
        found.runners,
        [
            RunnerUsage {
                runner_session_id: second,
                name: Some("build-02".into()),
                attempts: 2,
                usage: schema_second,
            },
            RunnerUsage {
                runner_session_id: first,
                name: Some("build-01".into()),
                attempts: 2,
                usage: sum(&[schema_first, login_usage]),
            },
            RunnerUsage {
                runner_session_id: None,
                name: None,
                attempts: 1,
                usage: zero,
            },
        ]
    );
    let model_usage = |(backend, model): RanBy, attempts, usage| ModelUsage {
        backend: backend.map(str::to_owned),
        model: model.map(str::to_owned),
        attempts,
        usage,
    };
    assert_eq!(
        found.models,
        [
            model_usage(opus, 1, schema_second),
            model_usage(sonnet, 2, sum(&[schema_first, login_usage])),
            model_usage((None, None), 2, zero),
        ]
    );
    let task_usage = |task: &Task, attempts, usage| TaskUsage {
        task_id: task.id,
        title: task.title.clone(),
        attempts,
        usage,
    };
    let mut unused = [&docs, &running];
    unused.sort_by_key(|task| task.id);
    let mut expected_tasks = vec![
        task_usage(&schema, 2, sum(&[schema_first, schema_second])),
        task_usage(&login, 1, login_usage),
    ];
    expected_tasks.extend(unused.iter().map(|task| task_usage(task, 1, zero)));
    assert_eq!(found.tasks, expected_tasks, "costliest first, then by id");
    let top = summary(&store, since, until, 1).await;
    assert_eq!(top.tasks, expected_tasks[..1]);
    assert_eq!(
        (top.attempts, top.days, top.runners, top.models),
        (found.attempts, found.days, found.runners, found.models),
        "only the task list is cut"
    );

    // A window of the second day alone; one starting at an attempt's start includes it.
    let second = summary(&store, at(DAY), until, 10).await;
    assert_eq!(second.attempts, 3);
    assert_eq!(second.days.len(), 1);
    let from_login = summary(&store, at(2_000), at(2_001), 10).await;
    assert_eq!(from_login.tasks, [task_usage(&login, 1, login_usage)]);

    let query = |since: Timestamp, until: Timestamp, top_tasks: u32| UsageQuery {
        since,
        until,
        top_tasks,
    };
    let longest = Duration::from_secs(MAX_USAGE_DAYS * 24 * 60 * 60);
    store
        .usage_summary(&query(since, since.add(longest), 1))
        .await
        .unwrap();
    for (refused, field) in [
        (query(since, since, 10), "since"),
        (query(until, since, 10), "since"),
        (
            query(since, since.add(longest).add(Duration::from_millis(1)), 10),
            "since",
        ),
        (query(since, until, 0), "topTasks"),
        (query(since, until, MAX_USAGE_TASKS + 1), "topTasks"),
    ] {
        assert_invalid_input(store.usage_summary(&refused).await, field);
    }
}
