//! An agent's process: started from an argument vector in its own process group, its
//! output read line by line, the whole group suspended while a human pauses the agent,
//! and killed when it is dropped.

use std::path::Path;
use std::process::{ExitStatus, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use orchestrator_core::backend::PauseSignal;
use orchestrator_verify::command::inherited_environment;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::task::JoinHandle;

/// The runner's values of the variables `names`, which the user passes through to the
/// agents; an error names one that is not set.
pub fn passed_through(names: &[String]) -> Result<Vec<(String, String)>, String> {
    names
        .iter()
        .map(|name| match std::env::var(name) {
            Ok(value) => Ok((name.clone(), value)),
            Err(_) => Err(format!(
                "{name} is not set (or not text) in this environment; set it, or drop it from \
                 the variables passed to the agents"
            )),
        })
        .collect()
}

/// A running agent process; dropping it kills its process group.
#[derive(Debug)]
pub struct AgentProcess {
    child: Child,
    group: Option<Pid>,
    /// Stops and continues the group as the pause signal changes.
    pause_follower: Option<JoinHandle<()>>,
    pub stdout: Lines<BufReader<ChildStdout>>,
    pub stderr: Lines<BufReader<ChildStderr>>,
}

impl AgentProcess {
    /// Starts `argv` in `work_dir` with an environment of the runner's basics (see
    /// [`orchestrator_verify::command::INHERITED`]: the path, home, locale, toolchains) and
    /// `env`, nothing else: the runner's and the server's secrets (tokens, database URLs,
    /// keys) never reach an agent. The group is stopped (SIGSTOP) while `pause` is set and
    /// continued (SIGCONT) when it clears.
    pub fn spawn(
        argv: &[String],
        work_dir: &Path,
        env: &[(String, String)],
        pause: PauseSignal,
    ) -> std::io::Result<Self> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("the agent command is empty"))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        command
            .env_clear()
            .envs(inherited_environment())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut child = command.spawn()?;
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("no stderr"))?;
        Ok(Self {
            child,
            group,
            pause_follower: group.map(|group| tokio::spawn(follow_pause(group, pause))),
            stdout: BufReader::new(stdout).lines(),
            stderr: BufReader::new(stderr).lines(),
        })
    }

    /// Waits for the agent to exit, then kills whatever it left running in its group.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        self.kill_group();
        Ok(status)
    }

    fn kill_group(&mut self) {
        if let Some(follower) = self.pause_follower.take() {
            follower.abort();
        }
        if let Some(group) = self.group.take() {
            // The group may be gone already; nothing else to do then.
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

/// Suspends and continues `group` as `pause` asks, until aborted.
async fn follow_pause(group: Pid, mut pause: PauseSignal) {
    let mut paused = pause.is_paused();
    loop {
        let signal = if paused {
            Signal::SIGSTOP
        } else {
            Signal::SIGCONT
        };
        // A group that has exited needs neither.
        let _ = killpg(group, signal);
        paused = pause.changed().await;
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill_group();
    }
}
