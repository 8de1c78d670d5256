//! The tools a model-driven agent works with, confined to the task's worktree: every path
//! is resolved (symlinks included) and must stay inside it; commands run from an argument
//! vector with a time limit, an output cap and a scrubbed environment.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use orchestrator_core::backend::{AgentOutput, AgentOutputSink};
use orchestrator_core::model::LogType;
use orchestrator_verify::command::{CommandError, CommandSpec, run};
use regex::Regex;
use serde_json::{Value, json};

/// Bytes of a file `read_file` returns at most.
const READ_CAP: usize = 256 * 1024;
/// Entries `list_files` returns at most.
const LIST_CAP: usize = 1_000;
/// Matches `search_code` returns at most.
const MATCH_CAP: usize = 200;
/// Bytes of each output stream `run_command` keeps.
const COMMAND_OUTPUT_CAP: usize = 64 * 1024;

/// The tools' JSON schemas, in the Messages API's `tools` shape.
pub fn definitions() -> Value {
    json!([
        {"name": "read_file", "description": "Read a text file of the repository.",
         "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
        {"name": "write_file", "description": "Create or replace a file with the given content.",
         "input_schema": {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}, "required": ["path", "content"]}},
        {"name": "edit_file", "description": "Replace the one occurrence of old_string in a file with new_string.",
         "input_schema": {"type": "object", "properties": {"path": {"type": "string"}, "old_string": {"type": "string"}, "new_string": {"type": "string"}}, "required": ["path", "old_string", "new_string"]}},
        {"name": "list_files", "description": "List files below a directory (git-ignored files left out).",
         "input_schema": {"type": "object", "properties": {"path": {"type": "string"}, "depth": {"type": "integer", "minimum": 1, "maximum": 8}}}},
        {"name": "search_code", "description": "Search the repository's files for a regular expression.",
         "input_schema": {"type": "object", "properties": {"pattern": {"type": "string"}, "path": {"type": "string"}}, "required": ["pattern"]}},
        {"name": "run_command", "description": "Run a program with arguments (no shell) in the repository, e.g. [\"cargo\", \"test\"].",
         "input_schema": {"type": "object", "properties": {"argv": {"type": "array", "items": {"type": "string"}}, "timeout_secs": {"type": "integer", "minimum": 1, "maximum": 600}}, "required": ["argv"]}}
    ])
}

/// The same tools in the Chat Completions `tools` shape (OpenAI-compatible servers).
pub fn function_definitions() -> Value {
    let tools = definitions();
    Value::Array(
        tools
            .as_array()
            .into_iter()
            .flatten()
            .map(|tool| {
                json!({"type": "function", "function": {
                    "name": tool["name"],
                    "description": tool["description"],
                    "parameters": tool["input_schema"],
                }})
            })
            .collect(),
    )
}

/// A tool call for the log: its name and the path or command it acts on.
pub fn describe_call(name: &str, input: &Value) -> String {
    let detail = input["path"].as_str().map(str::to_owned).or_else(|| {
        input["argv"].as_array().map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
    });
    detail.map_or_else(|| name.to_owned(), |d| format!("{name} {d}"))
}

/// A worktree the tools act in.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// Tools for the worktree at `root`.
    pub fn new(root: &Path) -> std::io::Result<Self> {
        Ok(Self {
            root: root.canonicalize()?,
        })
    }

    /// `path` (relative to the worktree, or absolute inside it) as a real path inside the
    /// worktree; an error says why it is refused. Symbolic links are followed and must
    /// land inside too; one that points nowhere is refused (writing through it would
    /// create its target, wherever that is), and so is git's own `.git`.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, String> {
        let requested = Path::new(path);
        let joined = if requested.is_absolute() {
            requested.to_owned()
        } else {
            self.root.join(requested)
        };
        // Lexically first, so `..` cannot climb out through a part that does not exist.
        let mut normal = PathBuf::new();
        for component in joined.components() {
            match component {
                Component::ParentDir => {
                    if !normal.pop() {
                        return Err(format!("{path} leaves the repository"));
                    }
                }
                Component::CurDir => {}
                other => normal.push(other),
            }
        }
        // Then the longest existing part (a link counts, even one to nowhere) with its
        // symlinks resolved.
        let mut existing = normal.clone();
        let mut rest = Vec::new();
        while std::fs::symlink_metadata(&existing).is_err() {
            let Some(name) = existing.file_name().map(ToOwned::to_owned) else {
                break;
            };
            rest.push(name);
            existing.pop();
        }
        let mut real = existing.canonicalize().map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                format!("{path} goes through a symbolic link to nothing; it is not followed")
            } else {
                format!("{path} cannot be resolved: {err}")
            }
        })?;
        for name in rest.into_iter().rev() {
            real.push(name);
        }
        if !real.starts_with(&self.root) {
            return Err(format!("{path} is outside the repository; work inside it"));
        }
        if real
            .strip_prefix(&self.root)
            .is_ok_and(|inner| inner.starts_with(".git"))
        {
            return Err(format!(
                "{path} is git's own record; the runner commits the change itself"
            ));
        }
        Ok(real)
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    /// Runs the tool `name` with `input`; the text for the model, and whether it failed.
    pub async fn call(&self, name: &str, input: &Value) -> (String, bool) {
        let text = |key: &str| input[key].as_str().ok_or(format!("`{key}` is required"));
        let outcome = match name {
            "read_file" => match text("path") {
                Ok(path) => self.read_file(path),
                Err(err) => Err(err),
            },
            "write_file" => match (text("path"), text("content")) {
                (Ok(path), Ok(content)) => self.write_file(path, content),
                (Err(err), _) | (_, Err(err)) => Err(err),
            },
            "edit_file" => match (text("path"), text("old_string"), text("new_string")) {
                (Ok(path), Ok(old), Ok(new)) => self.edit_file(path, old, new),
                (Err(err), _, _) | (_, Err(err), _) | (_, _, Err(err)) => Err(err),
            },
            "list_files" => self.list_files(
                input["path"].as_str().unwrap_or("."),
                input["depth"].as_u64().unwrap_or(3).clamp(1, 8) as usize,
            ),
            "search_code" => match text("pattern") {
                Ok(pattern) => self.search_code(pattern, input["path"].as_str().unwrap_or(".")),
                Err(err) => Err(err),
            },
            "run_command" => {
                let argv: Vec<String> = input["argv"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let timeout = input["timeout_secs"].as_u64().unwrap_or(120).clamp(1, 600);
                self.run_command(&argv, Duration::from_secs(timeout)).await
            }
            other => Err(format!("there is no tool called {other}")),
        };
        match outcome {
            Ok(text) => (text, false),
            Err(err) => (err, true),
        }
    }

    /// [`Workspace::call`], with the result logged as a TOOL_RESULT (or ERROR) entry.
    pub async fn call_logged(
        &self,
        name: &str,
        input: &Value,
        call_id: &Value,
        sink: &dyn AgentOutputSink,
    ) -> (String, bool) {
        let (text, failed) = self.call(name, input).await;
        sink.emit(AgentOutput {
            log_type: if failed {
                LogType::Error
            } else {
                LogType::ToolResult
            },
            content: text.chars().take(4_000).collect(),
            metadata: Some(json!({ "toolUseId": call_id })),
        });
        (text, failed)
    }

    fn read_file(&self, path: &str) -> Result<String, String> {
        let real = self.resolve(path)?;
        let bytes = std::fs::read(&real).map_err(|err| format!("{path}: {err}"))?;
        let cut = bytes.len() > READ_CAP;
        let mut text = String::from_utf8_lossy(&bytes[..bytes.len().min(READ_CAP)]).into_owned();
        if cut {
            text.push_str(&format!("\n[… cut at {READ_CAP} bytes]"));
        }
        Ok(text)
    }

    fn write_file(&self, path: &str, content: &str) -> Result<String, String> {
        let real = self.resolve(path)?;
        if let Some(parent) = real.parent() {
            std::fs::create_dir_all(parent).map_err(|err| format!("{path}: {err}"))?;
        }
        std::fs::write(&real, content).map_err(|err| format!("{path}: {err}"))?;
        Ok(format!(
            "wrote {} ({} bytes)",
            self.relative(&real),
            content.len()
        ))
    }

    fn edit_file(&self, path: &str, old: &str, new: &str) -> Result<String, String> {
        let real = self.resolve(path)?;
        let text = std::fs::read_to_string(&real).map_err(|err| format!("{path}: {err}"))?;
        match text.matches(old).count() {
            1 => {
                std::fs::write(&real, text.replacen(old, new, 1))
                    .map_err(|err| format!("{path}: {err}"))?;
                Ok(format!("edited {}", self.relative(&real)))
            }
            0 => Err(format!("old_string does not occur in {path}")),
            n => Err(format!(
                "old_string occurs {n} times in {path}; give more context"
            )),
        }
    }

    /// Files below `path`, skipping `.git`, what git ignores, directories reached through
    /// symbolic links, and links to files outside the worktree.
    fn files_below(&self, path: &str, depth: usize) -> Result<Vec<PathBuf>, String> {
        let start = self.resolve(path)?;
        let repo = git2::Repository::open(&self.root).ok();
        let mut found = Vec::new();
        let mut pending = vec![(start, 0usize)];
        while let Some((dir, level)) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut entries: Vec<(PathBuf, std::fs::FileType)> = entries
                .filter_map(|e| e.ok().and_then(|e| Some((e.path(), e.file_type().ok()?))))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (entry, kind) in entries {
                if entry.file_name().is_some_and(|n| n == ".git") {
                    continue;
                }
                let relative = entry.strip_prefix(&self.root).unwrap_or(&entry);
                if repo
                    .as_ref()
                    .is_some_and(|r| r.is_path_ignored(relative).unwrap_or(false))
                {
                    continue;
                }
                if kind.is_symlink() {
                    // A link is listed when it leads to a file of the worktree; links to
                    // directories are not walked (they may lead out, or round in a loop).
                    let target = entry.canonicalize().ok();
                    if target.is_some_and(|t| t.starts_with(&self.root) && t.is_file()) {
                        found.push(entry);
                    }
                } else if kind.is_dir() {
                    if level + 1 < depth {
                        pending.push((entry, level + 1));
                    }
                } else {
                    found.push(entry);
                }
                if found.len() >= LIST_CAP {
                    return Ok(found);
                }
            }
        }
        found.sort();
        Ok(found)
    }

    fn list_files(&self, path: &str, depth: usize) -> Result<String, String> {
        let files = self.files_below(path, depth)?;
        if files.is_empty() {
            return Ok("no files".into());
        }
        Ok(files
            .iter()
            .map(|f| self.relative(f))
            .collect::<Vec<_>>()
            .join("\n"))
    }

    fn search_code(&self, pattern: &str, path: &str) -> Result<String, String> {
        let regex = Regex::new(pattern).map_err(|err| format!("bad pattern: {err}"))?;
        let mut matches = Vec::new();
        for file in self.files_below(path, 16)? {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for (number, line) in text.lines().enumerate() {
                if regex.is_match(line) {
                    matches.push(format!(
                        "{}:{}: {}",
                        self.relative(&file),
                        number + 1,
                        line.trim()
                    ));
                    if matches.len() >= MATCH_CAP {
                        return Ok(matches.join("\n"));
                    }
                }
            }
        }
        Ok(if matches.is_empty() {
            "no matches".into()
        } else {
            matches.join("\n")
        })
    }

    async fn run_command(&self, argv: &[String], timeout: Duration) -> Result<String, String> {
        let Some((program, args)) = argv.split_first() else {
            return Err("argv is empty: give the program and its arguments".into());
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let spec = CommandSpec {
            time_limit: timeout,
            output_cap: COMMAND_OUTPUT_CAP,
            ..CommandSpec::new(program, &args, self.root.clone())
        };
        match run(&spec).await {
            Ok(output) if output.timed_out => Err(format!(
                "{} ran out of its {} s",
                spec.display(),
                timeout.as_secs()
            )),
            Ok(output) => {
                let status = output
                    .exit_code
                    .map_or_else(|| "killed".to_owned(), |c| format!("exit {c}"));
                let text = format!("{status}\n{}{}", output.stdout, output.stderr);
                if output.succeeded() {
                    Ok(text)
                } else {
                    Err(text)
                }
            }
            Err(CommandError::NotInstalled(tool)) => Err(format!("{tool} is not installed")),
            Err(err) => Err(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_worktree() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("repo");
        let sibling = parent.path().join("repo-other");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(&sibling).unwrap();
        std::os::unix::fs::symlink(&sibling, root.join("escape")).unwrap();
        std::os::unix::fs::symlink(sibling.join("made-by-the-agent"), root.join("dangling"))
            .unwrap();
        let workspace = Workspace::new(&root).unwrap();
        let real_root = root.canonicalize().unwrap();

        assert_eq!(
            workspace.resolve("src/new/a.rs").unwrap(),
            real_root.join("src/new/a.rs")
        );
        assert_eq!(
            workspace.resolve("./src/../src/b.rs").unwrap(),
            real_root.join("src/b.rs")
        );
        let inside = real_root.join("src/c.rs");
        assert_eq!(
            workspace.resolve(&inside.to_string_lossy()).unwrap(),
            inside
        );
        for outside in [
            "../repo-other/x".to_owned(),
            sibling.join("x").to_string_lossy().into_owned(),
            "escape/x".to_owned(),
            "src/../../x".to_owned(),
            "/etc/passwd".to_owned(),
            "dangling".to_owned(),
            "dangling/below".to_owned(),
            ".git".to_owned(),
            ".git/config".to_owned(),
            "src/../.git/HEAD".to_owned(),
        ] {
            assert!(
                workspace.resolve(&outside).is_err(),
                "{outside} was let through"
            );
        }
    }

    /// Links to the outside are not a way out for any tool: a write through a link to
    /// nothing creates nothing, and listing and searching do not walk linked directories
    /// nor read linked files outside.
    #[tokio::test]
    async fn links_lead_no_tool_outside_the_worktree() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("repo");
        let outside = parent.path().join("outside");
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), "TOKEN=outside-secret\n").unwrap();
        std::fs::write(root.join("src/lib.rs"), "// TOKEN=inside\n").unwrap();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        };
        link(&outside, "linked-dir");
        link(&outside.join("secret.txt"), "linked-file");
        link(&outside.join("planted.txt"), "dangling");
        link(&root.join("src/lib.rs"), "inside-link");
        let workspace = Workspace::new(&root).unwrap();

        let (said, failed) = workspace
            .call("write_file", &json!({"path": "dangling", "content": "x"}))
            .await;
        assert!(failed, "{said}");
        assert!(
            !outside.join("planted.txt").exists(),
            "nothing was made outside"
        );
        for (tool, input) in [
            ("read_file", json!({"path": "linked-file"})),
            ("read_file", json!({"path": "linked-dir/secret.txt"})),
            (
                "edit_file",
                json!({"path": "linked-file", "old_string": "T", "new_string": "U"}),
            ),
            (
                "write_file",
                json!({"path": ".git", "content": "gitdir: /elsewhere"}),
            ),
        ] {
            let (said, failed) = workspace.call(tool, &input).await;
            assert!(failed, "{tool} {input}: {said}");
        }
        let (listed, _) = workspace.call("list_files", &json!({})).await;
        assert!(!listed.contains("secret"), "{listed}");
        assert!(!listed.contains("linked-file"), "{listed}");
        assert!(listed.contains("inside-link"), "{listed}");
        let (found, _) = workspace
            .call("search_code", &json!({"pattern": "TOKEN"}))
            .await;
        assert!(!found.contains("outside-secret"), "{found}");
        assert!(found.contains("TOKEN=inside"), "{found}");
    }

    #[tokio::test]
    async fn tools_read_write_edit_list_search_and_run() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        drop(repo);
        std::fs::write(dir.path().join(".gitignore"), "target/\n").unwrap();
        std::fs::create_dir_all(dir.path().join("target")).unwrap();
        std::fs::write(dir.path().join("target/junk.txt"), "junk").unwrap();
        let workspace = Workspace::new(dir.path()).unwrap();

        let (said, failed) = workspace
            .call(
                "write_file",
                &json!({"path": "src/lib.rs", "content": "fn a() {}\n"}),
            )
            .await;
        assert!(!failed, "{said}");
        let (_, failed) = workspace
            .call(
                "edit_file",
                &json!({"path": "src/lib.rs", "old_string": "a()", "new_string": "b()"}),
            )
            .await;
        assert!(!failed);
        assert_eq!(
            workspace
                .call("read_file", &json!({"path": "src/lib.rs"}))
                .await
                .0,
            "fn b() {}\n"
        );
        let (listing, _) = workspace.call("list_files", &json!({})).await;
        assert!(
            listing.contains("src/lib.rs") && !listing.contains("junk"),
            "{listing}"
        );
        let (found, _) = workspace
            .call("search_code", &json!({"pattern": "fn b"}))
            .await;
        assert_eq!(found, "src/lib.rs:1: fn b() {}");
        let (ran, failed) = workspace
            .call("run_command", &json!({"argv": ["ls", "src"]}))
            .await;
        assert!(!failed && ran.contains("lib.rs"), "{ran}");
        let (refused, failed) = workspace
            .call(
                "write_file",
                &json!({"path": "../outside.txt", "content": "x"}),
            )
            .await;
        assert!(
            failed && refused.contains("outside the repository"),
            "{refused}"
        );
        let (_, failed) = workspace
            .call(
                "edit_file",
                &json!({"path": "src/lib.rs", "old_string": "zzz", "new_string": "y"}),
            )
            .await;
        assert!(failed);
    }
}
