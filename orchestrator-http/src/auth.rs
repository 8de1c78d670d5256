//! Who may call what. Two scopes: the admin token opens the dashboard and the API; a runner
//! token (from exchanging a setup token) opens the runner routes only. Tokens are kept as
//! SHA-256 hashes and compared in constant time.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::LocalBoxFuture;
use orchestrator_core::model::{RunnerSession, RunnerSessionStatus};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::extract::{parse_json, payload_error};
use crate::state::AppState;

/// Random bytes in a freshly minted secret.
const SECRET_BYTES: usize = 32;

/// A new random secret: 32 bytes from the operating system, base64url without padding.
pub fn new_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).expect("the operating system's random source is unavailable");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a token: its SHA-256 digest in lower-case hex.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Whether `token` hashes to `expected_hash`, compared without early exit.
pub fn token_matches(token: &str, expected_hash: &str) -> bool {
    hash_token(token)
        .as_bytes()
        .ct_eq(expected_hash.as_bytes())
        .into()
}

/// The cookie a browser keeps the admin token in after `/login`.
pub const ADMIN_COOKIE: &str = "orchestrator_admin";

/// The token of an `Authorization: Bearer <token>` header, if any.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Proof that the request carries the admin token; an extractor.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let bearer = bearer_token(req).map(str::to_owned);
        let from_session = bearer.is_none();
        let token = bearer.or_else(|| req.cookie(ADMIN_COOKIE).map(|c| c.value().to_owned()));
        let refusal = if from_session && token.is_some() {
            session_refusal(req)
        } else {
            None
        };
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            if let Some(refusal) = refusal {
                return Err(ApiError::forbidden(refusal));
            }
            let state = state.ok_or_else(|| ApiError::internal("application state missing"))?;
            let Some(token) = token else {
                return Err(ApiError::unauthorized(
                    "This route needs the admin token: send `Authorization: Bearer <token>` \
                     (browsers: open the login link the server printed)",
                ));
            };
            if state.is_admin_token(&token) {
                return Ok(Admin);
            }
            let hash = hash_token(&token);
            if state.store.find_runner_session(&hash).await?.is_some() {
                return Err(ApiError::forbidden(
                    "A runner token cannot call admin routes; use the admin token",
                ));
            }
            Err(ApiError::unauthorized("The admin token is not valid"))
        })
    }
}

/// Why a request that only the browser session authenticates may not change anything, if
/// it may not: it must come from this server's own pages (a browser says where from in
/// `Sec-Fetch-Site` and `Origin`) with a JSON body, which no other site can make a
/// browser send with the session's cookie. Reads are not refused.
fn session_refusal(req: &HttpRequest) -> Option<String> {
    if matches!(
        *req.method(),
        actix_web::http::Method::GET
            | actix_web::http::Method::HEAD
            | actix_web::http::Method::OPTIONS
    ) {
        return None;
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let advice = "API clients send `Authorization: Bearer <token>` instead of the browser session";
    if let Some(site) = header("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Some(format!(
            "The browser session only works from this server's own pages (this request is {site}); {advice}"
        ));
    }
    if let Some(origin) = header("origin") {
        let own = req.connection_info().host().to_owned();
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin_host != own {
            return Some(format!(
                "The browser session only works from this server's own pages (the request came from {origin}); {advice}"
            ));
        }
    }
    match header("content-type") {
        Some(kind)
            if !kind
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json") =>
        {
            Some(format!(
                "With the browser session a request body must be JSON (it was {kind}); {advice}"
            ))
        }
        _ => None,
    }
}

/// Finds the active runner session of `token` (from the `Authorization` header, or
/// `runnerToken` in the body or query).
pub async fn authenticate_runner(
    state: &AppState,
    token: Option<&str>,
) -> Result<RunnerSession, ApiError> {
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
        return Err(ApiError::unauthorized(
            "This route needs a runner token: send `Authorization: Bearer <runner token>` \
             (connect the runner first with `agent-orchestrator connect`)",
        ));
    };
    if state.is_admin_token(token) {
        return Err(ApiError::forbidden(
            "The admin token cannot call runner routes; connect a runner to get a runner token",
        ));
    }
    match state.store.find_runner_session(&hash_token(token)).await? {
        Some(session) if session.status != RunnerSessionStatus::Revoked => Ok(session),
        Some(_) => Err(ApiError::unauthorized(
            "This runner session was revoked; connect the runner again with a new setup token",
        )),
        None => Err(ApiError::unauthorized("Invalid or inactive runner session")),
    }
}

/// The runner session of the bearer token, else of `other_token` (from the body or the
/// query), recorded as having called in.
pub(crate) async fn runner_session(
    state: &AppState,
    req: &HttpRequest,
    other_token: Option<&str>,
) -> Result<RunnerSession, ApiError> {
    let session = authenticate_runner(state, bearer_token(req).or(other_token)).await?;
    Ok(state.protocol().check_in(session).await?)
}

/// The `runnerToken` of a JSON body, if it is an object that has one.
pub fn token_in_body(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct TokenOnly {
        #[serde(rename = "runnerToken")]
        runner_token: Option<String>,
    }
    serde_json::from_slice::<TokenOnly>(body)
        .ok()
        .and_then(|found| found.runner_token)
}

/// A runner's call: its session, found from the bearer token or the body's `runnerToken`
/// before the body is checked (so a caller without a token learns nothing of the body's
/// form), and the body; an extractor.
#[derive(Debug)]
pub struct RunnerCall<T> {
    pub session: RunnerSession,
    pub body: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for RunnerCall<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let bytes = bytes.await.map_err(payload_error)?;
            let state = req
                .app_data::<web::Data<AppState>>()
                .cloned()
                .expect("the app has its state");
            let body_token = match bearer_token(&req) {
                Some(_) => None,
                None => token_in_body(&bytes),
            };
            let session = runner_session(&state, &req, body_token.as_deref()).await?;
            let body = parse_json(&bytes)?;
            Ok(Self { session, body })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(token_matches("abc", &hash_token("abc")));
        assert!(!token_matches("abd", &hash_token("abc")));
    }

    #[test]
    fn secrets_are_long_and_distinct() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }
}
