//! `orchestrator-server`: opens the orchestrator's database (the embedded SQLite file by
//! default, or PostgreSQL) and brings its schema up to date.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, ValueEnum};

/// Run the orchestrator server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Database URL: `sqlite://path/to/file.db` or `postgres://user@host/db`.
    /// Default: the SQLite file `orchestrator.db` in the data directory.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,

    /// Directory for the embedded database and other state.
    #[arg(long, env = "ORCHESTRATOR_DATA_DIR", default_value = ".orchestrator")]
    data_dir: PathBuf,

    /// Log format.
    #[arg(
        long,
        env = "ORCHESTRATOR_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

impl Args {
    /// The database to open: the explicit URL, or the SQLite file in the data directory.
    fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.data_dir.join("orchestrator.db").display()
            ),
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    init_logging(args.log_format);
    let url = args.database_url();
    let store = orchestrator_store::connect(&url)
        .await
        .with_context(|| format!("cannot open the database at {url}"))?;
    store
        .ping()
        .await
        .context("the database opened but does not answer")?;
    tracing::info!(database = %redact(&url), "database ready, schema up to date");
    Ok(())
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_database_is_a_file_in_the_data_directory() {
        let args = Args::parse_from(["orchestrator-server", "--data-dir", "/tmp/x"]);
        assert_eq!(args.database_url(), "sqlite:///tmp/x/orchestrator.db");
    }

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/orch"),
            "postgres://app:***@db:5432/orch"
        );
        assert_eq!(redact("sqlite://a.db"), "sqlite://a.db");
    }
}
