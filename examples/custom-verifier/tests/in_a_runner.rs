//! The example plugin inside a real runner: a command-line agent works on two tasks of a
//! fixture repository, in process on an embedded SQLite store. The change that adds a
//! TODO marker fails its attempt; the clean one completes.

use std::path::Path;
use std::sync::Arc;

use orchestrator_core::model::{LogQuery, NewTask, TaskStatus};
use orchestrator_core::store::StoreExt;
use orchestrator_core::{Clock, Store, SystemClock};
use orchestrator_runner::backend::CommandAgent;
use orchestrator_store::SqliteStore;

/// A repository with one commit.
fn fixture_repository(dir: &Path) {
    let repo = git2::Repository::init(dir).unwrap();
    std::fs::write(dir.join("app.py"), "print('hello')\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("app.py")).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let me = git2::Signature::now("test", "test@example.com").unwrap();
    repo.commit(Some("HEAD"), &me, &me, "first", &tree, &[])
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_todo_marker_fails_the_attempt() {
    let repository = tempfile::tempdir().unwrap();
    fixture_repository(repository.path());
    let state = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(state.path().join("orchestrator.db"))
            .await
            .unwrap(),
    );
    let queue = |title: &str, file: &str| {
        let mut task = NewTask::new(title, format!("Write {file}"));
        task.files_hint = vec![file.to_owned()];
        task
    };
    let now = SystemClock.now();
    let marked = store
        .create_task(queue("Leave a note", "notes.py"), now)
        .await
        .unwrap()
        .value;
    let clean = store
        .create_task(queue("Add a constant", "constants.py"), now)
        .await
        .unwrap()
        .value;
    // The agent reads its prompt (the task) and writes the file the task names: a TODO
    // for the note, a plain assignment otherwise.
    let script = r#"case "$0" in
        *notes.py*) printf '# TODO: decide the greeting\n' > notes.py ;;
        *) printf 'ANSWER = 42\n' > constants.py ;;
    esac"#;
    let agent = CommandAgent::new(vec![
        "sh".into(),
        "-c".into(),
        script.into(),
        "{prompt}".into(),
    ])
    .unwrap();

    custom_verifier::run_once(
        store.clone(),
        repository.path(),
        &state.path().join("worktrees"),
        Arc::new(agent),
    )
    .await
    .unwrap();

    let clean = store.get_task(clean.id).await.unwrap();
    assert_eq!(clean.status, TaskStatus::Completed, "{clean:?}");
    let marked = store.get_task(marked.id).await.unwrap();
    assert_ne!(marked.status, TaskStatus::Completed, "{marked:?}");
    let results = store.list_verification_results(marked.id, 1).await.unwrap();
    let result = &results[0];
    assert!(!result.passed);
    let failure = &result.failures[0];
    assert_eq!(
        (failure.file.as_deref(), failure.line),
        (Some("notes.py"), Some(1))
    );
    assert!(
        failure.message.starts_with("adds a TODO marker"),
        "{failure:?}"
    );
    let logs = store
        .list_logs(&LogQuery::for_task(marked.id, 100))
        .await
        .unwrap();
    assert!(
        logs.logs
            .iter()
            .any(|log| log.content == "verification: no new TODO FAILED"),
        "the runner ran the plugin: {:?}",
        logs.logs.iter().map(|l| &l.content).collect::<Vec<_>>()
    );
}
