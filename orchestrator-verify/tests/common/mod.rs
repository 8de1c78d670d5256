//! Fixture repositories for the verification tests.

#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::path::Path;

use git2::{IndexAddOption, Repository, Signature};

/// Writes `content` to `path` under `root`, creating directories.
pub fn write(root: &Path, path: &str, content: &str) {
    let full = root.join(path);
    fs::create_dir_all(full.parent().unwrap()).unwrap();
    fs::write(full, content).unwrap();
}

/// Commits every file of the working tree as the first commit; returns its id.
pub fn commit_all(repo: &Repository) -> String {
    let mut index = repo.index().unwrap();
    index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let signature = Signature::now("test", "test@example.com").unwrap();
    repo.commit(Some("HEAD"), &signature, &signature, "base", &tree, &[])
        .unwrap()
        .to_string()
}
