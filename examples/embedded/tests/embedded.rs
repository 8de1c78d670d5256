//! The embedded example end to end: three tasks on a real repository, completed in
//! process with commits on their branches.

use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tasks_complete_in_process() {
    let repository = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(repository.path()).unwrap();
    std::fs::write(repository.path().join("README.md"), "# app\n").unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("README.md")).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = git2::Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("HEAD"), &signature, &signature, "first", &tree, &[])
        .unwrap();
    let state = tempfile::tempdir().unwrap();

    let tasks = embedded::run(
        repository.path(),
        state.path(),
        &["Add login", "Add logout", "Add signup"],
    )
    .await
    .unwrap();
    assert_eq!(tasks.len(), 3);
    for task in tasks {
        assert_eq!(task.status.to_string(), "COMPLETED", "{task:?}");
        let branch = task.branch_name.clone().unwrap();
        let head = repo
            .find_branch(&branch, git2::BranchType::Local)
            .unwrap()
            .get()
            .peel_to_commit()
            .unwrap();
        assert_eq!(Some(head.id().to_string()), task.commit_sha);
        let changelog = head
            .tree()
            .unwrap()
            .get_path(Path::new("CHANGELOG.md"))
            .unwrap()
            .to_object(&repo)
            .unwrap()
            .peel_to_blob()
            .unwrap();
        let text = String::from_utf8(changelog.content().to_vec()).unwrap();
        assert!(text.contains(&format!("- {}", task.title)), "{text}");
    }
}
