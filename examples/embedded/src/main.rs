//! `cargo run -p embedded -- <git repository>`: queues three tasks and runs them in
//! process, each on its own `agent/<id>` branch of the repository.

use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(repository) = std::env::args().nth(1).map(PathBuf::from) else {
        anyhow::bail!("usage: embedded <git repository with a first commit>");
    };
    let state = repository.join(".orchestrator-embedded");
    let tasks = embedded::run(
        &repository,
        &state,
        &["Add login", "Add logout", "Add signup"],
    )
    .await?;
    for task in tasks {
        println!(
            "{} {:<10} {} {}",
            &task.id.to_string()[..8],
            task.status,
            task.branch_name.unwrap_or_default(),
            task.commit_sha.unwrap_or_default()
        );
    }
    Ok(())
}
