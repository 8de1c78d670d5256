//! Rate limiting: a budget of requests per minute per client (GCRA, through `governor`),
//! `X-RateLimit-Limit` / `-Remaining` / `-Reset` on responses, and 429 with `Retry-After`
//! when the budget is spent. Runner routes draw on a larger budget of their own, so
//! heartbeats and log batches are not starved by a busy dashboard.
//!
//! Clients are told apart by their token once it has proved valid (the admin token, or a
//! runner token that got an answer), else by address: made-up tokens cannot buy fresh
//! budgets. A request whose token turns out invalid marks its address for one window,
//! during which further unproven tokens from there are refused before they are looked
//! up, so guessing costs at most one lookup per address and window. Behind proxies the
//! address is read from the right end of `X-Forwarded-For`, past the trusted hops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::auth::hash_token;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

type Limiter =
    RateLimiter<String, DashMapStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Checks between sweeps of clients whose budget is full again (memory stays bounded).
const SWEEP_EVERY: u64 = 4096;

/// The limit window: budgets are per minute, and an address that presented an invalid
/// token has its unproven tokens refused for this long.
const WINDOW: Duration = Duration::from_secs(60);

/// How long a token that proved valid is told apart by itself without proving it again.
const KNOWN_FOR: Duration = Duration::from_secs(600);

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// Budgets per client and how clients are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests per minute for the API and dashboard.
    pub per_minute: NonZeroU32,
    /// Requests per minute for a runner on the runner routes.
    pub runner_per_minute: NonZeroU32,
    /// Proxies of your own in front of the server: the client's address is the entry of
    /// `X-Forwarded-For` this many places from its right end (0: the connection's
    /// address; the header is ignored).
    pub trusted_proxies: u8,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_minute: NonZeroU32::new(100).expect("non-zero"),
            runner_per_minute: NonZeroU32::new(1200).expect("non-zero"),
            trusted_proxies: 0,
        }
    }
}

/// The limiters of a running server.
#[derive(Debug)]
pub struct RateLimits {
    config: RateLimitConfig,
    api: Limiter,
    runner: Limiter,
    checks: AtomicU64,
    /// Hashes of runner tokens that got an answer, and when.
    known: Mutex<HashMap<String, Instant>>,
    /// Addresses that presented an invalid token, and when.
    refused: Mutex<HashMap<String, Instant>>,
}

impl RateLimits {
    pub fn new(config: RateLimitConfig) -> Self {
        let limiter = |per_minute| {
            RateLimiter::dashmap(Quota::per_minute(per_minute))
                .with_middleware::<StateInformationMiddleware>()
        };
        Self {
            api: limiter(config.per_minute),
            runner: limiter(config.runner_per_minute),
            config,
            checks: AtomicU64::new(0),
            known: Mutex::default(),
            refused: Mutex::default(),
        }
    }

    fn is_known(&self, token_hash: &str) -> bool {
        lock(&self.known)
            .get(token_hash)
            .is_some_and(|at| at.elapsed() < KNOWN_FOR)
    }

    /// How long `address` still has its unproven tokens refused, if it does.
    fn refused_for(&self, address: &str) -> Option<Duration> {
        lock(&self.refused)
            .get(address)
            .and_then(|at| WINDOW.checked_sub(at.elapsed()))
            .filter(|left| !left.is_zero())
    }

    /// Notes what the answer to a request with a token said of the token.
    fn learn(&self, token_hash: &str, address: &str, status: actix_web::http::StatusCode) {
        if status == actix_web::http::StatusCode::UNAUTHORIZED {
            lock(&self.known).remove(token_hash);
            lock(&self.refused).insert(address.to_owned(), Instant::now());
        } else if status.is_success() {
            lock(&self.known).insert(token_hash.to_owned(), Instant::now());
        }
    }

    /// Spends one request of `key`'s budget on the runner or the API limiter.
    fn check(&self, key: &str, runner: bool) -> Verdict {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for limiter in [&self.api, &self.runner] {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
            lock(&self.known).retain(|_, at| at.elapsed() < KNOWN_FOR);
            lock(&self.refused).retain(|_, at| at.elapsed() < WINDOW);
        }
        let (limiter, limit) = if runner {
            (&self.runner, self.config.runner_per_minute.get())
        } else {
            (&self.api, self.config.per_minute.get())
        };
        let per_request = Duration::from_secs(60) / limit;
        match limiter.check_key(&key.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Verdict {
                    limit,
                    remaining,
                    full_in: per_request * (limit - remaining),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Verdict {
                    limit,
                    remaining: 0,
                    full_in: per_request * limit,
                    retry_after: Some(wait),
                }
            }
        }
    }
}

/// The outcome of one check.
struct Verdict {
    limit: u32,
    remaining: u32,
    /// Until the whole budget is back.
    full_in: Duration,
    /// Set when the request is refused.
    retry_after: Option<Duration>,
}

impl Verdict {
    fn write_headers(&self, headers: &mut HeaderMap) {
        let reset = SystemTime::now()
            .checked_add(self.full_in)
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |since| {
                since.as_secs() + u64::from(since.subsec_nanos() > 0)
            });
        headers.insert(LIMIT, HeaderValue::from(self.limit));
        headers.insert(REMAINING, HeaderValue::from(self.remaining));
        headers.insert(RESET, HeaderValue::from(reset));
    }
}

/// A map that is only ever left consistent, even by a panicking holder.
fn lock<T>(map: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    map.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The token a request presents: a bearer token, else `runnerToken` or (for the login
/// link) `token` in the query.
fn presented_token(req: &ServiceRequest) -> Option<String> {
    crate::auth::bearer_token(req.request())
        .map(str::to_owned)
        .or_else(|| {
            let query =
                web::Query::<HashMap<String, String>>::from_query(req.query_string()).ok()?;
            query
                .get("runnerToken")
                .or_else(|| query.get("token"))
                .cloned()
        })
        .filter(|token| !token.trim().is_empty())
}

/// The client's address: the connection's, or behind `trusted_proxies` proxies the entry
/// of `X-Forwarded-For` that the outermost of them added (entries to its left are the
/// client's to make up).
fn client_address(req: &ServiceRequest, trusted_proxies: u8) -> String {
    let forwarded = (trusted_proxies > 0)
        .then(|| {
            let entries: Vec<&str> = req
                .headers()
                .get_all("x-forwarded-for")
                .filter_map(|value| value.to_str().ok())
                .flat_map(|list| list.split(','))
                .map(str::trim)
                .collect();
            let from_right = usize::from(trusted_proxies).min(entries.len());
            entries
                .len()
                .checked_sub(from_right)
                .and_then(|at| entries.get(at))
                .and_then(|entry| entry.parse::<IpAddr>().ok())
        })
        .flatten();
    match forwarded.or_else(|| req.peer_addr().map(|addr| addr.ip())) {
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".to_owned(),
    }
}

/// Middleware: spends the client's budget, or answers 429.
pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let path = req.path();
    // Health probes and open event streams do not spend budget.
    let exempt = path == "/api/health" || path == "/api/events";
    let Some(limits) = state.rate_limits.clone().filter(|_| !exempt) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let runner = path.starts_with("/api/runner/");
    let address = client_address(&req, limits.config.trusted_proxies);
    let token = presented_token(&req);
    let admin = token.as_deref().is_some_and(|t| state.is_admin_token(t));
    let token_hash = token.as_deref().map(hash_token);
    // A token proved valid is its own client; any other is its address.
    let unproven = token_hash
        .clone()
        .filter(|hash| !admin && !limits.is_known(hash));
    let key = match (&token_hash, &unproven) {
        (Some(hash), None) => format!("token:{}", &hash[..32]),
        _ => address.clone(),
    };
    if unproven.is_some()
        && let Some(left) = limits.refused_for(&address)
    {
        let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        return Ok(too_many(
            req,
            seconds,
            format!(
                "An invalid token came from this address: other unproven tokens are refused \
                 for {seconds} s"
            ),
            None,
        ));
    }
    let verdict = limits.check(&key, runner);
    if let Some(wait) = verdict.retry_after {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let message = format!("Too many requests: try again in {} s", seconds.max(1));
        return Ok(too_many(req, seconds, message, Some(&verdict)));
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    if let Some(hash) = &unproven {
        limits.learn(hash, &address, response.status());
    }
    verdict.write_headers(response.headers_mut());
    Ok(response)
}

/// A 429 asking to wait `seconds`, with the budget's headers when a budget was spent.
fn too_many(
    req: ServiceRequest,
    seconds: u64,
    message: String,
    verdict: Option<&Verdict>,
) -> ServiceResponse<BoxBody> {
    let error = ApiError {
        retry_after: Some(seconds.max(1)),
        ..ApiError::new(ErrorCode::RateLimited, message)
    };
    let mut response = HttpResponse::from_error(error);
    if let Some(verdict) = verdict {
        verdict.write_headers(response.headers_mut());
    }
    // Built from the parts so that the error stays attached for the envelope.
    let (request, _) = req.into_parts();
    ServiceResponse::new(request, response)
}
