//! Responses of read-only routes kept until the store's next commit.
//!
//! Dashboards poll the same lists over and over, and every open page fetches its live
//! part after each event; between two commits the answer cannot change, so it is built
//! once per commit generation ([`EventStore::subscribe`](orchestrator_core::store::EventStore::subscribe)) and served
//! from memory after that. The generation is read before the response is built, so a
//! commit that lands while it is being built leaves the entry stale-marked and the next
//! request builds afresh.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use orchestrator_core::Store;

use crate::error::ApiResult;

/// Most responses kept at once.
const CAPACITY: usize = 128;

/// Cached JSON bodies by request key.
#[derive(Debug, Default)]
pub struct ResponseCache {
    entries: Mutex<HashMap<String, (i64, Bytes)>>,
    /// One gate per key, held while that key's body is built.
    gates: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ResponseCache {
    /// The JSON body for `key`: cached if nothing was committed since it was built,
    /// else built by `build` and kept.
    pub async fn json<F, Fut>(
        &self,
        store: &dyn Store,
        key: String,
        build: F,
    ) -> ApiResult<HttpResponse>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ApiResult<Bytes>>,
    {
        let body = self.bytes(store, key, build).await?;
        Ok(HttpResponse::Ok()
            .insert_header((
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ))
            .body(body))
    }

    /// The body for `key` (JSON or a page's part): cached if nothing was committed since
    /// the request arrived, else built by `build` and kept. One build per key runs at a
    /// time; the requests that wait for it take what it built when it is no older than
    /// they are, so a burst of requests after a commit costs one build, not one each.
    pub async fn bytes<F, Fut>(&self, store: &dyn Store, key: String, build: F) -> ApiResult<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ApiResult<Bytes>>,
    {
        let arrived = *store.subscribe().borrow();
        if let Some(body) = self.fresh(&key, arrived) {
            return Ok(body);
        }
        let gate = self.gate(&key);
        let _turn = gate.lock().await;
        if let Some(body) = self.fresh(&key, arrived) {
            return Ok(body);
        }
        let generation = *store.subscribe().borrow();
        let body = build().await?;
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.retain(|_, (built_at, _)| *built_at == generation);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, (generation, body.clone()));
        Ok(body)
    }

    /// The body kept for `key` if it was built after commit `generation` or later.
    fn fresh(&self, key: &str, generation: i64) -> Option<Bytes> {
        self.lock()
            .get(key)
            .filter(|(built_at, _)| *built_at >= generation)
            .map(|(_, body)| body.clone())
    }

    /// The gate that lets one build of `key` run at a time.
    fn gate(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self
            .gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if gates.len() >= 2 * CAPACITY {
            gates.retain(|_, gate| Arc::strong_count(gate) > 1);
        }
        gates.entry(key.to_owned()).or_default().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, Bytes)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use orchestrator_core::InMemoryStore;
    use orchestrator_core::store::TaskStore;

    use super::*;

    #[tokio::test]
    async fn a_burst_of_requests_costs_one_build_and_a_commit_another() {
        let store = InMemoryStore::new();
        let cache = ResponseCache::default();
        let builds = AtomicUsize::new(0);
        let build = || async {
            builds.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok(Bytes::from_static(b"page"))
        };
        let burst = (0..20).map(|_| cache.bytes(&store, "board".to_owned(), build));
        for body in futures::future::join_all(burst).await {
            assert_eq!(body.unwrap(), Bytes::from_static(b"page"));
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);

        store
            .create_task(
                orchestrator_core::model::NewTask::new("t", "d"),
                orchestrator_core::Timestamp::from_millis(0).unwrap(),
            )
            .await
            .unwrap();
        cache
            .bytes(&store, "board".to_owned(), build)
            .await
            .unwrap();
        cache
            .bytes(&store, "board".to_owned(), build)
            .await
            .unwrap();
        assert_eq!(
            builds.load(Ordering::SeqCst),
            2,
            "one build after the commit"
        );
    }
}
