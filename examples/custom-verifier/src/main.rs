//! `custom-verifier <work dir> <base commit>`: verifies a working tree's change with the
//! project's checks and the example plugin, and prints the result as JSON.

use std::process::ExitCode;

use custom_verifier::NoNewTodo;
use orchestrator_verify::Verification;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [work_dir, base] = args.as_slice() else {
        eprintln!("usage: custom-verifier <work dir> <base commit>");
        return ExitCode::from(2);
    };
    let change = match Verification::new()
        .with(NoNewTodo)
        .prepare(work_dir.as_ref(), base)
    {
        Ok(change) => change,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    // A local check of a tree: every path counts as the task's own.
    let (_, result) = change.run("local check", "", vec!["/".into()]).await;
    match serde_json::to_string_pretty(&result) {
        Ok(json) => println!("{json}"),
        Err(err) => eprintln!("error: {err}"),
    }
    if result.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
