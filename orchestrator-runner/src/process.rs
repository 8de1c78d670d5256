//! An agent's process: started from an argument vector in its own process group, its
//! output read line by line, the whole group suspended while a human pauses the agent,
//! and killed when it is dropped — or, should the runner die without dropping it, by the
//! runner's [reaper](Reaper).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use orchestrator_core::backend::PauseSignal;
use orchestrator_verify::command::inherited_environment;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
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
    /// continued (SIGCONT) when it clears. `input`, if any, is written to the agent's
    /// standard input, which is then closed; otherwise its standard input is empty.
    pub fn spawn(
        argv: &[String],
        work_dir: &Path,
        env: &[(String, String)],
        pause: PauseSignal,
        input: Option<String>,
    ) -> std::io::Result<Self> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| std::io::Error::other("the agent command is empty"))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(work_dir)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
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
        if let Some(group) = group {
            Reaper::watch(group);
        }
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| std::io::Error::other("no stderr"))?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            tokio::spawn(async move {
                // An agent that exits without reading all of it has no use for the rest.
                let _ = stdin.write_all(input.as_bytes()).await;
            });
        }
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
            Reaper::forget(group);
        }
    }
}

/// A watchdog process that outlives the runner only to kill its agents' process groups:
/// it reads the groups to watch from a pipe whose writing end only the runner holds, and
/// when the runner exits — however it exits, SIGKILL included — the pipe closes and it
/// kills every group still listed. A parent-death signal would reach only an agent's
/// first process, not the rest of its group.
///
/// It is a POSIX shell in a process group of its own (a Ctrl-C at the terminal does not
/// reach it), started with the first agent.
struct Reaper {
    /// The writing end of its pipe; `None` if it could not be started.
    pipe: Option<std::process::ChildStdin>,
}

/// Lines `watch <group>` and `forget <group>`; at the end of input, every group watched
/// and not forgotten is killed.
const REAPER_SCRIPT: &str = r#"groups=" "
while read -r verb group; do
  case $verb in
    watch) groups="$groups$group " ;;
    forget) groups=$(printf '%s' "$groups" | sed "s/ $group / /") ;;
  esac
done
for group in $groups; do kill -KILL -"$group" 2>/dev/null; done
"#;

impl Reaper {
    fn shared() -> &'static Mutex<Reaper> {
        static REAPER: OnceLock<Mutex<Reaper>> = OnceLock::new();
        REAPER.get_or_init(|| {
            let started = std::process::Command::new("/bin/sh")
                .args(["-c", REAPER_SCRIPT])
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn();
            let pipe = match started {
                Ok(mut reaper) => reaper.stdin.take(),
                Err(err) => {
                    tracing::warn!(
                        error = %err,
                        "cannot start the agents' reaper: agents of a runner that is killed keep running"
                    );
                    None
                }
            };
            Mutex::new(Reaper { pipe })
        })
    }

    fn tell(verb: &str, group: Pid) {
        let mut reaper = Self::shared()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sent = reaper
            .pipe
            .as_mut()
            .map(|pipe| writeln!(pipe, "{verb} {group}"));
        if let Some(Err(err)) = sent {
            tracing::warn!(error = %err, "the agents' reaper is gone");
            reaper.pipe = None;
        }
    }

    /// Kills `group` should the runner die before it forgets it.
    fn watch(group: Pid) {
        Self::tell("watch", group);
    }

    /// `group` is gone; its number may be reused.
    fn forget(group: Pid) {
        Self::tell("forget", group);
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
