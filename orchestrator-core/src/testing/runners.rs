//! Runner sessions.

use std::sync::Arc;

use super::helpers::*;
use crate::ids::RunnerSessionId;
use crate::model::{
    EventKind, MAX_BACKEND_CHARS, MAX_HOST_CHARS, MAX_RUNNER_BACKENDS, MAX_VERSION_CHARS,
    NewRunnerSession, RunnerIdentity, RunnerSessionStatus,
};
use crate::state::runner_session::RunnerSessionEvent;
use crate::store::{MAX_RUNNER_SESSION_PAGE, Store};

/// Sessions are found by token hash, go inactive and come back, and stay revoked.
pub async fn runner_sessions_are_found_by_token_and_revoked(store: Arc<dyn Store>) {
    let new = NewRunnerSession {
        name: "runner-1".into(),
        working_dir: "/home/dev/repo".into(),
        token_hash: "a".repeat(64),
        runner: RunnerIdentity::default(),
    };
    let session = store
        .create_runner_session(new.clone(), at(0))
        .await
        .unwrap();
    assert_eq!(session.status, RunnerSessionStatus::Active);
    assert_eq!(session.token_hash, "a".repeat(64));
    assert_conflict(store.create_runner_session(new.clone(), at(1)).await);
    assert_invalid_input(
        store
            .create_runner_session(
                NewRunnerSession {
                    name: " ".into(),
                    ..new.clone()
                },
                at(1),
            )
            .await,
        "name",
    );
    let found = store.find_runner_session(&"a".repeat(64)).await.unwrap();
    assert_eq!(found, Some(session.clone()));
    assert_eq!(store.find_runner_session("nope").await.unwrap(), None);

    let seen = store
        .apply_runner_session_event(session.id, RunnerSessionEvent::Seen, at(5))
        .await
        .unwrap();
    assert_eq!(seen.last_seen_at, at(5));
    let inactive = store
        .apply_runner_session_event(session.id, RunnerSessionEvent::MarkInactive, at(6))
        .await
        .unwrap();
    assert_eq!(inactive.status, RunnerSessionStatus::Inactive);
    let back = store
        .apply_runner_session_event(session.id, RunnerSessionEvent::Seen, at(7))
        .await
        .unwrap();
    assert_eq!(back.status, RunnerSessionStatus::Active);
    let revoked = store
        .apply_runner_session_event(session.id, RunnerSessionEvent::Revoke, at(8))
        .await
        .unwrap();
    assert_eq!(revoked.status, RunnerSessionStatus::Revoked);
    assert!(!revoked.is_active());
    assert_invalid_transition(
        store
            .apply_runner_session_event(session.id, RunnerSessionEvent::Seen, at(9))
            .await,
        "REVOKED",
        "seen",
    );
    assert_eq!(store.get_runner_session(session.id).await.unwrap(), revoked);

    let other = store
        .create_runner_session(
            NewRunnerSession {
                token_hash: "b".repeat(64),
                ..new
            },
            at(10),
        )
        .await
        .unwrap();
    let all = store.list_runner_sessions(None, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|s| s.id).collect::<Vec<_>>(),
        [other.id, session.id]
    );
    let newest = store.list_runner_sessions(None, 1).await.unwrap();
    assert_eq!(newest.iter().map(|s| s.id).collect::<Vec<_>>(), [other.id]);
    store
        .apply_runner_session_event(other.id, RunnerSessionEvent::Revoke, at(11))
        .await
        .unwrap();
    let revoked = store
        .list_runner_sessions(Some(RunnerSessionStatus::Revoked), 10)
        .await
        .unwrap();
    assert!(revoked.iter().any(|s| s.id == other.id), "{revoked:?}");
    assert!(
        revoked
            .iter()
            .all(|s| s.status == RunnerSessionStatus::Revoked)
    );
    let active = store
        .list_runner_sessions(Some(RunnerSessionStatus::Active), 10)
        .await
        .unwrap();
    assert!(active.iter().all(|s| s.id != other.id), "{active:?}");
    for limit in [0, MAX_RUNNER_SESSION_PAGE + 1] {
        assert_invalid_input(store.list_runner_sessions(None, limit).await, "limit");
    }
}

/// A runner states its host, version and backends when it connects and again later: its
/// session keeps the latest statement and says so with an event (a repeated one changes
/// nothing), a runner that states nothing has none, and a statement beyond the bounds is
/// refused naming its field.
pub async fn runners_state_their_host_version_and_backends(store: Arc<dyn Store>) {
    let stated = RunnerIdentity {
        host: Some("build-01.example.com".into()),
        version: Some("0.1.0".into()),
        backends: vec!["claude-code".into()],
    };
    let new = |token: &str, runner: RunnerIdentity| NewRunnerSession {
        name: "build-01".into(),
        working_dir: "/srv/app".into(),
        token_hash: token.into(),
        runner,
    };
    let session = store
        .create_runner_session(new("stating", stated.clone()), at(0))
        .await
        .unwrap();
    assert_eq!(session.identity(), stated);
    assert_eq!(store.get_runner_session(session.id).await.unwrap(), session);
    let silent = store
        .create_runner_session(new("silent", RunnerIdentity::default()), at(1))
        .await
        .unwrap();
    assert_eq!(
        (&silent.host, &silent.version, &silent.backends),
        (&None, &None, &Vec::new())
    );
    let listed = store.list_runner_sessions(None, 10).await.unwrap();
    assert_eq!(listed, [silent.clone(), session.clone()]);

    let at_the_limits = RunnerIdentity {
        host: Some("é".repeat(MAX_HOST_CHARS)),
        version: Some("v".repeat(MAX_VERSION_CHARS)),
        backends: vec!["b".repeat(MAX_BACKEND_CHARS); MAX_RUNNER_BACKENDS],
    };
    let beyond = |change: fn(&mut RunnerIdentity)| {
        let mut identity = at_the_limits.clone();
        change(&mut identity);
        identity
    };
    let refusals = [
        (
            beyond(|i| i.host = Some("é".repeat(MAX_HOST_CHARS + 1))),
            "runner.host",
        ),
        (beyond(|i| i.host = Some(" \t".into())), "runner.host"),
        (
            beyond(|i| i.version = Some("v".repeat(MAX_VERSION_CHARS + 1))),
            "runner.version",
        ),
        (
            beyond(|i| i.version = Some(String::new())),
            "runner.version",
        ),
        (
            beyond(|i| i.backends.push("command".into())),
            "runner.backends",
        ),
        (beyond(|i| i.backends[1].push('b')), "runner.backends[1]"),
        (
            beyond(|i| i.backends[2] = "\n".into()),
            "runner.backends[2]",
        ),
    ];
    for (refused, field) in &refusals {
        assert_invalid_input(
            store
                .create_runner_session(new("refused", refused.clone()), at(2))
                .await,
            field,
        );
        assert_invalid_input(
            store
                .update_runner_identity(session.id, refused.clone(), at(2))
                .await,
            field,
        );
    }
    assert_eq!(store.get_runner_session(session.id).await.unwrap(), session);

    let before = last_seq(&store).await;
    let updated = store
        .update_runner_identity(session.id, at_the_limits.clone(), at(5))
        .await
        .unwrap();
    assert_eq!(updated.identity(), at_the_limits);
    assert_eq!(
        (updated.status, updated.last_seen_at, updated.updated_at),
        (session.status, session.last_seen_at, at(5))
    );
    assert_eq!(store.get_runner_session(session.id).await.unwrap(), updated);
    let again = store
        .update_runner_identity(session.id, at_the_limits.clone(), at(6))
        .await
        .unwrap();
    assert_eq!(again, updated, "the same statement changes nothing");
    let events = store.events_since(before, 10).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, EventKind::RunnerUpdated);
    assert_eq!(events[0].runner_session_id, Some(session.id));
    assert_eq!(
        events[0].payload["version"],
        at_the_limits.version.as_deref().unwrap()
    );

    let forgotten = store
        .update_runner_identity(session.id, RunnerIdentity::default(), at(7))
        .await
        .unwrap();
    assert_eq!(forgotten.identity(), RunnerIdentity::default());

    assert_not_found(
        store
            .update_runner_identity(RunnerSessionId::new(), stated.clone(), at(8))
            .await,
    );
    store
        .apply_runner_session_event(silent.id, RunnerSessionEvent::Revoke, at(8))
        .await
        .unwrap();
    assert_conflict(store.update_runner_identity(silent.id, stated, at(9)).await);
}

/// The first saved admin token hash stays; later saves return it; a blank hash is refused.
pub async fn the_first_admin_token_hash_is_kept(store: Arc<dyn Store>) {
    assert_eq!(store.admin_token_hash().await.unwrap(), None);
    assert_eq!(
        store.save_admin_token_hash("first", at(0)).await.unwrap(),
        "first"
    );
    assert_eq!(
        store.save_admin_token_hash("second", at(1)).await.unwrap(),
        "first"
    );
    assert_eq!(
        store.admin_token_hash().await.unwrap().as_deref(),
        Some("first")
    );
    assert_invalid_input(store.save_admin_token_hash(" ", at(2)).await, "tokenHash");
}

/// A setup token is redeemed once, and never after it expires.
pub async fn setup_tokens_are_single_use_and_expire(store: Arc<dyn Store>) {
    store
        .create_setup_token("fresh", at(600_000), at(0))
        .await
        .unwrap();
    store
        .create_setup_token("stale", at(600_000), at(0))
        .await
        .unwrap();
    assert_conflict(store.create_setup_token("fresh", at(600_000), at(1)).await);
    assert!(store.redeem_setup_token("fresh", at(1_000)).await.unwrap());
    assert!(
        !store.redeem_setup_token("fresh", at(2_000)).await.unwrap(),
        "spent"
    );
    assert!(
        !store
            .redeem_setup_token("unknown", at(2_000))
            .await
            .unwrap()
    );
    assert!(
        !store
            .redeem_setup_token("stale", at(600_000))
            .await
            .unwrap(),
        "expired at its expiry"
    );
    assert_invalid_input(
        store.create_setup_token("", at(1), at(0)).await,
        "tokenHash",
    );
}
