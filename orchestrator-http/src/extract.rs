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
use serde_json::{Value, json};

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

/// A JSON body that may also be left out: an empty body or a JSON `null` is `None`; any
/// other body is checked like [`Json`].
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned + 'static> FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(payload_error)?;
            if bytes.trim_ascii().is_empty() || bytes.trim_ascii() == b"null" {
                return Ok(OptionalJson(None));
            }
            parse_json(&bytes).map(|value| OptionalJson(Some(value)))
        })
    }
}

/// Parses a JSON document into `T` with field-naming errors. JSON does not tell `3` from
/// `3.0`: a body a field refuses only because a whole number was written with a fraction
/// or an exponent is read again with such numbers as the integers they are.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "The request body is empty; send a JSON object",
        ));
    }
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request(
            "The request body must be a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let first = serde_path_to_error::deserialize(&mut deserializer);
    let value = match first {
        Ok(value) => value,
        Err(err) if err.inner().is_data() => {
            let mut document: Value = serde_json::from_slice(bytes).map_err(malformed)?;
            if !whole_numbers_as_integers(&mut document) {
                return Err(data_error(err));
            }
            return serde_path_to_error::deserialize(document).map_err(data_error);
        }
        Err(err) => return Err(malformed(err.into_inner())),
    };
    deserializer.end().map_err(malformed)?;
    Ok(value)
}

fn malformed(err: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("Malformed JSON in the request body: {err}"))
}

fn data_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let (field, problem) = describe_data_error(&path, err.inner());
    ApiError::new(ErrorCode::ValidationError, format!("{field}: {problem}"))
        .with_details(json!({ "field": field }))
}

/// Rewrites every number in `value` that is a whole number written as a float (`3.0`,
/// `3e2`) and fits a 64-bit integer as that integer; says whether it rewrote any.
fn whole_numbers_as_integers(value: &mut Value) -> bool {
    match value {
        Value::Number(number) => {
            let Some(float) = number.as_f64().filter(|_| number.is_f64()) else {
                return false;
            };
            // 2^63 and 2^64 are exact in f64; the ranges below exclude them.
            let integer = if float.fract() != 0.0 {
                None
            } else if (-9_223_372_036_854_775_808.0..0.0).contains(&float) {
                Some(Value::from(float as i64))
            } else if (0.0..18_446_744_073_709_551_616.0).contains(&float) {
                Some(Value::from(float as u64))
            } else {
                None
            };
            integer.map(|integer| *value = integer).is_some()
        }
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
            whole_numbers_as_integers(item) | changed
        }),
        Value::Object(fields) => fields.values_mut().fold(false, |changed, field| {
            whole_numbers_as_integers(field) | changed
        }),
        _ => false,
    }
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

pub(crate) fn payload_error(err: actix_web::Error) -> ApiError {
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

    /// The text of `name`, if given and not empty (an empty value, as an HTML form sends
    /// for a field left blank, counts as absent).
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
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
    fn whole_numbers_written_as_floats_are_integers() {
        let body =
            parse_json::<Body>(br#"{"title":"t","items":[{"priority":2.0},{"priority":1e0}]}"#)
                .expect("whole numbers");
        assert_eq!(body.items[1].priority, 1);
        let err = parse_json::<Body>(br#"{"title":"t","items":[{"priority":2.5}]}"#).unwrap_err();
        assert!(
            err.message
                .starts_with("items[0].priority: invalid type: floating point `2.5`"),
            "{}",
            err.message
        );
        let err = parse_json::<Body>(br#"{"title":"t","items":[{"priority":300.0}]}"#).unwrap_err();
        assert_eq!(err.details.unwrap()["field"], "items[0].priority");
    }

    #[test]
    fn missing_fields_are_named() {
        let err = parse_json::<Body>(br#"{"items":[]}"#).unwrap_err();
        assert_eq!(err.message, "title: is required");
        let err = parse_json::<Body>(br#"{"title":"t","items":[{}]}"#).unwrap_err();
        assert_eq!(err.details.unwrap()["field"], "items[0].priority");
    }
}
