use serde::{Deserialize, Serialize};

use super::{MAX_BACKEND_CHARS, check_max_chars, check_name, check_not_blank};
use crate::error::{Error, Result};
use crate::ids::RunnerSessionId;
use crate::model::RunnerSessionStatus;
use crate::time::Timestamp;

const MAX_NAME_CHARS: usize = 100;
const MAX_WORKING_DIR_CHARS: usize = 4096;
/// Longest host name a runner states, in characters.
pub const MAX_HOST_CHARS: usize = 255;
/// Longest version a runner states, in characters.
pub const MAX_VERSION_CHARS: usize = 64;
/// Most agent backends a runner states.
pub const MAX_RUNNER_BACKENDS: usize = 16;

/// A connected runner machine, authenticated by a token of which only the hash is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunnerSession {
    pub id: RunnerSessionId,
    pub name: String,
    pub working_dir: String,
    pub status: RunnerSessionStatus,
    /// SHA-256 of the runner token (hex); never serialized.
    #[serde(skip)]
    pub token_hash: String,
    /// The host name of the runner's machine, as the runner last stated it.
    pub host: Option<String>,
    /// The runner's version, as it last stated it.
    pub version: Option<String>,
    /// The agent backends the runner runs, as it last stated them.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<super::BackendName>))]
    pub backends: Vec<String>,
    pub last_seen_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl RunnerSession {
    /// Whether the session may act (not revoked). An inactive session becomes active again
    /// when it calls in.
    pub fn is_active(&self) -> bool {
        self.status != RunnerSessionStatus::Revoked
    }

    /// What the runner last stated about itself.
    pub fn identity(&self) -> RunnerIdentity {
        RunnerIdentity {
            host: self.host.clone(),
            version: self.version.clone(),
            backends: self.backends.clone(),
        }
    }

    /// Keeps `identity` as what the runner states about itself now.
    pub fn set_identity(&mut self, identity: RunnerIdentity) {
        self.host = identity.host;
        self.version = identity.version;
        self.backends = identity.backends;
    }
}

/// What a runner states about itself when it connects and with each claim: the host name
/// of its machine, its version and the agent backends it runs. Its session keeps the
/// latest statement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunnerIdentity {
    /// The host name of the runner's machine (at most 255 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 255, pattern = "[^ \t\r\n]")
    )]
    pub host: Option<String>,
    /// The runner's version (at most 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            pattern = "[^ \t\r\n]",
            example = "0.1.0"
        )
    )]
    pub version: Option<String>,
    /// The agent backends the runner runs (at most 16), e.g. `["claude-code"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_items = 16, value_type = Vec<super::BackendName>)
    )]
    pub backends: Vec<String>,
}

impl RunnerIdentity {
    /// Checks every field: not blank and within its length, at most
    /// [`MAX_RUNNER_BACKENDS`] backends. Errors name the field as the runner sends it,
    /// under `runner`.
    pub fn validate(&self) -> Result<()> {
        if let Some(host) = &self.host {
            check_name("runner.host", host, MAX_HOST_CHARS)?;
        }
        if let Some(version) = &self.version {
            check_name("runner.version", version, MAX_VERSION_CHARS)?;
        }
        if self.backends.len() > MAX_RUNNER_BACKENDS {
            return Err(Error::invalid(
                "runner.backends",
                format!(
                    "at most {MAX_RUNNER_BACKENDS} backends (got {})",
                    self.backends.len()
                ),
            ));
        }
        for (index, backend) in self.backends.iter().enumerate() {
            check_name(
                &format!("runner.backends[{index}]"),
                backend,
                MAX_BACKEND_CHARS,
            )?;
        }
        Ok(())
    }
}

/// What it takes to create a runner session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRunnerSession {
    pub name: String,
    pub working_dir: String,
    pub token_hash: String,
    /// What the runner stated about itself when it connected.
    pub runner: RunnerIdentity,
}

impl NewRunnerSession {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        check_not_blank("name", &self.name)?;
        check_max_chars("name", &self.name, MAX_NAME_CHARS)?;
        check_max_chars("workingDir", &self.working_dir, MAX_WORKING_DIR_CHARS)?;
        check_not_blank("tokenHash", &self.token_hash)?;
        self.runner.validate()
    }

    /// The ACTIVE session this creates.
    pub fn into_session(self, id: RunnerSessionId, now: Timestamp) -> RunnerSession {
        let RunnerIdentity {
            host,
            version,
            backends,
        } = self.runner;
        RunnerSession {
            id,
            name: self.name,
            working_dir: self.working_dir,
            status: RunnerSessionStatus::Active,
            token_hash: self.token_hash,
            host,
            version,
            backends,
            last_seen_at: now,
            created_at: now,
            updated_at: now,
        }
    }
}
