//! `custom-verifier <work dir> <base commit>`: verifies a working tree's change with the
//! syntax stage, the diff policy and the example plugin, and prints the result as JSON.

use std::process::ExitCode;

use custom_verifier::NoNewTodo;
use orchestrator_core::verify::VerificationInput;
use orchestrator_verify::{ChangeSet, Pipeline, PolicyVerifier, SyntaxVerifier};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [work_dir, base] = args.as_slice() else {
        eprintln!("usage: custom-verifier <work dir> <base commit>");
        return ExitCode::from(2);
    };
    let changes = match ChangeSet::collect(work_dir.as_ref(), base) {
        Ok(changes) => changes,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let input = VerificationInput {
        task_title: "local check".into(),
        task_description: String::new(),
        work_dir: work_dir.into(),
        changed_files: changes.present_paths().map(str::to_owned).collect(),
        locked_paths: vec!["/".into()],
        base_commit: Some(base.clone()),
    };
    let pipeline = Pipeline::new()
        .with(SyntaxVerifier::default())
        .with(PolicyVerifier::default())
        .with(NoNewTodo);
    let (_, result) = pipeline.run(&input).await;
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
