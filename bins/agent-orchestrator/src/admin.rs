//! The admin commands: tasks, the queue and agents' logs, over the API with the admin
//! token.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
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
        /// 1 (first) to 5.
        #[arg(short, long, value_parser = clap::value_parser!(u8).range(1..=5))]
        priority: Option<u8>,
    },
    /// List tasks, newest first.
    List {
        /// QUEUED, IN_PROGRESS, COMPLETED, FAILED, …
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
    },
    /// Show one task.
    Show { id: String },
    /// Cancel a task (a running one is told to stop).
    Cancel { id: String },
    /// Put a failed task back in the queue.
    Retry { id: String },
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
        TaskCommand::List { status, limit } => {
            let mut path = format!("/api/tasks?limit={limit}");
            if let Some(status) = status {
                path.push_str(&format!("&status={}", status.to_uppercase()));
            }
            print_tasks(&client.call(Method::GET, &path, None, TIMEOUT).await?);
        }
        TaskCommand::Show { id } => {
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
            println!("\n{}", task["description"].as_str().unwrap_or_default());
        }
        TaskCommand::Cancel { id } => {
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
        TaskCommand::Retry { id } => {
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

/// The queued tasks in the order runners take them.
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

fn print_tasks(list: &Value) {
    let tasks = list["tasks"].as_array().cloned().unwrap_or_default();
    if tasks.is_empty() {
        println!("no tasks");
        return;
    }
    for task in tasks {
        let id: String = task["id"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(8)
            .collect();
        println!(
            "{id}  {:<12} p{}  {}",
            task["status"].as_str().unwrap_or_default(),
            task["priority"],
            task["title"].as_str().unwrap_or_default()
        );
    }
}
