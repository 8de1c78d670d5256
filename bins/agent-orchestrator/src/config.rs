//! The runner's saved connection: a JSON file in the platform's config directory (or at
//! `AGENT_ORCHESTRATOR_CONFIG`), readable by its owner only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use orchestrator_runner::{HttpClient, read_ca_certificates};
use serde::{Deserialize, Serialize};

/// Overrides where the config file is.
pub(crate) const CONFIG_VAR: &str = "AGENT_ORCHESTRATOR_CONFIG";

/// What `connect` saves and `start` uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    pub(crate) url: String,
    pub(crate) runner_token: String,
    pub(crate) runner_id: String,
    pub(crate) runner_name: String,
    /// The repository the runner works on.
    pub(crate) working_dir: PathBuf,
    /// The agent backend chosen at connect time.
    pub(crate) backend: Option<String>,
    /// The certificate authority trusted for an `https://` orchestrator, besides the
    /// public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_cert: Option<PathBuf>,
}

impl Config {
    /// A client of the orchestrator with the runner's token.
    pub(crate) fn client(&self) -> anyhow::Result<HttpClient> {
        let certificates = ca_certificates(self.ca_cert.as_deref())?;
        Ok(HttpClient::trusting(
            &self.url,
            &self.runner_token,
            &certificates,
        )?)
    }
}

/// The certificates in the `--ca-cert` file, if one is given.
pub(crate) fn ca_certificates(path: Option<&Path>) -> anyhow::Result<Vec<reqwest::Certificate>> {
    path.map_or(Ok(Vec::new()), |path| {
        read_ca_certificates(path).map_err(anyhow::Error::msg)
    })
}

/// The config file's path.
pub(crate) fn path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(CONFIG_VAR) {
        return Ok(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let base = if cfg!(target_os = "macos") {
        home.map(|h| h.join("Library/Application Support"))
    } else {
        std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| home.map(|h| h.join(".config")))
    };
    let Some(base) = base else {
        bail!("no home directory to keep the config in: set {CONFIG_VAR} to a file path");
    };
    Ok(base.join("agent-orchestrator").join("config.json"))
}

/// Where completions wait that the server has not accepted yet: beside the config file.
pub(crate) fn spool_dir(config: &Path) -> PathBuf {
    config
        .parent()
        .map_or_else(|| PathBuf::from("spool"), |dir| dir.join("spool"))
}

/// The saved connection, or an error that says to connect.
pub(crate) fn load(path: &Path) -> anyhow::Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "this machine is not connected ({} does not exist): run `agent-orchestrator connect <token>` with a connection token from the server",
            path.display()
        ),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a valid config; run `agent-orchestrator connect <token>` again",
            path.display()
        )
    })
}

/// Writes `config` to `path` with mode 0600.
pub(crate) fn save(path: &Path, config: &Config) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(config)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // An existing file keeps its mode on open; make sure it is private.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Removes the saved connection.
pub(crate) fn remove(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("cannot remove {}", path.display()))
        }
        _ => Ok(()),
    }
}
