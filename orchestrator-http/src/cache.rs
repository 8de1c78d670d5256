//! Responses of read-only routes kept until the store's next commit.
//!
//! Dashboards poll the same lists over and over; between two commits the answer cannot
//! change, so it is built once per commit generation ([`EventStore::subscribe`](orchestrator_core::store::EventStore::subscribe)) and served
//! from memory after that. The generation is read before the response is built, so a
//! commit that lands while it is being built leaves the entry stale-marked and the next
//! request builds afresh.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

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
    /// it was built, else built by `build` and kept.
    pub async fn bytes<F, Fut>(&self, store: &dyn Store, key: String, build: F) -> ApiResult<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ApiResult<Bytes>>,
    {
        let generation = *store.subscribe().borrow();
        let cached = self
            .lock()
            .get(&key)
            .filter(|(built_at, _)| *built_at == generation)
            .map(|(_, body)| body.clone());
        let body = match cached {
            Some(body) => body,
            None => {
                let body = build().await?;
                let mut entries = self.lock();
                if entries.len() >= CAPACITY {
                    entries.retain(|_, (built_at, _)| *built_at == generation);
                    if entries.len() >= CAPACITY {
                        entries.clear();
                    }
                }
                entries.insert(key, (generation, body.clone()));
                body
            }
        };
        Ok(body)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, Bytes)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
