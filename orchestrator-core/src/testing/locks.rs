//! The lock manager.

use std::sync::Arc;
use std::time::Duration;

use super::claims::futures_agents;
use super::helpers::*;
use crate::error::Error;
use crate::lock::{LockOutcome, LockQuery, LockRequest};
use crate::model::{EventKind, ExceptionSeverity, ExceptionType, LockMode};
use crate::store::Store;

fn lock(agent: crate::ids::AgentId, paths: &[&str], mode: LockMode) -> LockRequest {
    LockRequest {
        holder: agent,
        task_id: None,
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        mode,
        ttl: LEASE,
    }
}

fn granted(outcome: LockOutcome) -> Vec<crate::model::FileLock> {
    match outcome {
        LockOutcome::Granted(locks) => locks,
        LockOutcome::Denied(conflicts) => panic!("denied: {conflicts:?}"),
    }
}

/// Directories cover what is below them, holders never block themselves, shared locks
/// coexist, every grant has a larger fencing token, and a request is all or nothing.
pub async fn locks_are_exclusive_over_overlapping_paths(store: Arc<dyn Store>) {
    let agents = futures_agents(&store, 3).await;
    let (a, b, c) = (agents[0], agents[1], agents[2]);
    let first = granted(
        store
            .acquire(lock(a, &["src/auth/"], LockMode::Exclusive), at(0))
            .await
            .unwrap(),
    );
    assert_eq!(first[0].file_path, "src/auth/");

    match store
        .acquire(
            lock(b, &["docs/", "src\\auth\\login.rs"], LockMode::Exclusive),
            at(1),
        )
        .await
        .unwrap()
    {
        LockOutcome::Denied(conflicts) => {
            assert_eq!(conflicts.len(), 1);
            assert_eq!(conflicts[0].requested_path, "src/auth/login.rs");
            assert_eq!(conflicts[0].held.agent_id, a);
        }
        LockOutcome::Granted(_) => panic!("an overlapping lock was granted"),
    }
    let docs = store
        .check(&["docs/readme.md".to_owned()], None, at(2))
        .await
        .unwrap();
    assert!(docs.is_empty(), "a denied request takes nothing");
    granted(
        store
            .acquire(lock(c, &["web/components"], LockMode::Shared), at(2))
            .await
            .unwrap(),
    );
    let below = store
        .check(&["web/components/button.tsx".to_owned()], None, at(2))
        .await
        .unwrap();
    assert_eq!(
        below.len(),
        1,
        "a directory named without a trailing slash covers what is below it"
    );
    let above = store.check(&["web".to_owned()], None, at(2)).await.unwrap();
    assert_eq!(above.len(), 1, "and so does a path above it");
    store.release(c, None, at(2)).await.unwrap();

    let own = granted(
        store
            .acquire(lock(a, &["src/auth/login.rs"], LockMode::Exclusive), at(3))
            .await
            .unwrap(),
    );
    assert!(own[0].fencing_token > first[0].fencing_token);
    let siblings = granted(
        store
            .acquire(
                lock(b, &["src/authz/", "src/auth.rs"], LockMode::Exclusive),
                at(4),
            )
            .await
            .unwrap(),
    );
    assert_eq!(
        siblings.len(),
        2,
        "src/auth/ covers neither src/authz/ nor src/auth.rs"
    );
    assert!(
        siblings
            .iter()
            .all(|l| l.fencing_token > own[0].fencing_token)
    );

    let shared_b = granted(
        store
            .acquire(lock(b, &["Cargo.lock"], LockMode::Shared), at(5))
            .await
            .unwrap(),
    );
    let shared_c = granted(
        store
            .acquire(lock(c, &["./Cargo.lock"], LockMode::Shared), at(6))
            .await
            .unwrap(),
    );
    assert_eq!(shared_b[0].file_path, shared_c[0].file_path);
    assert!(matches!(
        store
            .acquire(lock(a, &["Cargo.lock"], LockMode::Exclusive), at(7))
            .await
            .unwrap(),
        LockOutcome::Denied(_)
    ));
    assert!(
        matches!(
            store
                .acquire(lock(c, &["./"], LockMode::Shared), at(8))
                .await
                .unwrap(),
            LockOutcome::Denied(_)
        ),
        "a shared root lock still conflicts with exclusive locks below"
    );

    let conflicts = store
        .check(
            &["src/auth/x.rs".to_owned(), "README.md".to_owned()],
            None,
            at(9),
        )
        .await
        .unwrap();
    assert_eq!(
        conflicts.len(),
        1,
        "only the directory covers src/auth/x.rs"
    );
    assert_eq!(conflicts[0].held.file_path, "src/auth/");
    let excluded = store
        .check(&["src/auth/x.rs".to_owned()], Some(a), at(9))
        .await
        .unwrap();
    assert!(excluded.is_empty());

    for bad in [vec!["../etc"], vec!["/abs"], vec![]] {
        let request = LockRequest {
            paths: bad.iter().map(|p| (*p).to_owned()).collect(),
            ..lock(a, &[], LockMode::Exclusive)
        };
        assert!(matches!(
            store.acquire(request, at(10)).await,
            Err(Error::InvalidInput { .. })
        ));
    }
    assert_not_found(
        store
            .acquire(
                lock(crate::ids::AgentId::new(), &["x"], LockMode::Exclusive),
                at(10),
            )
            .await,
    );
}

/// Renewal, release, expiry, sweeping, listing and force release.
pub async fn locks_are_renewed_released_swept_and_forced(store: Arc<dyn Store>) {
    let agents = futures_agents(&store, 2).await;
    let (a, b) = (agents[0], agents[1]);
    granted(
        store
            .acquire(
                lock(a, &["src/a.rs", "src/b.rs"], LockMode::Exclusive),
                at(0),
            )
            .await
            .unwrap(),
    );
    let before = last_seq(&store).await;
    assert_eq!(
        store
            .renew(a, Duration::from_secs(120), at(50_000))
            .await
            .unwrap(),
        2
    );
    let recorded = store.events_since(before, 10).await.unwrap();
    assert_eq!(
        recorded.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::LockRenewed],
        "a renewal is recorded like any change"
    );
    assert_eq!(recorded[0].payload["count"], 2);
    let listed = store
        .list_locks(&LockQuery::default(), at(100_000))
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "renewed locks outlive their first expiry");
    assert_eq!(listed[0].expires_at, at(170_000));
    assert_eq!(
        store
            .release(a, Some(vec!["src/b.rs".into()]), at(100_001))
            .await
            .unwrap(),
        1
    );
    let left = store
        .list_locks(
            &LockQuery {
                agent_id: Some(a),
                ..LockQuery::default()
            },
            at(100_002),
        )
        .await
        .unwrap();
    assert_eq!(
        left.iter()
            .map(|l| l.file_path.as_str())
            .collect::<Vec<_>>(),
        ["src/a.rs"]
    );

    // Once expired, a lock no longer stands in the way, even before it is swept.
    granted(
        store
            .acquire(lock(b, &["src/a.rs"], LockMode::Exclusive), at(170_000))
            .await
            .unwrap(),
    );
    let all = store
        .list_locks(
            &LockQuery {
                include_expired: true,
                ..LockQuery::default()
            },
            at(170_001),
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(store.sweep_expired_locks(at(170_001)).await.unwrap(), 1);
    let live = store
        .list_locks(&LockQuery::default(), at(170_002))
        .await
        .unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].agent_id, b);

    assert_not_found(store.force_release("src/zzz.rs", None, at(170_003)).await);
    let forced = store
        .force_release("./src//a.rs", Some("agent crashed".into()), at(170_004))
        .await
        .unwrap();
    assert_eq!(forced.released.len(), 1);
    assert_eq!(
        forced.exception.exception_type,
        ExceptionType::ConflictDetected
    );
    assert_eq!(forced.exception.severity, ExceptionSeverity::Info);
    assert_eq!(forced.exception.title, "File lock force released");
    let description = forced.exception.description.unwrap_or_default();
    assert!(description.contains(&b.to_string()) && description.contains("agent crashed"));
    assert!(
        store
            .list_locks(&LockQuery::default(), at(170_005))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.release(a, None, at(170_006)).await.unwrap(), 0);
    assert_invalid_input(
        store
            .list_locks(
                &LockQuery {
                    limit: 201,
                    ..LockQuery::default()
                },
                at(0),
            )
            .await,
        "limit",
    );
}

/// 32 holders acquiring and releasing overlapping path sets at once: after every grant,
/// no two live locks of different holders overlap (unless both are shared).
pub async fn concurrent_lock_acquisitions_never_overlap(store: Arc<dyn Store>) {
    const PATHS: &[&str] = &[
        "src/",
        "src/a.rs",
        "src/b/",
        "src/b/c.rs",
        "src/b/d.rs",
        "docs/",
        "docs/x.md",
        "./",
        "tests/t.rs",
        "src/ab.rs",
    ];
    let agents = futures_agents(&store, 32).await;
    let mut workers = Vec::new();
    for (index, agent) in agents.into_iter().enumerate() {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut grants = 0;
            for round in 0..6 {
                let pick = |k: usize| PATHS[(index * 7 + round * 3 + k * 5) % PATHS.len()];
                let paths: Vec<String> = (0..=(index + round) % 2)
                    .map(|k| pick(k).to_owned())
                    .collect();
                let mode = if (index + round) % 4 == 0 {
                    LockMode::Shared
                } else {
                    LockMode::Exclusive
                };
                let request = LockRequest {
                    holder: agent,
                    task_id: None,
                    paths,
                    mode,
                    ttl: LEASE,
                };
                match store
                    .acquire(request, at(round as i64))
                    .await
                    .expect("acquire")
                {
                    LockOutcome::Granted(_) => {
                        grants += 1;
                        let live = store
                            .list_locks(
                                &LockQuery {
                                    limit: 200,
                                    ..LockQuery::default()
                                },
                                at(round as i64),
                            )
                            .await
                            .expect("list");
                        if let Some(overlap) = overlapping_locks(&live) {
                            panic!("{overlap}");
                        }
                        tokio::task::yield_now().await;
                        store
                            .release(agent, None, at(round as i64))
                            .await
                            .expect("release");
                    }
                    LockOutcome::Denied(conflicts) => assert!(!conflicts.is_empty()),
                }
            }
            grants
        }));
    }
    let mut total = 0;
    for worker in workers {
        total += worker.await.expect("worker panicked");
    }
    assert!(total > 0, "nothing was ever granted");
    assert!(
        store
            .list_locks(&LockQuery::default(), at(100))
            .await
            .unwrap()
            .is_empty()
    );
}
