//! The admin token at start: the operator's, the one saved at an earlier start, or a new
//! one generated now and shown once; and the lines that tell the operator how to get in.

use orchestrator_core::Clock;
use orchestrator_core::store::RunnerStore;
use orchestrator_http::auth::{hash_token, new_secret};

/// How the admin token was settled at this start.
pub(crate) enum AdminToken {
    /// Given by the operator.
    Configured(String),
    /// Generated now; shown once.
    Generated(String),
    /// Generated at an earlier start (or by another replica); only its hash is known.
    Saved(String),
}

impl AdminToken {
    pub(crate) fn hash(&self) -> String {
        match self {
            Self::Configured(token) | Self::Generated(token) => hash_token(token),
            Self::Saved(hash) => hash.clone(),
        }
    }
}

pub(crate) async fn resolve_admin_token(
    configured: Option<&str>,
    store: &dyn RunnerStore,
    clock: &dyn Clock,
) -> anyhow::Result<AdminToken> {
    if let Some(token) = configured {
        return Ok(AdminToken::Configured(token.to_owned()));
    }
    if let Some(hash) = store.admin_token_hash().await? {
        return Ok(AdminToken::Saved(hash));
    }
    let token = new_secret();
    let saved = store
        .save_admin_token_hash(&hash_token(&token), clock.now())
        .await?;
    if saved == hash_token(&token) {
        Ok(AdminToken::Generated(token))
    } else {
        Ok(AdminToken::Saved(saved))
    }
}

pub(crate) fn announce(listening: &str, url: &str, admin: &AdminToken) {
    println!("orchestrator-server listening on {listening}");
    match admin {
        AdminToken::Configured(_) => {
            println!("Admin access: the token from --admin-token / ORCHESTRATOR_ADMIN_TOKEN.");
        }
        AdminToken::Generated(token) => {
            println!("Admin token (shown once; only its hash is stored): {token}");
            println!("Log in: {url}/login?token={token}");
            println!("Try it: curl -H 'Authorization: Bearer {token}' {url}/api/tasks");
            println!("API reference: {url}/api/openapi.json");
        }
        AdminToken::Saved(_) => {
            println!(
                "Admin access: the token generated at first start. Lost it? Start with \
                 ORCHESTRATOR_ADMIN_TOKEN set to a new one."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use orchestrator_core::SystemClock;
    use orchestrator_core::memory::InMemoryStore;

    use super::*;

    #[tokio::test]
    async fn a_generated_admin_token_is_kept_as_a_hash_and_reused() {
        let store = InMemoryStore::new();
        let clock = SystemClock;
        let first = resolve_admin_token(None, &store, &clock).await.unwrap();
        let AdminToken::Generated(token) = &first else {
            panic!("the first start generates a token");
        };
        assert_eq!(
            store.admin_token_hash().await.unwrap(),
            Some(hash_token(token))
        );
        let second = resolve_admin_token(None, &store, &clock).await.unwrap();
        assert!(matches!(&second, AdminToken::Saved(hash) if *hash == hash_token(token)));
        let configured = resolve_admin_token(Some("operator-chosen-token"), &store, &clock)
            .await
            .unwrap();
        assert_eq!(configured.hash(), hash_token("operator-chosen-token"));
    }
}
