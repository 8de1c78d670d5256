//! Running a check's command: from an argument vector (never a shell string), in its own
//! process group, with a scrubbed environment, a time limit and an output cap. When the
//! time runs out, or the caller stops waiting, the whole group is killed.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Variables a check or an agent inherits from the runner; everything else (tokens,
/// database URLs, API keys) stays behind.
pub const INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "TERM",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "GOPATH",
    "GOROOT",
    "GOCACHE",
    "GOMODCACHE",
    "NODE_PATH",
    "NPM_CONFIG_CACHE",
    "VIRTUAL_ENV",
    "PYTHONPATH",
];

/// The runner's values of the [`INHERITED`] variables it has.
pub fn inherited_environment() -> impl Iterator<Item = (&'static str, std::ffi::OsString)> {
    INHERITED
        .iter()
        .filter_map(|name| std::env::var_os(name).map(|value| (*name, value)))
}

/// A command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub program: String,
    pub args: Vec<String>,
    pub work_dir: PathBuf,
    pub time_limit: Duration,
    /// Bytes kept of standard output and of standard error each; the rest is read and
    /// dropped so the command never blocks on a full pipe.
    pub output_cap: usize,
    /// Variables set on top of the inherited ones.
    pub env: Vec<(String, String)>,
}

impl CommandSpec {
    /// `program args…` in `work_dir`, 10 minutes, 1 MiB of output each way.
    pub fn new(program: &str, args: &[&str], work_dir: impl Into<PathBuf>) -> Self {
        Self {
            program: program.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            work_dir: work_dir.into(),
            time_limit: Duration::from_secs(600),
            output_cap: 1024 * 1024,
            env: Vec::new(),
        }
    }

    /// The command line, for messages.
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The exit code; `None` when it was killed or died by a signal.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Output beyond the cap was dropped.
    pub truncated: bool,
    /// The time limit ran out and the process group was killed.
    pub timed_out: bool,
    pub duration: Duration,
}

impl CommandOutput {
    /// Exited with 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Why a command did not run.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program is not installed (not on `PATH`): the stage is skipped, with this.
    #[error("`{0}` is not installed")]
    NotInstalled(String),
    #[error("`{command}` could not be started: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed while running: {source}")]
    Io {
        command: String,
        source: std::io::Error,
    },
}

/// Kills the process group when dropped unless the command finished.
struct GroupGuard {
    group: Option<Pid>,
}

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(group) = self.group.take() {
            // The group may be gone already; nothing else to do then.
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `spec`; see the module documentation.
pub async fn run(spec: &CommandSpec) -> Result<CommandOutput, CommandError> {
    let started = Instant::now();
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&spec.work_dir)
        .env_clear()
        .envs(inherited_environment())
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            CommandError::NotInstalled(spec.program.clone())
        } else {
            CommandError::Spawn {
                command: spec.display(),
                source,
            }
        }
    })?;
    let mut guard = GroupGuard {
        group: child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw),
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let io_error = |source| CommandError::Io {
        command: spec.display(),
        source,
    };
    let collect = async {
        let (out, err, status) = tokio::join!(
            capped(stdout, spec.output_cap),
            capped(stderr, spec.output_cap),
            child.wait()
        );
        Ok::<_, std::io::Error>((out?, err?, status?))
    };
    let ((stdout, out_cut), (stderr, err_cut), status) =
        match tokio::time::timeout(spec.time_limit, collect).await {
            Ok(outcome) => outcome.map_err(io_error)?,
            Err(_) => {
                guard.kill();
                let _ = child.wait().await;
                return Ok(CommandOutput {
                    exit_code: None,
                    stdout: String::new(),
                    stderr: format!("killed after {:?}", spec.time_limit),
                    truncated: false,
                    timed_out: true,
                    duration: started.elapsed(),
                });
            }
        };
    // The leader exited; whatever it left running in its group goes too.
    guard.kill();
    Ok(CommandOutput {
        exit_code: status.code(),
        stdout,
        stderr,
        truncated: out_cut || err_cut,
        timed_out: false,
        duration: started.elapsed(),
    })
}

/// Reads `pipe` to its end, keeping the first `cap` bytes; returns them (lossy UTF-8) and
/// whether anything was dropped.
async fn capped(
    pipe: Option<impl AsyncRead + Unpin>,
    cap: usize,
) -> std::io::Result<(String, bool)> {
    let Some(mut pipe) = pipe else {
        return Ok((String::new(), false));
    };
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut dropped = false;
    loop {
        let read = pipe.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..read.min(room)]);
        dropped |= read > room;
    }
    Ok((String::from_utf8_lossy(&kept).into_owned(), dropped))
}
