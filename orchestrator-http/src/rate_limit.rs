//! Rate limiting: a budget of requests per minute per client (GCRA, through `governor`),
//! `X-RateLimit-Limit` / `-Remaining` / `-Reset` on responses, and 429 with `Retry-After`
//! when the budget is spent. Clients are told apart by their token when they send one,
//! else by address. Runner routes draw on a larger budget of their own, so heartbeats and
//! log batches are not starved by a busy dashboard.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// Take the client's address from `X-Forwarded-For` (only behind a proxy you run).
    pub trust_proxy: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_minute: NonZeroU32::new(100).expect("non-zero"),
            runner_per_minute: NonZeroU32::new(1200).expect("non-zero"),
            trust_proxy: false,
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
        }
    }

    /// Spends one request of `key`'s budget on the runner or the API limiter.
    fn check(&self, key: &str, runner: bool) -> Verdict {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            for limiter in [&self.api, &self.runner] {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
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

/// Who is asking: the hash of their token, else their address.
fn client_key(req: &ServiceRequest, trust_proxy: bool) -> String {
    let token = crate::auth::bearer_token(req.request())
        .map(str::to_owned)
        .or_else(|| {
            web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
                .ok()
                .and_then(|query| query.get("runnerToken").cloned())
        });
    if let Some(token) = token {
        return format!("token:{}", &hash_token(&token)[..32]);
    }
    let forwarded = trust_proxy
        .then(|| req.headers().get("x-forwarded-for"))
        .flatten()
        .and_then(|value| value.to_str().ok())
        .and_then(|list| list.split(',').next())
        .and_then(|first| first.trim().parse::<IpAddr>().ok());
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
    let limits = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.rate_limits.clone());
    let path = req.path();
    // Health probes and open event streams do not spend budget.
    let exempt = path == "/api/health" || path == "/api/events";
    let Some(limits) = limits.filter(|_| !exempt) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let runner = path.starts_with("/api/runner/");
    let verdict = limits.check(&client_key(&req, limits.config.trust_proxy), runner);
    if let Some(wait) = verdict.retry_after {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let error = ApiError {
            retry_after: Some(seconds.max(1)),
            ..ApiError::new(
                ErrorCode::RateLimited,
                format!("Too many requests: try again in {} s", seconds.max(1)),
            )
        };
        let mut response = HttpResponse::from_error(error);
        verdict.write_headers(response.headers_mut());
        // Built from the parts so that the error stays attached for the envelope.
        let (request, _) = req.into_parts();
        return Ok(ServiceResponse::new(request, response));
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    verdict.write_headers(response.headers_mut());
    Ok(response)
}
