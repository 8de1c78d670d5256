//! The admin commands: tasks, the queue, agents, runners and agents' logs, over the API
//! with the admin token. Wherever a short id is printed, a command takes any unique
//! beginning of an id (as git takes a commit's).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use orchestrator_core::model::IdPrefix;
use orchestrator_runner::HttpClient;
use reqwest::Method;
use serde_json::{Value, json};

/// Where the server is and the admin token.
#[derive(Debug, clap::Args)]
pub(crate) struct AdminArgs {
    /// The server (default: the one this machine is connected to, else
    /// http://127.0.0.1:3000).
    #[arg(long, env = "ORCHESTRATOR_URL", global = true)]
    server: Option<String>,
    /// The admin token the server printed at its first start.
    #[arg(
        long,
        env = "ORCHESTRATOR_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    admin_token: Option<String>,
    /// A PEM file with the certificate authority of an `https://` server whose
    /// certificate the public roots do not vouch for (default: the one given at connect).
    #[arg(long, global = true)]
    ca_cert: Option<PathBuf>,
}

impl AdminArgs {
    fn client(&self) -> anyhow::Result<HttpClient> {
        let Some(token) = self.admin_token.as_deref().filter(|t| !t.trim().is_empty()) else {
            bail!("the admin token is needed: pass --admin-token or set ORCHESTRATOR_ADMIN_TOKEN");
        };
        let connected = crate::config::path().and_then(|path| crate::config::load(&path));
        let connected = connected.as_ref().ok();
        let server = match &self.server {
            Some(server) => server.clone(),
            None => connected.map_or_else(|| "http://127.0.0.1:3000".to_owned(), |c| c.url.clone()),
        };
        let ca_cert = self
            .ca_cert
            .as_deref()
            .or_else(|| connected.and_then(|c| c.ca_cert.as_deref()));
        let certificates = crate::config::ca_certificates(ca_cert)?;
        Ok(HttpClient::trusting(&server, token.trim(), &certificates)?)
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum TaskCommand {
    /// Queue a task.
    Add {
        title: String,
        /// What to do (default: the title).
        #[arg(short = 'm', long = "description")]
        description: Option<String>,
        /// Files or directories (ending in /) the task works on; repeat or separate with commas.
        #[arg(short, long = "file", value_delimiter = ',')]
        files: Vec<String>,
        /// 0 (first) to 3 (last); the server's default is 2.
        #[arg(short, long, value_parser = clap::value_parser!(u8).range(0..=3))]
        priority: Option<u8>,
    },
    /// List tasks, newest first.
    List {
        /// Only tasks in this status: QUEUED, ASSIGNED, IN_PROGRESS, VERIFYING, COMPLETED,
        /// FAILED or CANCELLED.
        #[arg(long)]
        status: Option<String>,
        /// Tasks to show.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
        /// Newest tasks to skip (for the next page).
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Show one task, with its agent and its latest attempt.
    Show {
        /// The task's id, or a unique beginning of it.
        id: String,
    },
    /// Cancel a task (a running one is told to stop).
    Cancel {
        /// The task's id, or a unique beginning of it.
        id: String,
    },
    /// Put a failed task back in the queue.
    Retry {
        /// The task's id, or a unique beginning of it.
        id: String,
    },
    /// Let a queued task be claimed now: it no longer waits for its dependencies nor for
    /// its not-before time.
    Release {
        /// The task's id, or a unique beginning of it.
        id: String,
    },
}

/// The full id of the one `kind` ("task", "agent") listed at `route` whose id begins with
/// `given`; an error says when none does, or more than one.
async fn resolve_id(
    client: &HttpClient,
    route: &str,
    kind: &str,
    given: &str,
) -> anyhow::Result<String> {
    let given = given.trim();
    let prefix: IdPrefix = given
        .parse()
        .map_err(|_| anyhow::anyhow!("{given} is not a {kind} id, nor the beginning of one"))?;
    if given.len() == 36 {
        return Ok(prefix.to_string());
    }
    let page: Value = client
        .call(
            Method::GET,
            &format!("{route}?idPrefix={prefix}&limit=2"),
            None,
            TIMEOUT,
        )
        .await?;
    // Tasks come in a page, agents as a list.
    let items = page["tasks"].as_array().or(page.as_array());
    let ids: Vec<&str> = items
        .into_iter()
        .flatten()
        .filter_map(|item| item["id"].as_str())
        .collect();
    match ids.as_slice() {
        [] => bail!("no {kind} id begins with {given}"),
        [one] => Ok((*one).to_owned()),
        [first, second, ..] => bail!(
            "{given} is the beginning of more than one {kind} id ({first}, {second}, …): \
             give more of it"
        ),
    }
}

pub(crate) async fn task(admin: &AdminArgs, command: TaskCommand) -> anyhow::Result<()> {
    let client = admin.client()?;
    match command {
        TaskCommand::Add {
            title,
            description,
            files,
            priority,
        } => {
            let mut body = json!({
                "title": title,
                "description": description.unwrap_or_else(|| title.clone()),
                "filesHint": files,
            });
            if let Some(priority) = priority {
                body["priority"] = json!(priority);
            }
            let task: Value = client
                .call(Method::POST, "/api/tasks", Some(&body), TIMEOUT)
                .await
                .context("the task was not created")?;
            println!(
                "queued {} {}",
                task["id"].as_str().unwrap_or_default(),
                task["title"].as_str().unwrap_or_default()
            );
        }
        TaskCommand::List {
            status,
            limit,
            offset,
        } => {
            let mut path =
                format!("/api/tasks?sortBy=createdAt&sortOrder=desc&limit={limit}&offset={offset}");
            if let Some(status) = status {
                path.push_str(&format!("&status={}", status.trim().to_uppercase()));
            }
            let list = client.call(Method::GET, &path, None, TIMEOUT).await?;
            print_tasks(&list);
            let shown = list["tasks"].as_array().map_or(0, Vec::len) as u64;
            let total = list["pagination"]["totalCount"].as_u64().unwrap_or(0);
            if offset + shown < total {
                println!(
                    "({} to {} of {total}; --offset {} for more)",
                    offset + 1,
                    offset + shown,
                    offset + shown
                );
            }
        }
        TaskCommand::Show { id } => {
            let id = resolve_id(&client, "/api/tasks", "task", &id).await?;
            let task: Value = client
                .call(Method::GET, &format!("/api/tasks/{id}"), None, TIMEOUT)
                .await?;
            let task = if task.get("task").is_some() {
                &task["task"]
            } else {
                &task
            };
            for key in [
                "id",
                "title",
                "status",
                "priority",
                "attempt",
                "retryCount",
                "branchName",
                "commitSha",
                "verificationStatus",
                "lastError",
                "createdAt",
                "completedAt",
            ] {
                if !task[key].is_null() {
                    println!("{key:<19}{}", plain(&task[key]));
                }
            }
            println!("{:<19}{}", "filesHint", plain(&task["filesHint"]));
            if let Some(agent) = task["assignedAgent"].as_object() {
                println!(
                    "{:<19}{} ({}) {}",
                    "agent",
                    plain(&agent["name"]),
                    short(&agent["id"]),
                    plain(&agent["status"])
                );
            }
            if let Some(latest) = task["attempts"].as_array().and_then(|a| a.last()) {
                println!("{:<19}{}", "latest attempt", attempt_line(latest));
            }
            println!("\n{}", task["description"].as_str().unwrap_or_default());
        }
        TaskCommand::Cancel { id } => {
            let id = resolve_id(&client, "/api/tasks", "task", &id).await?;
            let task: Value = client
                .call(
                    Method::PATCH,
                    &format!("/api/tasks/{id}"),
                    Some(&json!({"status": "CANCELLED"})),
                    TIMEOUT,
                )
                .await?;
            let task = if task.get("task").is_some() {
                &task["task"]
            } else {
                &task
            };
            println!(
                "{} is {}{}",
                id,
                task["status"].as_str().unwrap_or_default(),
                if task["cancelRequested"] == true {
                    " (its runner is told to stop)"
                } else {
                    ""
                }
            );
        }
        TaskCommand::Release { id } => {
            let id = resolve_id(&client, "/api/tasks", "task", &id).await?;
            let body = json!({"dependsOn": [], "notBefore": null});
            let _: Value = client
                .call(
                    Method::PATCH,
                    &format!("/api/tasks/{id}"),
                    Some(&body),
                    TIMEOUT,
                )
                .await?;
            println!("{id} waits for nothing now");
        }
        TaskCommand::Retry { id } => {
            let id = resolve_id(&client, "/api/tasks", "task", &id).await?;
            let answer: Value = client
                .call(
                    Method::POST,
                    &format!("/api/tasks/{id}/retry"),
                    None,
                    TIMEOUT,
                )
                .await?;
            println!("{id} is {}", plain(&answer["task"]["status"]));
        }
    }
    Ok(())
}

/// The queued tasks in the order runners take them, each with what it waits for.
pub(crate) async fn queue(admin: &AdminArgs) -> anyhow::Result<()> {
    let client = admin.client()?;
    let tasks: Value = client
        .call(
            Method::GET,
            "/api/tasks?status=QUEUED&sortBy=priority&sortOrder=asc&limit=100",
            None,
            TIMEOUT,
        )
        .await?;
    print_tasks(&tasks);
    Ok(())
}

/// An agent's log, oldest first: its newest `limit` entries, then with `follow` every
/// new entry as it comes, in the order the agent wrote them.
pub(crate) async fn logs(
    admin: &AdminArgs,
    agent: &str,
    follow: bool,
    limit: u32,
) -> anyhow::Result<()> {
    let client = admin.client()?;
    let agent = resolve_id(&client, "/api/agents", "agent", agent).await?;
    let page: Value = client
        .call(
            Method::GET,
            &format!("/api/agents/{agent}/logs?limit={limit}"),
            None,
            TIMEOUT,
        )
        .await?;
    let mut entries: Vec<Value> = page["logs"].as_array().cloned().unwrap_or_default();
    entries.reverse();
    let mut last = entries
        .last()
        .map(log_cursor)
        .unwrap_or_else(|| "0.0".into());
    entries.iter().for_each(print_log);
    if !follow {
        return Ok(());
    }
    loop {
        let page: Value = client
            .call(
                Method::GET,
                &format!("/api/agents/{agent}/logs?limit=500&after={last}"),
                None,
                TIMEOUT,
            )
            .await?;
        let entries = page["logs"].as_array().cloned().unwrap_or_default();
        entries.iter().for_each(print_log);
        match entries.last() {
            Some(newest) => last = log_cursor(newest),
            // Caught up: look again in a second.
            None => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// The cursor that continues after a log entry: `<attempt>.<sequence>`.
fn log_cursor(entry: &Value) -> String {
    format!(
        "{}.{}",
        entry["attempt"].as_u64().unwrap_or(0),
        entry["sequence"].as_u64().unwrap_or(0)
    )
}

fn print_log(entry: &Value) {
    println!(
        "{} {:<12} {}",
        entry["createdAt"].as_str().unwrap_or_default(),
        entry["logType"].as_str().unwrap_or_default(),
        entry["content"].as_str().unwrap_or_default()
    );
}

const TIMEOUT: Duration = Duration::from_secs(30);

fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// `#2 by 3f2a9c1e, started …, ended … COMPLETED (reason) commit …`.
fn attempt_line(attempt: &Value) -> String {
    let mut line = format!(
        "#{} by {}, started {}",
        plain(&attempt["attemptNumber"]),
        short(&attempt["agentId"]),
        plain(&attempt["startedAt"])
    );
    if let Some(ended) = attempt["endedAt"].as_str() {
        line.push_str(&format!(", ended {ended}"));
    }
    line.push_str(&format!(" {}", plain(&attempt["outcome"])));
    if let Some(reason) = attempt["failureReason"].as_str() {
        line.push_str(&format!(" ({})", reason.lines().next().unwrap_or_default()));
    }
    if let Some(sha) = attempt["commitSha"].as_str() {
        line.push_str(&format!(" commit {}", &sha[..sha.len().min(12)]));
    }
    line
}

/// What a queued task waits for, in words: `3f2a9c1e (FAILED), 2026-12-08T09:00:00.000Z`.
fn waiting_words(waiting: &Value) -> String {
    let mut words: Vec<String> = waiting["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|dependency| {
            format!(
                "{} ({})",
                short(&dependency["id"]),
                plain(&dependency["status"])
            )
        })
        .collect();
    if let Some(at) = waiting["notBefore"].as_str() {
        words.push(at.to_owned());
    }
    words.join(", ")
}

/// The first 8 characters of an id, as the lists print it.
fn short(id: &Value) -> String {
    id.as_str().unwrap_or_default().chars().take(8).collect()
}

/// The agent slots, newest first.
pub(crate) async fn agents(admin: &AdminArgs, limit: u32) -> anyhow::Result<()> {
    let client = admin.client()?;
    let agents: Value = client
        .call(
            Method::GET,
            &format!("/api/agents?limit={limit}"),
            None,
            TIMEOUT,
        )
        .await?;
    let agents = agents.as_array().cloned().unwrap_or_default();
    if agents.is_empty() {
        println!("no agents (a runner adds its slots when it starts)");
    }
    for agent in agents {
        let task = match agent["currentTask"].as_object() {
            Some(task) => format!(
                "{} {}",
                short(&task["id"]),
                task["title"].as_str().unwrap_or_default()
            ),
            None => String::new(),
        };
        println!(
            "{}  {:<9} {:<28} {}",
            short(&agent["id"]),
            plain(&agent["status"]),
            plain(&agent["name"]),
            task
        );
    }
    Ok(())
}

/// The runners, newest first.
pub(crate) async fn runners(admin: &AdminArgs, limit: u32) -> anyhow::Result<()> {
    let client = admin.client()?;
    let runners: Value = client
        .call(
            Method::GET,
            &format!("/api/runners?limit={limit}"),
            None,
            TIMEOUT,
        )
        .await?;
    let runners = runners.as_array().cloned().unwrap_or_default();
    if runners.is_empty() {
        println!("no runners (connect one with a connection token)");
    }
    for runner in runners {
        println!(
            "{}  {:<8} {:<24} last seen {}  {}",
            short(&runner["id"]),
            plain(&runner["status"]),
            plain(&runner["name"]),
            plain(&runner["lastSeenAt"]),
            plain(&runner["workingDir"])
        );
    }
    Ok(())
}

fn print_tasks(list: &Value) {
    let tasks = list["tasks"].as_array().cloned().unwrap_or_default();
    if tasks.is_empty() {
        println!("no tasks");
        return;
    }
    for task in tasks {
        let waiting = waiting_words(&task["waiting"]);
        println!(
            "{}  {:<12} p{}  {}{}",
            short(&task["id"]),
            task["status"].as_str().unwrap_or_default(),
            task["priority"],
            task["title"].as_str().unwrap_or_default(),
            if waiting.is_empty() {
                String::new()
            } else {
                format!("  (waits for {waiting})")
            }
        );
    }
}
