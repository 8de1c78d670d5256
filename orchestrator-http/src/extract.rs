//! Request input with errors that name the offending field: JSON bodies, query
//! parameters and path ids.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::str::FromStr;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::{Bytes, Query};
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{ApiError, ErrorCode};

/// Bodies larger than this are refused with 413, unless a route allows more.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// A JSON body: malformed JSON is `BAD_REQUEST`, a body that does not fit the type is
/// `VALIDATION_ERROR` naming the field's path, a body over the route's limit is 413.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(payload_error)?;
            parse_json(&bytes).map(Json)
        })
    }
}

/// A JSON body that may also be left out entirely (an empty body is `None`); a body that
/// is present is checked like [`Json`].
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(payload_error)?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(None));
            }
            parse_json(&bytes).map(|value| OptionalJson(Some(value)))
        })
    }
}

/// Parses a JSON document into `T` with field-naming errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "The request body is empty; send a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_data() {
            let (field, problem) = describe_data_error(&path, &inner);
            ApiError::new(ErrorCode::ValidationError, format!("{field}: {problem}"))
                .with_details(json!({ "field": field }))
        } else {
            ApiError::bad_request(format!("Malformed JSON in the request body: {inner}"))
        }
    })?;
    deserializer.end().map_err(|err| {
        ApiError::bad_request(format!("Malformed JSON in the request body: {err}"))
    })?;
    Ok(value)
}

/// The field an error is about, and what is wrong with it. A missing field is named
/// itself, not by the object that lacks it.
fn describe_data_error(path: &str, err: &serde_json::Error) -> (String, String) {
    let message = err.to_string();
    let problem = match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    };
    let missing = problem
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(name)) => (name.to_owned(), "is required".to_owned()),
        (parent, Some(name)) => (format!("{parent}.{name}"), "is required".to_owned()),
        (".", None) => ("body".to_owned(), problem),
        (path, None) => (path.to_owned(), problem),
    }
}

fn payload_error(err: actix_web::Error) -> ApiError {
    match err.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => ApiError::new(
            ErrorCode::PayloadTooLarge,
            "The request body is larger than this route accepts",
        ),
        Some(other) => {
            ApiError::bad_request(format!("The request body could not be read: {other}"))
        }
        None => ApiError::new(
            ErrorCode::for_status(err.as_response_error().status_code()),
            err.to_string(),
        ),
    }
}

/// Query parameters, parsed field by field so that each error names its parameter.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl FromRequest for Params {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Self::from_query(req.query_string()))
    }
}

impl Params {
    /// The parameters of `query`; one given twice is refused, since only one of its values
    /// could count.
    fn from_query(query: &str) -> Result<Self, ApiError> {
        let pairs = Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|err| ApiError::bad_request(format!("Unreadable query string: {err}")))?
            .into_inner();
        let mut params = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if params.contains_key(&name) {
                return Err(ApiError::invalid(
                    &name,
                    "is given more than once; give it once",
                ));
            }
            params.insert(name, value);
        }
        Ok(Self(params))
    }

    /// The raw text of `name`, if given and not blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    /// `name` parsed with `FromStr`, if given. The error names the parameter once: a
    /// refusal of the core says what was wrong with the value in its own words.
    pub fn parse<T>(&self, name: &str) -> Result<Option<T>, ApiError>
    where
        T: FromStr,
        T::Err: std::error::Error + 'static,
    {
        self.text(name)
            .map(|raw| {
                raw.parse::<T>().map_err(|err| {
                    let refusal =
                        (&err as &dyn std::error::Error).downcast_ref::<orchestrator_core::Error>();
                    match refusal {
                        Some(orchestrator_core::Error::InvalidInput { message, .. }) => {
                            ApiError::invalid(name, message)
                        }
                        _ => ApiError::invalid(name, format!("{raw:?}: {err}")),
                    }
                })
            })
            .transpose()
    }

    /// An integer in `range`, `default` when absent.
    pub fn int<T>(&self, name: &str, range: RangeInclusive<T>, default: T) -> Result<T, ApiError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let Some(raw) = self.text(name) else {
            return Ok(default);
        };
        let out_of_range = || {
            ApiError::invalid(
                name,
                format!(
                    "{raw:?} is not a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        };
        let value = raw.parse::<T>().map_err(|_| out_of_range())?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(out_of_range())
        }
    }

    /// `true`/`false` (also `1`/`0`), `default` when absent.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.text(name) {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::invalid(
                name,
                format!("{other:?} is not true or false"),
            )),
        }
    }
}

/// An id from the path, e.g. `parse_id::<TaskId>(&raw, "task")`: a malformed id is a 400
/// "Invalid task ID format".
pub fn parse_id<T: FromStr>(raw: &str, entity: &str) -> Result<T, ApiError> {
    raw.parse::<T>().map_err(|_| {
        ApiError::new(
            ErrorCode::ValidationError,
            format!("Invalid {entity} ID format"),
        )
        .with_details(json!({ "field": "id", "value": raw }))
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        title: String,
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Item {
        priority: u8,
    }

    #[test]
    fn type_errors_name_the_field_path() {
        let err =
            parse_json::<Body>(br#"{"title":"t","items":[{"priority":"high"}]}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::ValidationError);
        assert!(
            err.message.starts_with("items[0].priority: invalid type"),
            "{}",
            err.message
        );
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        let err = parse_json::<Body>(b"{\"title\":").unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest);
        let err = parse_json::<Body>(b"{\"title\":\"t\",\"items\":[]} trailing").unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest);
    }

    #[test]
    fn missing_fields_are_named() {
        let err = parse_json::<Body>(br#"{"items":[]}"#).unwrap_err();
        assert_eq!(err.message, "title: is required");
        let err = parse_json::<Body>(br#"{"title":"t","items":[{}]}"#).unwrap_err();
        assert_eq!(err.details.unwrap()["field"], "items[0].priority");
    }
}
