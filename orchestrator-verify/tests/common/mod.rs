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

/// With this variable set to `1`, a missing tool fails the test instead of skipping it.
pub const REQUIRE_TOOLS_VAR: &str = "ORCHESTRATOR_REQUIRE_TOOLS";

/// Where the Node tools for the tests are (a `node_modules` folder).
pub const NODE_MODULES_VAR: &str = "ORCHESTRATOR_TEST_NODE_MODULES";

/// Whether every tool is required (CI).
fn tools_required() -> bool {
    std::env::var(REQUIRE_TOOLS_VAR).is_ok_and(|v| v == "1")
}

/// Says why `test` cannot run here: a printed skip, or a failure where tools are required.
fn skip(test: &str, reason: &str) {
    assert!(
        !tools_required(),
        "{test}: {reason}, and {REQUIRE_TOOLS_VAR}=1 requires it"
    );
    eprintln!("skipping {test}: {reason}");
}

/// Whether `program` is on `PATH`; when it is not, the caller is skipped (see [`skip`]).
pub fn on_path(program: &str, test: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    if !found {
        skip(test, &format!("`{program}` is not on PATH"));
    }
    found
}

/// Links the test Node tools into `root` as its `node_modules`; `false` (after a skip)
/// when they are not configured.
pub fn link_node_modules(root: &Path, test: &str) -> bool {
    let Some(modules) = std::env::var_os(NODE_MODULES_VAR) else {
        skip(
            test,
            &format!(
                "{NODE_MODULES_VAR} does not name a node_modules folder with typescript, eslint, jest and vitest"
            ),
        );
        return false;
    };
    std::os::unix::fs::symlink(modules, root.join("node_modules")).unwrap();
    true
}
