//! `POST /api/verify` with a `workingDir`: the project's checks run in a server
//! directory, only under the configured verify roots (symlinks resolved), and the result
//! is recorded like a runner's.

mod common;

use std::fs;
use std::path::Path;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use common::{admin, assert_error, backing, build, claimed_task, send};
use orchestrator_core::Clock;
use orchestrator_core::SystemClock;
use orchestrator_core::change::TaskAction;
use serde_json::json;

/// A git repository whose base commit has a valid Python file that the working tree breaks.
fn broken_repository(root: &Path) {
    let repo = git2::Repository::init(root).unwrap();
    fs::create_dir_all(root.join("app")).unwrap();
    fs::write(root.join("app/main.py"), "def main():\n    return 1\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("app/main.py")).unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = git2::Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("HEAD"), &signature, &signature, "base", &tree, &[])
        .unwrap();
    fs::write(root.join("app/main.py"), "def main(:\n    return 1\n").unwrap();
}

#[actix_web::test]
async fn checks_run_only_under_the_verify_roots() {
    let backing = backing().await;
    let roots = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let project = roots.path().join("project");
    fs::create_dir_all(&project).unwrap();
    broken_repository(&project);
    std::os::unix::fs::symlink(elsewhere.path(), roots.path().join("escape")).unwrap();

    let claim = claimed_task(&backing.store, "fix main", &["app/"]).await;
    let task = claim.task.id;
    backing
        .store
        .apply_task_action(
            task,
            TaskAction::Start,
            Some(claim.lease),
            SystemClock.now(),
        )
        .await
        .unwrap();

    // Off unless the server was given roots.
    let (off, _) = build(&backing, |state| state).await;
    let (status, body) = send(
        &off,
        admin(TestRequest::post().uri("/api/verify"))
            .set_json(json!({ "taskId": task, "workingDir": project })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        assert_error(&body, "FORBIDDEN").contains("--verify-root"),
        "{body}"
    );

    let root = roots.path().to_owned();
    let (app, _) = build(&backing, |state| state.with_verify_roots(&[root]).unwrap()).await;
    let refused = [
        (elsewhere.path().to_owned(), StatusCode::FORBIDDEN),
        (roots.path().join("escape"), StatusCode::FORBIDDEN),
        (
            roots.path().join("project/../escape"),
            StatusCode::FORBIDDEN,
        ),
        (roots.path().join("missing"), StatusCode::BAD_REQUEST),
        (Path::new("project").to_owned(), StatusCode::BAD_REQUEST),
    ];
    for (dir, expected) in refused {
        let (status, body) = send(
            &app,
            admin(TestRequest::post().uri("/api/verify"))
                .set_json(json!({ "taskId": task, "workingDir": dir })),
        )
        .await;
        assert_eq!(status, expected, "{dir:?}: {body}");
    }

    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/verify")).set_json(json!({
            "taskId": task,
            "workingDir": project,
            "verification": { "passed": true, "confidenceScore": 1.0 }
        })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/verify"))
            .set_json(json!({ "taskId": task, "workingDir": project })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = &body["data"];
    let result = &data["verificationResult"];
    assert_eq!(result["passed"], false, "{body}");
    assert_eq!(result["syntaxPassed"], false);
    assert_eq!(result["failures"][0]["type"], "syntax");
    assert_eq!(result["failures"][0]["file"], "app/main.py");
    assert_eq!(result["failures"][0]["line"], 1);
    assert_eq!(data["task"]["verificationStatus"], "FAILED");
    let stages: Vec<_> = data["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stage"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(stages, [("syntax", "FAILED"), ("diff policy", "PASSED")]);
    assert!(data["stages"][0]["durationMs"].is_u64(), "{body}");

    let (status, body) = send(
        &app,
        admin(TestRequest::post().uri("/api/verify")).set_json(json!({
            "taskId": task,
            "workingDir": project,
            "baseCommit": "no-such-branch"
        })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"]["field"], "baseCommit", "{body}");

    let (_, body) = send(
        &app,
        admin(TestRequest::get().uri(&format!("/api/verify/{task}"))),
    )
    .await;
    assert_eq!(body["data"]["summary"]["totalAttempts"], 1, "{body}");
}
