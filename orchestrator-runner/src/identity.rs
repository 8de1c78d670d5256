//! What a runner states about itself: the host name of its machine, its version and its
//! agent backends. A name the orchestrator would refuse is left out, so that a claim or a
//! completion is never refused for it.

use orchestrator_core::model::{
    MAX_BACKEND_CHARS, MAX_HOST_CHARS, MAX_RUNNER_BACKENDS, RunnerIdentity, check_name,
};

/// This machine's host name, this runner's version and the agent `backends` it runs, as
/// it states them when it connects and with each claim.
pub fn runner_identity(backends: impl IntoIterator<Item = String>) -> RunnerIdentity {
    RunnerIdentity {
        host: host_name(),
        version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        backends: backends
            .into_iter()
            .filter(|backend| acceptable(backend, MAX_BACKEND_CHARS))
            .take(MAX_RUNNER_BACKENDS)
            .collect(),
    }
}

fn host_name() -> Option<String> {
    let host = nix::unistd::gethostname().ok()?.into_string().ok()?;
    acceptable(&host, MAX_HOST_CHARS).then_some(host)
}

/// Whether the orchestrator takes `name` as a name of at most `max` characters.
pub(crate) fn acceptable(name: &str, max: usize) -> bool {
    check_name("name", name, max).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_names_this_machine_and_leaves_out_what_would_be_refused() {
        let too_long = "b".repeat(MAX_BACKEND_CHARS + 1);
        let identity = runner_identity(["claude-code", "", " ", &too_long].map(str::to_owned));
        assert_eq!(identity.backends, ["claude-code"]);
        assert_eq!(identity.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        assert_eq!(
            identity.host.as_deref(),
            nix::unistd::gethostname().unwrap().to_str()
        );

        let many = runner_identity((0..MAX_RUNNER_BACKENDS + 3).map(|n| format!("backend-{n}")));
        assert_eq!(many.backends.len(), MAX_RUNNER_BACKENDS);
        many.validate().expect("the orchestrator takes it");
    }
}
