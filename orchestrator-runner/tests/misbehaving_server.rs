//! A server that misbehaves or refuses: one handing out more tasks than the runner asked
//! for (the runner works as many as it has free slots, says what it left, and carries on;
//! it never panics), and one refusing a completion (the runner never says the task is
//! done).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::coordination::ControlSignal;
use orchestrator_core::ids::TaskId;
use orchestrator_core::model::{NewTask, RunnerIdentity, TaskStatus};
use orchestrator_core::store::StoreExt;
use orchestrator_core::{Clock, InMemoryStore, Store, SystemClock};
use orchestrator_runner::backend::CommandAgent;
use orchestrator_runner::{
    AttemptCompletion, AttemptRef, ClaimedTask, ClientError, LocalClient, LockAnswer, LogEntry,
    OrchestratorClient, Refusal, Runner, RunnerConfig, RunnerEvent, Worktrees,
};

/// The in-process client, claiming `extra` tasks more than asked, refusing every
/// completion as invalid when `refuse_completions` is set, and never answering a log
/// batch when `stall_logs` is.
#[derive(Debug, Default)]
struct Misbehaving {
    client: Option<LocalClient>,
    extra: usize,
    refuse_completions: bool,
    stall_logs: bool,
}

impl Misbehaving {
    fn client(&self) -> &LocalClient {
        self.client.as_ref().expect("a client")
    }
}

#[async_trait]
impl OrchestratorClient for Misbehaving {
    async fn claim(
        &self,
        max: usize,
        wait: Duration,
        lease_ttl: Duration,
        runner: &RunnerIdentity,
    ) -> Result<Vec<ClaimedTask>, ClientError> {
        self.client()
            .claim(max + self.extra, wait, lease_ttl, runner)
            .await
    }

    async fn heartbeat(
        &self,
        attempt: AttemptRef,
        lease_ttl: Duration,
        status: Option<TaskStatus>,
    ) -> Result<ControlSignal, ClientError> {
        self.client().heartbeat(attempt, lease_ttl, status).await
    }

    async fn send_logs(&self, attempt: AttemptRef, logs: &[LogEntry]) -> Result<(), ClientError> {
        if self.stall_logs {
            std::future::pending::<()>().await;
        }
        self.client().send_logs(attempt, logs).await
    }

    async fn acquire_locks(
        &self,
        attempt: AttemptRef,
        paths: &[String],
    ) -> Result<LockAnswer, ClientError> {
        self.client().acquire_locks(attempt, paths).await
    }

    async fn complete(
        &self,
        attempt: AttemptRef,
        completion: &AttemptCompletion,
    ) -> Result<(), ClientError> {
        if self.refuse_completions {
            return Err(ClientError::Refused {
                refusal: Refusal::Invalid,
                code: "VALIDATION_ERROR".into(),
                message: "verification.failures: too many".into(),
                retry_after: None,
            });
        }
        self.client().complete(attempt, completion).await
    }
}

fn repository(dir: &Path) {
    let repo = git2::Repository::init(dir).unwrap();
    std::fs::write(dir.join("README.md"), "# app\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("README.md")).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let me = git2::Signature::now("test", "test@example.com").unwrap();
    repo.commit(Some("HEAD"), &me, &me, "first", &tree, &[])
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_tasks_than_free_slots_are_left_to_their_leases_without_a_panic() {
    let repo = tempfile::tempdir().unwrap();
    repository(repo.path());
    let worktrees = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    let mut ids = Vec::new();
    for file in ["a.py", "b.py"] {
        let mut task = NewTask::new(format!("write {file}"), "d");
        task.files_hint = vec![file.to_owned()];
        ids.push(
            store
                .create_task(task, SystemClock.now())
                .await
                .unwrap()
                .value
                .id,
        );
    }
    let client = LocalClient::register(store.clone(), Arc::new(SystemClock), "greedy", repo.path())
        .await
        .unwrap();
    let agent = CommandAgent::new(vec![
        "sh".into(),
        "-c".into(),
        r#"case "$0" in *a.py*) printf 'x = 1\n' > a.py ;; *) printf 'y = 1\n' > b.py ;; esac"#
            .into(),
        "{prompt}".into(),
    ])
    .unwrap();
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let runner = Runner::builder(
        Arc::new(Misbehaving {
            client: Some(client),
            extra: 1,
            ..Misbehaving::default()
        }),
        Arc::new(agent),
        Worktrees::new(repo.path(), worktrees.path()),
    )
    .config(RunnerConfig {
        parallel: 1,
        once: true,
        ..RunnerConfig::default()
    })
    .events(events)
    .build();
    runner.run().await.expect("the runner carries on");

    let mut warnings = Vec::new();
    while let Ok(event) = received.try_recv() {
        if let RunnerEvent::Warning { detail } = event {
            warnings.push(detail);
        }
    }
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("beyond the 1 free slot"),
        "{warnings:?}"
    );
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(store.get_task(*id).await.unwrap().status);
    }
    assert!(statuses.contains(&TaskStatus::Completed), "{statuses:?}");
    assert!(
        statuses.contains(&TaskStatus::Assigned),
        "the other waits for its lease: {statuses:?}"
    );
}

/// One task that writes `a.py`, run once by a runner through `server` (given the
/// in-process client); the store, the task, and every event the runner emitted.
async fn run_one_task(
    server: impl FnOnce(LocalClient) -> Misbehaving,
    config: RunnerConfig,
) -> (Arc<dyn Store>, TaskId, Vec<RunnerEvent>) {
    let repo = tempfile::tempdir().unwrap();
    repository(repo.path());
    let worktrees = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(InMemoryStore::new());
    let task = store
        .create_task(NewTask::new("write a.py", "d"), SystemClock.now())
        .await
        .unwrap()
        .value;
    let client = LocalClient::register(store.clone(), Arc::new(SystemClock), "odd", repo.path())
        .await
        .unwrap();
    let agent = CommandAgent::new(vec![
        "sh".into(),
        "-c".into(),
        "printf 'x = 1\\n' > a.py".into(),
        "{prompt}".into(),
    ])
    .unwrap();
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let runner = Runner::builder(
        Arc::new(server(client)),
        Arc::new(agent),
        Worktrees::new(repo.path(), worktrees.path()),
    )
    .config(RunnerConfig {
        once: true,
        ..config
    })
    .events(events)
    .build();
    tokio::time::timeout(Duration::from_secs(30), runner.run())
        .await
        .expect("the runner ends")
        .expect("the runner carries on");
    let mut emitted = Vec::new();
    while let Ok(event) = received.try_recv() {
        emitted.push(event);
    }
    (store, task.id, emitted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_completion_is_never_reported_done() {
    let (_, task, events) = run_one_task(
        |client| Misbehaving {
            client: Some(client),
            refuse_completions: true,
            ..Misbehaving::default()
        },
        RunnerConfig::default(),
    )
    .await;
    let ends: Vec<&RunnerEvent> = events
        .iter()
        .filter(|event| {
            matches!(
                event,
                RunnerEvent::Finished { .. } | RunnerEvent::NotAccepted { .. }
            )
        })
        .collect();
    assert_eq!(ends.len(), 1, "{ends:?}");
    let RunnerEvent::NotAccepted {
        task: ended,
        commit: Some(commit),
        detail,
    } = ends[0]
    else {
        panic!("a refused completion is not done: {ends:?}");
    };
    assert_eq!(*ended, task);
    assert!(detail.contains("refused the completion"), "{detail}");
    assert!(
        detail.contains(commit.as_str()),
        "the commit is named: {detail}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_be_sent_never_holds_the_completion_back() {
    let (store, task, events) = run_one_task(
        |client| Misbehaving {
            client: Some(client),
            stall_logs: true,
            ..Misbehaving::default()
        },
        RunnerConfig {
            log_flush: Duration::from_millis(50),
            ..RunnerConfig::default()
        },
    )
    .await;
    assert_eq!(
        store.get_task(task).await.unwrap().status,
        TaskStatus::Completed
    );
    assert!(
        events.iter().any(|event| matches!(
            event,
            RunnerEvent::Warning { detail } if detail.contains("the completion goes first")
        )),
        "{events:?}"
    );
}
