//! `agent-orchestrator`: connects a machine to an orchestrator server and runs agents on
//! its tasks.

use clap::Parser;

/// Connect this machine to an orchestrator and run coding agents on its tasks.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {}

fn main() {
    Args::parse();
}
