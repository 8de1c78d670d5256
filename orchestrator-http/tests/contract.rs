//! The API against its own OpenAPI document (`GET /api/openapi.json`).
//!
//! A scenario calls every operation of the document through the in-process app with
//! realistic data: success paths (tasks with dependencies and file hints, a runner's
//! attempts with logs, locks, verification evidence and completions, exceptions, retries,
//! cancellation) and error paths of each route family. Each request is first checked
//! against the operation's documented parameters and request body; each answer's status
//! must be documented for the operation, and its body must validate against the schema
//! documented for that status and content type. Mismatches are gathered and reported
//! together at the end, along with any operation the scenario never got a success from.
//!
//! The validator itself is tested first, on small documents of its own.

mod common;

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::http::{Method, StatusCode};
use actix_web::test::{TestRequest, call_service, read_body};
use actix_web::web::Bytes;
use base64::Engine as _;
use common::schema::{Validator, Violation};
use common::{ADMIN_TOKEN, CRON_SECRET};
use orchestrator_http::rate_limit::RateLimitConfig;
use serde_json::{Value, json};

/// An id no resource has.
const UNKNOWN_ID: &str = "5a0c3b57-0d4f-4c1e-9a43-0f2b8c1d7e90";

// ---------------------------------------------------------------------------------------
// The validator on small documents.
// ---------------------------------------------------------------------------------------

/// A document with `schemas` as its components.
fn document_with(schemas: Value) -> Value {
    json!({ "openapi": "3.1.0", "components": { "schemas": schemas } })
}

/// The violations of `value` against `schema` (which may refer to `Named`, an object
/// with a required `id` and an optional `status`, both constrained).
fn violations(schema: Value, value: Value) -> Vec<Violation> {
    let document = document_with(json!({
        "Named": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": { "$ref": "#/components/schemas/Id" },
                "status": { "$ref": "#/components/schemas/Status" }
            }
        },
        "Id": { "type": "string", "format": "uuid" },
        "Status": { "type": "string", "enum": ["QUEUED", "DONE"] },
        "Under": schema,
    }));
    let validator = Validator::new(&document);
    match validator.validate_at("#/components/schemas/Under", &value) {
        Ok(()) => Vec::new(),
        Err(violations) => violations,
    }
}

/// The violations as text, one per line.
fn messages(schema: Value, value: Value) -> String {
    violations(schema, value)
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_valid(schema: Value, value: Value) {
    let found = messages(schema.clone(), value.clone());
    assert!(found.is_empty(), "{value} against {schema}: {found}");
}

/// Asserts that `value` breaks `schema` with a violation whose text contains `expected`.
fn assert_invalid(schema: Value, value: Value, expected: &str) {
    let found = messages(schema.clone(), value.clone());
    assert!(
        found.contains(expected),
        "{value} against {schema}: expected a violation containing {expected:?}, got {found:?}"
    );
}

#[test]
fn the_validator_checks_types() {
    assert_invalid(
        json!({ "type": "string" }),
        json!(5),
        "$: expected string, got integer 5",
    );
    assert_invalid(json!({ "type": "integer" }), json!(1.5), "got number 1.5");
    assert_valid(json!({ "type": "integer" }), json!(3.0));
    assert_valid(json!({ "type": "number" }), json!(3));
    assert_invalid(json!({ "type": "object" }), json!([]), "got array");
    assert_invalid(json!({ "type": "boolean" }), json!("true"), "got string");
    assert_valid(json!({ "type": ["integer", "null"] }), json!(null));
    assert_valid(json!({ "type": ["integer", "null"] }), json!(7));
    assert_invalid(
        json!({ "type": ["integer", "null"] }),
        json!("7"),
        "expected one of integer, null",
    );
    assert_invalid(json!({ "type": "null" }), json!(0), "expected null");
}

#[test]
fn the_validator_checks_objects() {
    assert_invalid(
        json!({ "$ref": "#/components/schemas/Named" }),
        json!({ "status": "DONE" }),
        "the required property `id` is missing (schema #/components/schemas/Named/required)",
    );
    let closed = json!({
        "type": "object",
        "properties": { "a": { "type": "integer" } },
        "additionalProperties": false
    });
    assert_valid(closed.clone(), json!({ "a": 1 }));
    assert_invalid(
        closed,
        json!({ "a": 1, "b": 2 }),
        "the property `b` is not allowed (additionalProperties is false)",
    );
    assert_valid(
        json!({ "type": "object", "properties": { "a": { "type": "integer" } } }),
        json!({ "a": 1, "b": 2 }),
    );
    let map = json!({ "type": "object", "additionalProperties": { "type": "integer" } });
    assert_valid(map.clone(), json!({ "x": 1, "y": 2 }));
    assert_invalid(map, json!({ "x": "one" }), "x: expected integer");
    assert_invalid(
        json!({ "type": "object", "properties": { "a.b": { "type": "integer" } } }),
        json!({ "a.b": "no" }),
        "$[\"a.b\"]: expected integer",
    );
}

#[test]
fn violations_name_the_json_path_and_the_schema_path() {
    let list = json!({
        "type": "object",
        "properties": {
            "data": {
                "type": "object",
                "properties": {
                    "items": { "type": "array", "items": { "$ref": "#/components/schemas/Named" } }
                }
            }
        }
    });
    let item = |status: &str| json!({ "id": UNKNOWN_ID, "status": status });
    let value =
        json!({ "data": { "items": [item("QUEUED"), item("DONE"), item("DONE"), item("FOO")] } });
    let found = violations(list, value);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].instance_path, "data.items[3].status");
    assert_eq!(found[0].schema_path, "#/components/schemas/Status/enum");
    assert_eq!(
        found[0].to_string(),
        "data.items[3].status: \"FOO\" is not one of [\"QUEUED\",\"DONE\"] \
         (schema #/components/schemas/Status/enum)"
    );
}

#[test]
fn the_validator_checks_enums_and_constants() {
    let status = json!({ "$ref": "#/components/schemas/Status" });
    assert_valid(status.clone(), json!("DONE"));
    assert_invalid(status.clone(), json!("done"), "\"done\" is not one of");
    assert_invalid(status, json!(3), "expected string, got integer 3");
    assert_valid(json!({ "enum": [1, "one"] }), json!(1.0));
    assert_valid(json!({ "const": "PASSED" }), json!("PASSED"));
    assert_invalid(
        json!({ "const": "PASSED" }),
        json!("FAILED"),
        "is not the constant \"PASSED\"",
    );
}

#[test]
fn the_validator_checks_numbers_against_bounds_and_formats() {
    let priority = json!({ "type": "integer", "minimum": 0, "maximum": 3 });
    assert_valid(priority.clone(), json!(0));
    assert_valid(priority.clone(), json!(3));
    assert_invalid(priority.clone(), json!(4), "4 is more than the maximum 3");
    assert_invalid(priority, json!(-1), "-1 is less than the minimum 0");
    let open = json!({ "type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1 });
    assert_valid(open.clone(), json!(0.5));
    assert_invalid(
        open.clone(),
        json!(0),
        "not more than the exclusive minimum 0",
    );
    assert_invalid(open, json!(1.0), "not less than the exclusive maximum 1");

    let int32 = json!({ "type": "integer", "format": "int32" });
    assert_valid(int32.clone(), json!(2_147_483_647));
    assert_invalid(
        int32.clone(),
        json!(2_147_483_648_i64),
        "is outside -2147483648..=2147483647",
    );
    assert_invalid(int32, json!(-2_147_483_649_i64), "is outside");
    let uint8 = json!({ "type": "integer", "format": "uint8" });
    assert_valid(uint8.clone(), json!(255));
    assert_invalid(uint8.clone(), json!(256), "is outside 0..=255");
    assert_invalid(uint8, json!(-1), "is outside 0..=255");
    assert_valid(json!({ "format": "uint64" }), json!(u64::MAX));
    assert_invalid(json!({ "format": "int64" }), json!(u64::MAX), "is outside");
    assert_invalid(json!({ "format": "int16" }), json!(32_768), "is outside");
    assert_invalid(json!({ "format": "uint16" }), json!(65_536), "is outside");
    assert_invalid(json!({ "format": "int8" }), json!(-129), "is outside");
    assert_invalid(
        json!({ "format": "uint32" }),
        json!(4_294_967_296_u64),
        "is outside",
    );
    assert_invalid(
        json!({ "format": "int64" }),
        json!(0.5),
        "is not an integer",
    );
    assert_valid(json!({ "format": "double" }), json!(1e300));
    assert_invalid(
        json!({ "format": "float" }),
        json!(1e300),
        "outside the range of a 32-bit float",
    );
    assert_valid(json!({ "format": "float" }), json!(0.25));
}

#[test]
fn the_validator_checks_strings() {
    let title = json!({ "type": "string", "minLength": 1, "maxLength": 3 });
    assert_valid(title.clone(), json!("été"));
    assert_invalid(
        title.clone(),
        json!(""),
        "0 characters, fewer than the minimum 1",
    );
    assert_invalid(
        title,
        json!("ètes"),
        "4 characters, more than the maximum 3",
    );
    let sha = json!({ "type": "string", "pattern": "^[0-9a-f]{7,40}$" });
    assert_valid(sha.clone(), json!("0123abc"));
    assert_invalid(sha, json!("xyz"), "does not match the pattern");
    assert_valid(json!({ "pattern": "b" }), json!("abc"));
    assert_valid(json!({ "pattern": "[^ \t]" }), json!("  x "));
    assert_invalid(
        json!({ "pattern": "[^ \t]" }),
        json!("  "),
        "does not match",
    );

    let id = json!({ "$ref": "#/components/schemas/Id" });
    assert_valid(id.clone(), json!(UNKNOWN_ID));
    assert_valid(id.clone(), json!(UNKNOWN_ID.to_uppercase()));
    assert_invalid(id.clone(), json!("not-a-uuid"), "is not a UUID");
    assert_invalid(id, json!(UNKNOWN_ID.replace('-', "")), "is not a UUID");

    let instant = json!({ "type": "string", "format": "date-time" });
    for valid in [
        "2024-01-01T00:00:00Z",
        "2024-02-29T23:59:60.5+01:00",
        "1999-12-31t23:59:59.123456789-08:30",
    ] {
        assert_valid(instant.clone(), json!(valid));
    }
    for (invalid, why) in [
        ("2023-02-29T00:00:00Z", "has no day 29 in month 2 of 2023"),
        ("2024-13-01T00:00:00Z", "has no month 13"),
        ("2024-01-01T24:00:00Z", "has no time 24:00:00"),
        ("2024-01-01T00:00:00+24:00", "has no offset"),
        ("2024-01-01 00:00:00Z", "is not an RFC 3339 date-time"),
        ("2024-01-01T00:00:00", "is not an RFC 3339 date-time"),
        ("2024-01-01", "is not an RFC 3339 date-time"),
    ] {
        assert_invalid(instant.clone(), json!(invalid), why);
    }

    let date = json!({ "type": "string", "format": "date" });
    assert_valid(date.clone(), json!("2024-02-29"));
    for (invalid, why) in [
        ("2023-02-29", "has no day 29 in month 2 of 2023"),
        ("2024-00-10", "has no month 0"),
        ("2024-01-01T00:00:00Z", "is not an RFC 3339 full-date"),
        ("2024-1-01", "is not an RFC 3339 full-date"),
    ] {
        assert_invalid(date.clone(), json!(invalid), why);
    }
}

#[test]
fn formats_constrain_only_values_of_their_type() {
    assert_valid(
        json!({ "type": ["string", "null"], "format": "date-time" }),
        json!(null),
    );
    assert_valid(
        json!({ "type": ["integer", "null"], "format": "int32", "minimum": 0 }),
        json!(null),
    );
    assert_invalid(
        json!({ "type": ["string", "null"], "format": "uuid" }),
        json!(12),
        "expected one of string, null",
    );
}

#[test]
fn the_validator_checks_arrays() {
    let hints =
        json!({ "type": "array", "items": { "type": "string" }, "minItems": 1, "maxItems": 2 });
    assert_valid(hints.clone(), json!(["a", "b"]));
    assert_invalid(
        hints.clone(),
        json!([]),
        "0 items, fewer than the minimum 1",
    );
    assert_invalid(
        hints.clone(),
        json!(["a", "b", "c"]),
        "3 items, more than the maximum 2",
    );
    assert_invalid(hints, json!(["a", 2]), "$[1]: expected string");
}

#[test]
fn nullable_references_accept_null_and_the_referenced_schema_only() {
    let nullable =
        json!({ "oneOf": [{ "type": "null" }, { "$ref": "#/components/schemas/Named" }] });
    assert_valid(nullable.clone(), json!(null));
    assert_valid(nullable.clone(), json!({ "id": UNKNOWN_ID }));
    let found = messages(nullable, json!({ "id": "nope" }));
    assert!(
        found.starts_with("$: {\"id\":\"nope\"} matches none of the oneOf schemas:"),
        "{found}"
    );
    assert!(
        found.contains("[0] $: expected null, got object"),
        "{found}"
    );
    assert!(found.contains("[1] id: \"nope\" is not a UUID"), "{found}");
}

#[test]
fn one_of_needs_exactly_one_match_and_any_of_at_least_one() {
    let number_or_small =
        json!({ "oneOf": [{ "type": "number" }, { "type": "integer", "maximum": 9 }] });
    assert_valid(number_or_small.clone(), json!(12));
    assert_valid(number_or_small.clone(), json!(0.5));
    assert_invalid(
        number_or_small.clone(),
        json!(5),
        "matches the oneOf schemas [0, 1]; exactly one must match",
    );
    assert_invalid(
        number_or_small,
        json!("5"),
        "matches none of the oneOf schemas",
    );

    let any = json!({ "anyOf": [{ "type": "number" }, { "type": "integer", "maximum": 9 }] });
    assert_valid(any.clone(), json!(5));
    assert_invalid(any, json!(true), "matches none of the anyOf schemas");

    let both = json!({ "allOf": [
        { "$ref": "#/components/schemas/Named" },
        { "type": "object", "required": ["extra"] }
    ] });
    assert_valid(both.clone(), json!({ "id": UNKNOWN_ID, "extra": 1 }));
    assert_invalid(
        both,
        json!({ "extra": 1 }),
        "the required property `id` is missing",
    );
}

#[test]
fn references_resolve_through_several_levels() {
    let document = document_with(json!({
        "Outer": { "type": "object", "properties": { "inner": { "$ref": "#/components/schemas/Middle" } } },
        "Middle": { "$ref": "#/components/schemas/Leaf" },
        "Leaf": { "type": "integer", "maximum": 1 },
    }));
    let validator = Validator::new(&document);
    assert!(
        validator
            .validate_at("#/components/schemas/Outer", &json!({ "inner": 1 }))
            .is_ok()
    );
    let found = validator
        .validate_at("#/components/schemas/Outer", &json!({ "inner": 2 }))
        .unwrap_err();
    assert_eq!(found[0].instance_path, "inner");
    assert_eq!(found[0].schema_path, "#/components/schemas/Leaf/maximum");
}

#[test]
fn annotations_and_boolean_schemas() {
    assert_valid(
        json!({
            "type": "string", "description": "d", "title": "t", "default": "x", "examples": ["x"],
            "example": "x", "deprecated": true, "readOnly": true, "writeOnly": false,
            "contentMediaType": "text/plain", "contentEncoding": "base64", "$comment": "c"
        }),
        json!("anything"),
    );
    assert_valid(json!({}), json!({ "free": ["form"] }));
    assert_valid(json!(true), json!(1));
    assert_invalid(json!(false), json!(1), "no value is allowed here");
}

#[test]
fn leading_look_aheads_of_a_pattern_are_checked() {
    // Relative, not leaving through `..`, not blank, no NUL.
    let path = json!({
        "type": "string",
        "pattern": r"^(?![\\/])(?!\.\.(?:[\\/]|$))(?=[^\x00]*[^ \t\x00])[^\x00]*$"
    });
    for valid in ["src/auth/login.rs", "docs/", "..hidden", "a/../b"] {
        assert_valid(path.clone(), json!(valid));
    }
    for invalid in ["/etc/passwd", "\\server", "../up", "..", "   ", "a\u{0}b"] {
        assert_invalid(path.clone(), json!(invalid), "does not match the pattern");
    }
    assert_valid(json!({ "pattern": "^(?=(a)b)ab" }), json!("abc"));
    assert_invalid(
        json!({ "pattern": "^(?=[)]x)" }),
        json!(")y"),
        "does not match",
    );
}

#[test]
#[should_panic(expected = "cannot be checked")]
fn a_look_around_elsewhere_stops_the_validator() {
    violations(json!({ "pattern": "a(?<=a)" }), json!("a"));
}

#[test]
#[should_panic(expected = "does not understand the JSON Schema keyword `if`")]
fn an_unknown_keyword_stops_the_validator() {
    violations(json!({ "type": "string", "if": {} }), json!("x"));
}

#[test]
#[should_panic(expected = "does not know the format `email`")]
fn an_unknown_format_stops_the_validator() {
    violations(
        json!({ "type": "string", "format": "email" }),
        json!("a@b.c"),
    );
}

#[test]
#[should_panic(
    expected = "#/components/schemas/Under/anyOf/1/format: the validator does not know the format `hostname`"
)]
fn the_audit_finds_unknown_formats() {
    let document = document_with(json!({
        "Under": { "anyOf": [{ "type": "integer" }, { "type": "string", "format": "hostname" }] }
    }));
    let validator = Validator::new(&document);
    validator.audit(
        &document["components"]["schemas"]["Under"],
        "#/components/schemas/Under",
    );
}

#[test]
#[should_panic(expected = "points nowhere")]
fn an_unresolved_reference_stops_the_validator() {
    violations(json!({ "$ref": "#/components/schemas/Missing" }), json!(1));
}

#[test]
#[should_panic(
    expected = "#/components/schemas/Wide/oneOf/1/properties/a: the validator does not understand the JSON Schema keyword `unevaluatedProperties`"
)]
fn the_audit_reaches_branches_no_value_visits() {
    let document = document_with(json!({
        "Wide": { "oneOf": [
            { "type": "null" },
            { "type": "object", "properties": { "a": { "unevaluatedProperties": false } } }
        ] }
    }));
    let validator = Validator::new(&document);
    assert!(
        validator
            .validate_at("#/components/schemas/Wide", &json!(null))
            .is_ok()
    );
    validator.audit(
        &document["components"]["schemas"]["Wide"],
        "#/components/schemas/Wide",
    );
}

// ---------------------------------------------------------------------------------------
// Calling the API and checking each exchange against the document.
// ---------------------------------------------------------------------------------------

/// The app under test, whatever type its service has.
trait Api {
    /// Sends `request` and reads the answer.
    async fn exchange(&self, request: actix_http::Request) -> Answer;
}

impl<S, B> Api for S
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    async fn exchange(&self, request: actix_http::Request) -> Answer {
        Answer::read(call_service(self, request).await).await
    }
}

/// What a request carries as its body.
#[derive(Debug, Clone)]
enum RequestBody {
    None,
    Json(Value),
    /// Text sent as `application/json` that is not JSON.
    Malformed(&'static str),
}

/// One request to an operation of the document, named by its path template.
#[derive(Debug, Clone)]
struct Call {
    method: Method,
    template: &'static str,
    path: Vec<(&'static str, String)>,
    query: Vec<(&'static str, String)>,
    body: RequestBody,
    token: Option<String>,
    /// The request breaks the document on purpose, so the document must refuse it too.
    breaks_document: bool,
    /// The status the scenario needs to go on (200 unless told otherwise).
    expected: StatusCode,
}

impl Call {
    fn new(method: Method, template: &'static str) -> Self {
        Self {
            method,
            template,
            path: Vec::new(),
            query: Vec::new(),
            body: RequestBody::None,
            token: None,
            breaks_document: false,
            expected: StatusCode::OK,
        }
    }

    fn get(template: &'static str) -> Self {
        Self::new(Method::GET, template)
    }

    fn head(template: &'static str) -> Self {
        Self::new(Method::HEAD, template)
    }

    fn post(template: &'static str) -> Self {
        Self::new(Method::POST, template)
    }

    fn patch(template: &'static str) -> Self {
        Self::new(Method::PATCH, template)
    }

    fn delete(template: &'static str) -> Self {
        Self::new(Method::DELETE, template)
    }

    /// Fills `{name}` of the path template.
    fn path(mut self, name: &'static str, value: impl ToString) -> Self {
        self.path.push((name, value.to_string()));
        self
    }

    fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    fn json(mut self, body: Value) -> Self {
        self.body = RequestBody::Json(body);
        self
    }

    fn malformed(mut self, text: &'static str) -> Self {
        self.body = RequestBody::Malformed(text);
        self
    }

    fn bearer(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    fn admin(self) -> Self {
        self.bearer(ADMIN_TOKEN)
    }

    fn breaking_the_document(mut self) -> Self {
        self.breaks_document = true;
        self
    }

    fn expect(mut self, status: StatusCode) -> Self {
        self.expected = status;
        self
    }

    /// `METHOD /path/{template}`, as operations are named in reports.
    fn operation(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    fn uri(&self) -> String {
        let mut uri = self.template.to_owned();
        for (name, value) in &self.path {
            let placeholder = format!("{{{name}}}");
            assert!(
                uri.contains(&placeholder),
                "{} has no {placeholder}",
                self.template
            );
            uri = uri.replace(&placeholder, &percent_encode(value));
        }
        assert!(
            !uri.contains('{'),
            "{}: a path parameter is not filled",
            self.template
        );
        for (index, (name, value)) in self.query.iter().enumerate() {
            uri.push(if index == 0 { '?' } else { '&' });
            uri.push_str(&format!("{name}={}", percent_encode(value)));
        }
        uri
    }

    fn to_request(&self) -> actix_http::Request {
        let mut request = TestRequest::default()
            .method(self.method.clone())
            .uri(&self.uri());
        if let Some(token) = &self.token {
            request = request.insert_header(("Authorization", format!("Bearer {token}")));
        }
        request = match &self.body {
            RequestBody::None => request,
            RequestBody::Json(body) => request.set_json(body),
            RequestBody::Malformed(text) => request
                .insert_header((CONTENT_TYPE, "application/json"))
                .set_payload(*text),
        };
        request.to_request()
    }

    /// The request in a line, for reports.
    fn describe(&self) -> String {
        let body = match &self.body {
            RequestBody::None => String::new(),
            RequestBody::Json(body) => format!(" {}", shorten(&body.to_string())),
            RequestBody::Malformed(text) => format!(" {text}"),
        };
        format!("{} {}{body}", self.method, self.uri())
    }
}

/// `text` with everything but unreserved characters percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

fn shorten(text: &str) -> String {
    const MAX_CHARS: usize = 200;
    if text.chars().count() <= MAX_CHARS {
        text.to_owned()
    } else {
        format!("{}...", text.chars().take(MAX_CHARS).collect::<String>())
    }
}

/// `name` as one JSON pointer token.
fn pointer_token(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// An answer of the app.
struct Answer {
    status: StatusCode,
    /// The media type of `Content-Type`, lowercase, without parameters.
    media_type: Option<String>,
    /// The body; None for an event stream, which never ends and is not read.
    body: Option<Bytes>,
}

impl Answer {
    async fn read<B: MessageBody>(response: ServiceResponse<B>) -> Self {
        let status = response.status();
        let media_type = response.headers().get(CONTENT_TYPE).map(|value| {
            let value = value.to_str().expect("a readable Content-Type");
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
        let body = if media_type.as_deref() == Some("text/event-stream") {
            None
        } else {
            Some(read_body(response).await)
        };
        Self {
            status,
            media_type,
            body,
        }
    }

    /// The body as JSON, or Null when there is none or it is not JSON.
    fn json(&self) -> Value {
        self.body
            .as_deref()
            .and_then(|body| serde_json::from_slice(body).ok())
            .unwrap_or(Value::Null)
    }
}

/// The operations of `document`, as `METHOD /path/{template}`.
fn documented_operations(document: &Value) -> BTreeSet<String> {
    const METHODS: &[&str] = &[
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    let paths = document["paths"].as_object().expect("the document's paths");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().expect("a path item").keys() {
            if METHODS.contains(&method.as_str()) {
                operations.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    operations
}

/// The JSON types a schema's values may have, following references and combinations.
fn schema_types<'d>(validator: Validator<'d>, schema: &'d Value, types: &mut BTreeSet<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        schema_types(validator, validator.resolve(reference), types);
    }
    match schema.get("type") {
        Some(Value::String(name)) => {
            types.insert(name.clone());
        }
        Some(Value::Array(names)) => {
            types.extend(names.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        _ => {}
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        for branch in schema
            .get(keyword)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            schema_types(validator, branch, types);
        }
    }
}

/// A parameter's text as the JSON value its schema describes: a number or a boolean when
/// the schema allows one and the text spells one, else the text.
fn parameter_value<'d>(validator: Validator<'d>, schema: &'d Value, raw: &str) -> Value {
    let mut types = BTreeSet::new();
    schema_types(validator, schema, &mut types);
    let numeric = types.contains("integer") || types.contains("number");
    if numeric && let Ok(number @ Value::Number(_)) = serde_json::from_str::<Value>(raw) {
        return number;
    }
    if types.contains("boolean")
        && let Ok(flag) = raw.parse::<bool>()
    {
        return Value::Bool(flag);
    }
    Value::String(raw.to_owned())
}

/// How `call` breaks the documented parameters and request body of `operation` (at
/// `at` in the document).
fn request_problems(document: &Value, at: &str, operation: &Value, call: &Call) -> Vec<String> {
    let validator = Validator::new(document);
    let mut problems = Vec::new();
    let mut documented = BTreeSet::new();
    let parameters = operation.get("parameters").map(|list| {
        list.as_array()
            .unwrap_or_else(|| panic!("{at}/parameters is not a list"))
    });
    for (index, parameter) in parameters.into_iter().flatten().enumerate() {
        let (parameter, parameter_at) = match parameter.get("$ref").and_then(Value::as_str) {
            Some(reference) => (validator.resolve(reference), reference.to_owned()),
            None => (parameter, format!("{at}/parameters/{index}")),
        };
        let name = parameter["name"].as_str().expect("a parameter's name");
        let location = parameter["in"].as_str().expect("a parameter's location");
        let required = parameter.get("required") == Some(&Value::Bool(true));
        let supplied = match location {
            "path" => &call.path,
            "query" => &call.query,
            "header" | "cookie" => {
                if required {
                    problems.push(format!(
                        "the required {location} parameter `{name}` is not sent"
                    ));
                }
                continue;
            }
            other => panic!("{parameter_at}: unknown parameter location {other:?}"),
        };
        documented.insert((location, name));
        let values: Vec<&String> = supplied
            .iter()
            .filter(|(supplied_name, _)| *supplied_name == name)
            .map(|(_, value)| value)
            .collect();
        if values.is_empty() && required {
            problems.push(format!(
                "the required {location} parameter `{name}` is missing"
            ));
        }
        let schema = parameter
            .get("schema")
            .unwrap_or_else(|| panic!("{parameter_at} has no schema"));
        let schema_at = format!("{parameter_at}/schema");
        for raw in values {
            let value = parameter_value(validator, schema, raw);
            if let Err(violations) = validator.validate(schema, &schema_at, &value) {
                for violation in violations {
                    problems.push(format!("{location} parameter `{name}`={raw}: {violation}"));
                }
            }
        }
    }
    for (location, supplied) in [("path", &call.path), ("query", &call.query)] {
        for (name, _) in supplied {
            if !documented.contains(&(location, *name)) {
                problems.push(format!(
                    "the {location} parameter `{name}` is not documented"
                ));
            }
        }
    }

    let (request_body, body_at) = match operation.get("requestBody") {
        None => (None, String::new()),
        Some(body) => match body.get("$ref").and_then(Value::as_str) {
            Some(reference) => (Some(validator.resolve(reference)), reference.to_owned()),
            None => (Some(body), format!("{at}/requestBody")),
        },
    };
    let sent = match &call.body {
        RequestBody::None => None,
        RequestBody::Json(value) => Some(Ok(value.clone())),
        RequestBody::Malformed(text) => Some(serde_json::from_str::<Value>(text)),
    };
    match (sent, request_body) {
        (None, Some(documented)) => {
            if documented.get("required") == Some(&Value::Bool(true)) {
                problems.push("the request body is required, and none is sent".to_owned());
            }
        }
        (None, None) => {}
        (Some(_), None) => problems.push("a body is sent, and the document has none".to_owned()),
        (Some(sent), Some(documented)) => {
            match documented.pointer("/content/application~1json/schema") {
                None => problems.push(format!(
                    "a JSON body is sent, and {body_at} documents no application/json schema"
                )),
                Some(schema) => match sent {
                    Err(err) => problems.push(format!("the request body is not JSON: {err}")),
                    Ok(value) => {
                        let schema_at = format!("{body_at}/content/application~1json/schema");
                        if let Err(violations) = validator.validate(schema, &schema_at, &value) {
                            problems.extend(
                                violations
                                    .iter()
                                    .map(|violation| format!("request body {violation}")),
                            );
                        }
                    }
                },
            }
        }
    }
    problems
}

/// How `answer` differs from what `operation` (at `at`) documents for its status.
fn response_problems(
    document: &Value,
    at: &str,
    operation: &Value,
    method: &Method,
    answer: &Answer,
) -> Vec<String> {
    let validator = Validator::new(document);
    let responses = operation["responses"]
        .as_object()
        .expect("an operation's responses");
    let code = answer.status.as_u16().to_string();
    let keys = [
        code.clone(),
        format!("{}XX", &code[..1]),
        "default".to_owned(),
    ];
    let Some(key) = keys.iter().find(|key| responses.contains_key(key.as_str())) else {
        let listed: Vec<&str> = responses.keys().map(String::as_str).collect();
        return vec![format!(
            "the status is not documented (documented: {})",
            listed.join(", ")
        )];
    };
    let (response, response_at) = match responses[key].get("$ref").and_then(Value::as_str) {
        Some(reference) => (validator.resolve(reference), reference.to_owned()),
        None => (&responses[key], format!("{at}/responses/{key}")),
    };
    let content = response.get("content").and_then(Value::as_object);
    let documented: Vec<&str> = content
        .map(|content| content.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let documented_text = if documented.is_empty() {
        "no body".to_owned()
    } else {
        format!("a body of {}", documented.join(" or "))
    };
    // HEAD answers carry the GET answer's headers and no body.
    if *method == Method::HEAD {
        return Vec::new();
    }
    let media_type = answer.media_type.as_deref();
    let Some(body) = &answer.body else {
        let stream = media_type.unwrap_or_default();
        return if documented.contains(&stream) {
            Vec::new()
        } else {
            vec![format!(
                "the answer is a {stream} stream; {response_at} documents {documented_text}"
            )]
        };
    };
    if body.is_empty() {
        return if documented.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "the answer has no body; {response_at} documents {documented_text}"
            )]
        };
    }
    let Some(media_type) = media_type else {
        return vec!["the answer has a body without a Content-Type".to_owned()];
    };
    let Some(media) = content.and_then(|content| content.get(media_type)) else {
        return vec![format!(
            "the answer has a body of {media_type}; {response_at} documents {documented_text}"
        )];
    };
    assert!(
        media_type == "application/json" || media_type.ends_with("+json"),
        "{response_at}: cannot check {media_type} bodies"
    );
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(err) => return vec![format!("the {media_type} body is not JSON: {err}")],
    };
    let Some(schema) = media.get("schema") else {
        return Vec::new();
    };
    let schema_at = format!("{response_at}/content/{}/schema", pointer_token(media_type));
    match validator.validate(schema, &schema_at, &value) {
        Ok(()) => Vec::new(),
        Err(violations) => violations
            .iter()
            .map(|violation| format!("response body {violation}"))
            .collect(),
    }
}

/// The document, the operations the scenario got a success from, and the mismatches
/// found so far.
struct Contract {
    document: Value,
    succeeded: BTreeSet<String>,
    mismatches: Vec<String>,
}

impl Contract {
    fn new(document: Value) -> Self {
        Self {
            document,
            succeeded: BTreeSet::new(),
            mismatches: Vec::new(),
        }
    }

    /// Sends `call` to `app` after checking it against the document, checks the answer
    /// against the document, and returns the answer's JSON body (Null when it has none).
    /// Panics when the status is not the one the call expects: the scenario cannot go on.
    async fn send(&mut self, app: &impl Api, call: Call) -> Value {
        let operation_name = call.operation();
        let at = format!(
            "#/paths/{}/{}",
            pointer_token(call.template),
            call.method.as_str().to_ascii_lowercase()
        );
        let operation = self.document.pointer(&at[1..]);
        let request_problems = match operation {
            Some(operation) => request_problems(&self.document, &at, operation, &call),
            None => Vec::new(),
        };
        let answer = app.exchange(call.to_request()).await;
        let status = answer.status;
        let here = format!("{operation_name} → {}", status.as_u16());

        match operation {
            None => self
                .mismatches
                .push(format!("{here}: the operation is not in the document")),
            Some(operation) => {
                if call.breaks_document {
                    if request_problems.is_empty() && status.is_client_error() {
                        self.mismatches.push(format!(
                            "{here}: the server refuses a request the document allows: {}; \
                             server says {}",
                            call.describe(),
                            shorten(&answer.json().to_string())
                        ));
                    }
                } else {
                    self.mismatches
                        .extend(request_problems.iter().map(|problem| {
                            format!("{operation_name} (request {}): {problem}", call.describe())
                        }));
                }
                for problem in
                    response_problems(&self.document, &at, operation, &call.method, &answer)
                {
                    self.mismatches.push(format!("{here}: {problem}"));
                }
            }
        }
        if status.is_success() {
            self.succeeded.insert(operation_name.clone());
        }
        assert!(
            status == call.expected,
            "{} answered {status} where the scenario expects {}: {}\n\
             mismatches so far:\n{}",
            call.describe(),
            call.expected,
            shorten(&answer.json().to_string()),
            self.mismatches.join("\n")
        );
        answer.json()
    }

    /// Sends each of `calls` in turn (see [`Contract::send`]), for calls whose answers
    /// the scenario does not read.
    async fn send_all(&mut self, app: &impl Api, calls: impl IntoIterator<Item = Call>) {
        for call in calls {
            self.send(app, call).await;
        }
    }

    /// Fails with every mismatch found, and with every documented operation the scenario
    /// never got a success from.
    fn finish(mut self) {
        for operation in documented_operations(&self.document).difference(&self.succeeded) {
            self.mismatches.push(format!(
                "{operation}: documented, but the scenario never got a success from it"
            ));
        }
        let mut seen = BTreeSet::new();
        self.mismatches
            .retain(|mismatch| seen.insert(mismatch.clone()));
        assert!(
            self.mismatches.is_empty(),
            "{} mismatches between the API and its OpenAPI document:\n{}",
            self.mismatches.len(),
            self.mismatches.join("\n")
        );
    }
}

#[actix_web::test]
async fn every_keyword_of_the_document_is_understood() {
    let backing = common::backing().await;
    let app = common::app(&backing).await;
    let (status, document) = common::send(&app, TestRequest::get().uri("/api/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let validator = Validator::new(&document);
    let schemas = document["components"]["schemas"].as_object();
    for (name, schema) in schemas.expect("the document's schemas") {
        validator.audit(
            schema,
            &format!("#/components/schemas/{}", pointer_token(name)),
        );
    }
    for (path, item) in document["paths"].as_object().expect("the document's paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let at = format!("#/paths/{}/{method}", pointer_token(path));
            let parameters = operation["parameters"].as_array().into_iter().flatten();
            for (index, parameter) in parameters.enumerate() {
                if let Some(schema) = parameter.get("schema") {
                    validator.audit(schema, &format!("{at}/parameters/{index}/schema"));
                }
            }
            let mut contents = vec![(format!("{at}/requestBody"), &operation["requestBody"])];
            for (status, response) in operation["responses"].as_object().into_iter().flatten() {
                contents.push((format!("{at}/responses/{status}"), response));
            }
            for (owner_at, owner) in contents {
                for (media, content) in owner["content"].as_object().into_iter().flatten() {
                    if let Some(schema) = content.get("schema") {
                        let media = pointer_token(media);
                        validator.audit(schema, &format!("{owner_at}/content/{media}/schema"));
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The scenario.
// ---------------------------------------------------------------------------------------

/// The tasks the scenario works on.
struct Tasks {
    /// The session schema: claimed, logged, locked, verified and completed.
    schema: String,
    /// The login, after the schema: fails with evidence, raises an exception, is retried
    /// by the retry policy.
    login: String,
    /// The documentation: claimed, a lock force-released, stopped, deleted.
    docs: String,
    /// The flaky test: fails, is retried by hand, queued through POST /api/agents.
    flaky: String,
}

/// A connected runner.
struct Runner {
    token: String,
    id: String,
}

/// The fields of a claim's answer that name its attempt in later reports.
fn lease_of(claim: &Value) -> Value {
    let claim = &claim["data"];
    json!({
        "agentId": claim["agent"]["id"],
        "taskId": claim["task"]["id"],
        "attempt": claim["lease"]["attempt"],
        "leaseToken": claim["lease"]["leaseToken"],
    })
}

/// `base` with the fields of `extra` added.
fn with(base: &Value, extra: Value) -> Value {
    let mut merged = base.clone();
    for (key, value) in extra.as_object().expect("an object") {
        merged[key] = value.clone();
    }
    merged
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

#[actix_web::test]
async fn every_operation_answers_as_documented() {
    let backing = common::backing().await;
    // The scenario sends far more requests than a client's budget allows in a minute;
    // rate limiting is checked on an app of its own at the end.
    let (app, _) = common::build(&backing, |state| state.with_rate_limits(None)).await;
    let (status, document) = common::send(&app, TestRequest::get().uri("/api/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let mut contract = Contract::new(document);

    health_and_document(&mut contract, &app).await;
    let tasks = queue_tasks(&mut contract, &app).await;
    let runner = connect_runner(&mut contract, &app, "build-box-1").await;
    tokens_and_connections(&mut contract, &app, &runner).await;
    let schema_agent = first_attempt(&mut contract, &app, &runner, &tasks).await;
    failures_exceptions_and_retries(&mut contract, &app, &runner, &tasks).await;
    stopped_attempt(&mut contract, &app, &runner, &tasks, &schema_agent).await;
    dashboard_cleanup_and_events(&mut contract, &app, &runner, &tasks).await;
    runner_sessions(&mut contract, &app, &runner).await;
    rate_limited(&mut contract, &backing).await;

    contract.finish();
}

async fn health_and_document(contract: &mut Contract, app: &impl Api) {
    contract
        .send_all(
            app,
            [
                Call::get("/api/openapi.json"),
                Call::get("/api/health"),
                Call::get("/api/health").query("detailed", true).admin(),
                Call::get("/api/health").query("detailed", false),
                Call::head("/api/health"),
                Call::get("/api/health")
                    .query("detailed", true)
                    .expect(StatusCode::UNAUTHORIZED),
                Call::get("/api/health")
                    .query("detailed", "maybe")
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
            ],
        )
        .await;
}

async fn queue_tasks(contract: &mut Contract, app: &impl Api) -> Tasks {
    let new_schema = json!({
        "title": "Design the session schema",
        "description": "Tables for sessions and refresh tokens, with their indexes.",
        "priority": 1,
        "riskLevel": "HIGH",
        "filesHint": ["src/auth/schema.rs"],
        "idempotencyKey": "session-schema",
        "maxAttempts": 3,
        "estimatedComplexity": "MEDIUM"
    });
    let create = Call::post("/api/tasks").admin().json(new_schema);
    let created = contract
        .send(app, create.clone().expect(StatusCode::CREATED))
        .await;
    let schema = text(&created["data"]["id"]);
    // The same idempotency key again: the task created before.
    contract.send(app, create).await;

    let batch = json!({ "tasks": [
        {
            "title": "Implement login",
            "description": "POST /login checks the password and opens a session.",
            "priority": 1,
            "dependsOn": [schema],
            "filesHint": ["src/auth/"],
            "riskLevel": "CRITICAL"
        },
        {
            "title": "Document the login flow",
            "description": "A page for operators.",
            "priority": 3,
            "filesHint": ["docs/login.md"],
            "notBefore": "2099-01-01T00:00:00Z",
            "estimatedComplexity": "SIMPLE"
        },
        {
            "title": "Fix the flaky session test",
            "description": "sessions::expiry fails one run in ten.",
            "maxAttempts": 5,
            "riskLevel": "LOW"
        }
    ] });
    let call = Call::post("/api/tasks/batch").admin().json(batch);
    let created = contract.send(app, call.expect(StatusCode::CREATED)).await;
    let id = |index: usize| text(&created["data"]["tasks"][index]["id"]);
    let tasks = Tasks {
        schema,
        login: id(0),
        docs: id(1),
        flaky: id(2),
    };

    let edit = json!({
        "title": "Document the login and logout flows",
        "description": "A page for operators, with diagrams.",
        "priority": 2,
        "riskLevel": "LOW",
        "filesHint": ["docs/login.md", "docs/logout.md"],
        "maxAttempts": 2,
        "estimatedComplexity": "MEDIUM",
        "notBefore": null
    });
    let long = "x".repeat(100_000);
    let over_the_body_limit: Vec<Value> = (0..11)
        .map(|index| json!({ "title": format!("part {index}"), "description": long }))
        .collect();
    let unknown_field = json!({ "title": "t", "description": "d", "colour": "red" });
    contract
        .send_all(
            app,
            [
                Call::get("/api/tasks")
                    .admin()
                    .query("status", "QUEUED")
                    .query("sortBy", "createdAt")
                    .query("sortOrder", "desc")
                    .query("limit", 10)
                    .query("offset", 0),
                Call::get("/api/tasks")
                    .admin()
                    .query("search", "login")
                    .query("priority", 1)
                    .query("fields", "description"),
                Call::get("/api/tasks")
                    .admin()
                    .query("idPrefix", &tasks.schema[..8]),
                Call::get("/api/tasks/{id}")
                    .admin()
                    .path("id", &tasks.login),
                Call::patch("/api/tasks/{id}")
                    .admin()
                    .path("id", &tasks.docs)
                    .json(edit),
                // Errors.
                Call::post("/api/tasks")
                    .json(json!({ "title": "t", "description": "d" }))
                    .expect(StatusCode::UNAUTHORIZED),
                Call::post("/api/tasks")
                    .admin()
                    .malformed("{\"title\":")
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::post("/api/tasks")
                    .admin()
                    .json(json!({ "title": "t" }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::post("/api/tasks")
                    .admin()
                    .json(json!({ "title": "t", "description": "d", "priority": 9 }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::post("/api/tasks")
                    .admin()
                    .json(unknown_field)
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::post("/api/tasks/batch")
                    .admin()
                    .json(json!({ "tasks": over_the_body_limit }))
                    .expect(StatusCode::PAYLOAD_TOO_LARGE),
                Call::post("/api/tasks/batch")
                    .admin()
                    .json(json!({ "tasks": [] }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/tasks")
                    .admin()
                    .query("limit", 0)
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/tasks")
                    .admin()
                    .query("status", "DONE")
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/tasks/{id}")
                    .admin()
                    .path("id", UNKNOWN_ID)
                    .expect(StatusCode::NOT_FOUND),
                Call::get("/api/tasks/{id}")
                    .admin()
                    .path("id", "not-a-uuid")
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::patch("/api/tasks/{id}")
                    .admin()
                    .path("id", &tasks.docs)
                    .json(json!({ "colour": "red" }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::patch("/api/tasks/{id}")
                    .admin()
                    .path("id", UNKNOWN_ID)
                    .json(json!({ "priority": 0 }))
                    .expect(StatusCode::NOT_FOUND),
                Call::delete("/api/tasks/{id}")
                    .admin()
                    .path("id", UNKNOWN_ID)
                    .expect(StatusCode::NOT_FOUND),
                Call::post("/api/tasks/{id}/run")
                    .admin()
                    .path("id", UNKNOWN_ID)
                    .expect(StatusCode::NOT_FOUND),
                Call::post("/api/tasks/{id}/retry")
                    .admin()
                    .path("id", &tasks.flaky)
                    .json(json!({ "workingDir": 5 }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
            ],
        )
        .await;
    tasks
}

/// Mints a connection token, exchanges its setup token, and returns the runner.
async fn connect_runner(contract: &mut Contract, app: &impl Api, name: &str) -> Runner {
    let minted = contract.send(app, Call::get("/api/connect").admin()).await;
    let connection = base64::engine::general_purpose::STANDARD
        .decode(text(&minted["data"]["connectionToken"]))
        .expect("a base64 connection token");
    let connection = String::from_utf8(connection).expect("a UTF-8 connection token");
    let (_, setup_token) = connection.split_once('|').expect("<url>|<setup token>");
    let exchange = json!({
        "setupToken": setup_token,
        "name": name,
        "workingDir": format!("/srv/{name}"),
        "runner": {
            "host": format!("{name}.example.com"),
            "version": "0.1.0",
            "backends": ["claude-code"]
        }
    });
    let connected = contract
        .send(app, Call::post("/api/connect").json(exchange))
        .await;
    Runner {
        token: text(&connected["data"]["runnerToken"]),
        id: text(&connected["data"]["runnerId"]),
    }
}

/// Tokens of the wrong kind, and bad connection and claim requests.
async fn tokens_and_connections(contract: &mut Contract, app: &impl Api, runner: &Runner) {
    let token = runner.token.as_str();
    contract
        .send_all(
            app,
            [
                Call::get("/api/runner/status").bearer(token),
                Call::get("/api/runner/status").query("runnerToken", token),
                Call::get("/api/connect").expect(StatusCode::UNAUTHORIZED),
                Call::get("/api/connect")
                    .bearer(token)
                    .expect(StatusCode::FORBIDDEN),
                Call::post("/api/connect")
                    .json(json!({ "setupToken": "forged:99999999999999" }))
                    .expect(StatusCode::UNAUTHORIZED),
                Call::post("/api/connect")
                    .json(json!({ "setupToken": "no-expiry" }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::post("/api/connect")
                    .json(json!({ "setupToken": 42 }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::post("/api/connect")
                    .json(json!({
                        "setupToken": "unspent:99999999999999",
                        "runner": { "backends": ["claude-code", "b".repeat(65)] }
                    }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/runner/status").expect(StatusCode::UNAUTHORIZED),
                Call::get("/api/runner/status")
                    .admin()
                    .expect(StatusCode::FORBIDDEN),
                Call::post("/api/tasks")
                    .bearer(token)
                    .json(json!({ "title": "t", "description": "d" }))
                    .expect(StatusCode::FORBIDDEN),
                Call::post("/api/runner/claim")
                    .json(json!({}))
                    .expect(StatusCode::UNAUTHORIZED),
                Call::post("/api/runner/claim")
                    .admin()
                    .json(json!({}))
                    .expect(StatusCode::FORBIDDEN),
                Call::post("/api/runner/claim")
                    .bearer(token)
                    .json(json!({ "max": 0 }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::post("/api/runner/claim")
                    .bearer(token)
                    .json(json!({ "waitMs": "soon" }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::post("/api/runner/status")
                    .json(json!({ "agentId": UNKNOWN_ID, "status": "PAUSED" }))
                    .expect(StatusCode::UNAUTHORIZED),
            ],
        )
        .await;
}

/// The schema task from claim to completion, with the routes that look at a running
/// attempt on the way; returns its agent.
async fn first_attempt(
    contract: &mut Contract,
    app: &impl Api,
    runner: &Runner,
    tasks: &Tasks,
) -> String {
    let token = runner.token.as_str();
    let claim = json!({
        "taskId": tasks.schema,
        "workingDir": "/srv/build-box-1/schema",
        "max": 1,
        "waitMs": 0,
        "leaseTtlMs": 120_000,
        "runner": {
            "host": "build-box-1.example.com",
            "version": "0.1.1",
            "backends": ["claude-code", "command"]
        }
    });
    let claimed = contract
        .send(
            app,
            Call::post("/api/runner/claim").bearer(token).json(claim),
        )
        .await;
    let lease = lease_of(&claimed);
    let agent = text(&lease["agentId"]);
    let heartbeat = Call::post("/api/runner/heartbeat").bearer(token);
    let logs = Call::post("/api/runner/logs").bearer(token);
    let locks = Call::post("/api/runner/locks").bearer(token);
    let task_states = Call::post("/api/runner/tasks").bearer(token);
    let slot_status = Call::post("/api/runner/status").bearer(token);
    let entries = json!({ "logs": [
        { "logType": "INFO", "content": "Reading src/auth", "timestamp": "2024-05-01T09:30:00Z" },
        { "logType": "THINKING", "content": "Sessions need an expiry index." },
        {
            "logType": "TOOL_CALL",
            "content": "edit src/auth/schema.rs",
            "metadata": { "tool": "edit", "path": "src/auth/schema.rs", "lines": [10, 42] }
        },
        { "logType": "TOOL_RESULT", "content": "applied 1 hunk" },
        { "logType": "ERROR", "content": "cargo check: unused import" },
        { "logType": "STATUS_CHANGE", "content": "checking" }
    ] });
    let changed = json!({ "paths": ["src/auth/session.rs", "migrations/0003_sessions.sql"] });
    contract
        .send_all(
            app,
            [
                heartbeat.clone().json(with(
                    &lease,
                    json!({ "status": "IN_PROGRESS", "leaseTtlMs": 120_000 }),
                )),
                logs.clone().json(with(&lease, entries)),
                locks.clone().json(with(&lease, changed)),
                task_states
                    .clone()
                    .json(json!({ "ids": [tasks.schema, tasks.login, UNKNOWN_ID] })),
                slot_status
                    .clone()
                    .json(json!({ "agentId": agent, "status": "PAUSED" })),
                // The runner token in the body.
                Call::post("/api/runner/status")
                    .json(json!({ "runnerToken": token, "agentId": agent, "status": "WORKING" })),
                Call::get("/api/runner/status").bearer(token),
                // Errors.
                heartbeat
                    .clone()
                    .json(with(&lease, json!({ "leaseToken": UNKNOWN_ID })))
                    .expect(StatusCode::CONFLICT),
                heartbeat
                    .clone()
                    .json(json!({ "agentId": agent, "taskId": tasks.schema, "attempt": 1 }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                logs.clone()
                    .json(with(
                        &lease,
                        json!({ "logs": [{ "logType": "SHOUT", "content": "x" }] }),
                    ))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                logs.json(with(&lease, json!({ "logs": [] })))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                locks
                    .json(with(&lease, json!({ "paths": "src/" })))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                task_states
                    .clone()
                    .json(json!({ "ids": [] }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                task_states
                    .json(json!({ "ids": ["not-a-uuid"] }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                slot_status
                    .clone()
                    .json(json!({}))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                slot_status
                    .json(json!({ "agentId": agent, "status": "ASLEEP" }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
            ],
        )
        .await;

    // Locks and agents while the attempt runs.
    let check = json!({
        "filePaths": ["src/auth/schema.rs", "src/auth/session.rs", "README.md"],
        "excludeAgentId": null
    });
    let agent_logs = Call::get("/api/agents/{id}/logs")
        .admin()
        .path("id", &agent);
    contract
        .send_all(
            app,
            [
                Call::get("/api/locks")
                    .admin()
                    .query("agentId", &agent)
                    .query("taskId", &tasks.schema)
                    .query("includeExpired", false)
                    .query("limit", 50),
                Call::get("/api/locks").admin(),
                Call::post("/api/locks/check").admin().json(check),
                Call::post("/api/locks/check")
                    .admin()
                    .json(json!({ "filePaths": ["src/auth/schema.rs"], "excludeAgentId": agent })),
                Call::get("/api/agents")
                    .admin()
                    .query("status", "WORKING")
                    .query("limit", 10)
                    .query("offset", 0),
                Call::get("/api/agents")
                    .admin()
                    .query("runnerSessionId", &runner.id)
                    .query("idPrefix", &agent[..8]),
                Call::get("/api/agents/{id}").admin().path("id", &agent),
                agent_logs
                    .clone()
                    .query("after", "2024-01-01T00:00:00Z")
                    .query("type", "TOOL_CALL")
                    .query("taskId", &tasks.schema),
                Call::patch("/api/agents/{id}")
                    .admin()
                    .path("id", &agent)
                    .json(json!({ "action": "pause" })),
                Call::patch("/api/agents/{id}")
                    .admin()
                    .path("id", &agent)
                    .json(json!({ "action": "resume" })),
                // Errors.
                Call::get("/api/locks")
                    .admin()
                    .query("limit", 0)
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/locks")
                    .admin()
                    .query("agentId", "agent-7")
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/locks").expect(StatusCode::UNAUTHORIZED),
                Call::post("/api/locks/check")
                    .admin()
                    .json(json!({}))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/agents")
                    .admin()
                    .query("status", "BUSY")
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/agents")
                    .bearer(token)
                    .expect(StatusCode::FORBIDDEN),
                Call::get("/api/agents/{id}")
                    .admin()
                    .path("id", UNKNOWN_ID)
                    .expect(StatusCode::NOT_FOUND),
                Call::get("/api/agents/{id}")
                    .path("id", &agent)
                    .expect(StatusCode::UNAUTHORIZED),
                agent_logs
                    .clone()
                    .query("type", "LOUD")
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/agents/{id}/logs")
                    .admin()
                    .path("id", UNKNOWN_ID)
                    .expect(StatusCode::NOT_FOUND),
                Call::patch("/api/agents/{id}")
                    .admin()
                    .path("id", &agent)
                    .json(json!({ "action": "explode" }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::patch("/api/agents/{id}")
                    .admin()
                    .path("id", UNKNOWN_ID)
                    .json(json!({ "action": "pause" }))
                    .expect(StatusCode::NOT_FOUND),
                // A slot at work cannot be retired.
                Call::delete("/api/agents/{id}")
                    .admin()
                    .path("id", &agent)
                    .expect(StatusCode::CONFLICT),
            ],
        )
        .await;
    // Paging back through the log by cursor.
    let page = contract
        .send(app, agent_logs.clone().query("limit", 2))
        .await;
    let cursor = text(&page["data"]["pagination"]["nextCursor"]);
    contract.send(app, agent_logs.query("before", cursor)).await;

    // Verification evidence recorded for the running attempt.
    let failures = json!([
        {
            "type": "test", "message": "sessions::expiry failed",
            "file": "tests/sessions.rs", "line": 42, "column": 7
        },
        { "type": "lint", "message": "unused import" }
    ]);
    let evidence = json!({
        "taskId": tasks.schema,
        "baseCommit": "4f2a9c1",
        "verification": {
            "passed": false,
            "confidenceScore": 0.4,
            "syntaxPassed": true,
            "typesPassed": true,
            "lintPassed": false,
            "testsPassed": false,
            "testsTotal": 12,
            "testsFailed": 1,
            "semanticScore": 0.7,
            "semanticExplanation": "The schema matches the task; one test fails.",
            "failures": failures,
            "recommendations": ["Index sessions by expiry"],
            "unverified": false,
            "stages": [
                {
                    "stage": "tests", "kind": "test", "status": "FAILED",
                    "failures": [failures[0]], "testsTotal": 12, "testsFailed": 1,
                    "durationMs": 1800
                },
                {
                    "stage": "lint", "kind": "lint", "status": "SKIPPED",
                    "reason": "no linter configured", "failures": [], "durationMs": 0
                },
                {
                    "stage": "semantic", "kind": "semantic", "status": "PASSED",
                    "failures": [], "score": 0.7, "durationMs": 950
                }
            ]
        }
    });
    let passed = json!({ "passed": true, "confidenceScore": 1.0 });
    let results = Call::get("/api/verify/{taskId}").admin();
    contract
        .send_all(
            app,
            [
                Call::post("/api/verify").admin().json(evidence),
                results
                    .clone()
                    .path("taskId", &tasks.schema)
                    .query("limit", 5),
                // Errors.
                Call::post("/api/verify")
                    .admin()
                    .json(json!({ "taskId": tasks.schema }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                // No directory on the server is open to verification.
                Call::post("/api/verify")
                    .admin()
                    .json(json!({ "taskId": tasks.schema, "workingDir": "/srv" }))
                    .expect(StatusCode::FORBIDDEN),
                Call::post("/api/verify")
                    .admin()
                    .json(json!({ "taskId": UNKNOWN_ID, "verification": passed }))
                    .expect(StatusCode::NOT_FOUND),
                // A queued task has nothing to verify.
                Call::post("/api/verify")
                    .admin()
                    .json(json!({ "taskId": tasks.flaky, "verification": passed }))
                    .expect(StatusCode::CONFLICT),
                Call::post("/api/verify")
                    .admin()
                    .json(json!({ "verification": passed }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                results
                    .clone()
                    .path("taskId", UNKNOWN_ID)
                    .expect(StatusCode::NOT_FOUND),
                results
                    .path("taskId", &tasks.schema)
                    .query("limit", 0)
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
            ],
        )
        .await;

    let done = with(
        &lease,
        json!({
            "success": true,
            "summary": "Session tables and indexes added",
            "commitSha": "0123456789abcdef0123456789abcdef01234567",
            "usage": {
                "inputTokens": 12_000, "outputTokens": 3_400,
                "cacheReadTokens": 8_000, "cacheWriteTokens": 1_000, "costUsd": 0.21
            },
            "backend": "claude-code",
            "model": "claude-sonnet-4-5",
            "diffStats": { "filesChanged": 3, "insertions": 120, "deletions": 4 },
            "changes": {
                "files": [
                    {
                        "path": "migrations/0003_sessions.sql", "status": "ADDED",
                        "insertions": 118, "deletions": 0, "binary": false
                    },
                    {
                        "path": "src/auth/session.rs", "oldPath": "src/auth/sessions.rs",
                        "status": "RENAMED", "insertions": 2, "deletions": 4, "binary": false
                    },
                    {
                        "path": "docs/sessions.png", "status": "MODIFIED",
                        "insertions": 0, "deletions": 0, "binary": true
                    }
                ],
                "omittedFiles": 0,
                "patch": "diff --git a/src/auth/sessions.rs b/src/auth/session.rs\n\
                          similarity index 90%\n\
                          rename from src/auth/sessions.rs\n\
                          rename to src/auth/session.rs\n\
                          --- a/src/auth/sessions.rs\n\
                          +++ b/src/auth/session.rs\n\
                          @@ -1,2 +1,2 @@\n\
                          -pub struct Sessions;\n\
                          +pub struct Session;\n",
                "truncated": true,
                "maxPatchBytes": 262_144
            },
            "verification": {
                "passed": true, "confidenceScore": 0.92, "syntaxPassed": true,
                "typesPassed": true, "lintPassed": true, "testsPassed": true,
                "testsTotal": 12, "testsFailed": 0
            }
        }),
    );
    let complete = Call::post("/api/runner/complete").bearer(token);
    let changes = Call::get("/api/tasks/{id}/changes").admin();
    contract
        .send_all(
            app,
            [
                complete.clone().json(done.clone()),
                // Completion is idempotent.
                complete.clone().json(done),
                changes.clone().path("id", &tasks.schema),
                changes
                    .clone()
                    .path("id", UNKNOWN_ID)
                    .expect(StatusCode::NOT_FOUND),
                changes
                    .path("id", "not-a-uuid")
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/tasks/{id}")
                    .admin()
                    .path("id", &tasks.schema),
                Call::get("/api/agents/{id}").admin().path("id", &agent),
                // Errors.
                complete
                    .json(lease.clone())
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                // A heartbeat on the ended attempt.
                heartbeat.json(lease).expect(StatusCode::CONFLICT),
            ],
        )
        .await;
    agent
}

/// Claims `task` and reports it under way; returns the lease.
async fn start(contract: &mut Contract, app: &impl Api, runner: &Runner, task: &str) -> Value {
    let claim = Call::post("/api/runner/claim")
        .bearer(&runner.token)
        .json(json!({ "taskId": task }));
    let lease = lease_of(&contract.send(app, claim).await);
    let heartbeat = Call::post("/api/runner/heartbeat")
        .bearer(&runner.token)
        .json(with(&lease, json!({ "status": "IN_PROGRESS" })));
    contract.send(app, heartbeat).await;
    lease
}

/// The login and the flaky test fail; the inbox, and retries by policy and by hand.
async fn failures_exceptions_and_retries(
    contract: &mut Contract,
    app: &impl Api,
    runner: &Runner,
    tasks: &Tasks,
) {
    let token = runner.token.as_str();
    let lease = start(contract, app, runner, &tasks.login).await;
    // Evidence recorded on its own: the failure then leaves the task FAILED with an
    // exception, and the retry policy is applied on request (auto-retry).
    let evidence = json!({
        "taskId": tasks.login,
        "verification": {
            "passed": false, "confidenceScore": 0.2, "testsPassed": false,
            "testsTotal": 10, "testsFailed": 3,
            "failures": [{ "type": "test", "message": "login_rejects_bad_password failed" }]
        }
    });
    let failed = with(
        &lease,
        json!({
            "success": false,
            "error": "3 tests failed",
            "usage": { "inputTokens": 9_000, "outputTokens": 2_000 }
        }),
    );
    contract
        .send_all(
            app,
            [
                Call::post("/api/verify").admin().json(evidence),
                Call::post("/api/runner/complete")
                    .bearer(token)
                    .json(failed),
            ],
        )
        .await;

    let inbox = Call::get("/api/exceptions").admin();
    let listed = contract
        .send(
            app,
            inbox
                .clone()
                .query("status", "ALL")
                .query("taskId", &tasks.login)
                .query("limit", 10)
                .query("offset", 0),
        )
        .await;
    let exception = text(&listed["data"]["exceptions"][0]["id"]);
    let decide = Call::patch("/api/exceptions/{id}").admin();
    let resolution = json!({
        "status": "RESOLVED",
        "resolutionNotes": "The password check compared hashes wrongly.",
        "resolvedBy": "alice"
    });
    contract
        .send_all(
            app,
            [
                inbox.clone(),
                inbox
                    .clone()
                    .query("status", "OPEN")
                    .query("severity", "ERROR")
                    .query("type", "VERIFICATION_FAILED")
                    .query("agentId", text(&lease["agentId"])),
                Call::get("/api/exceptions/{id}")
                    .admin()
                    .path("id", &exception),
                decide
                    .clone()
                    .path("id", &exception)
                    .json(json!({ "status": "ACKNOWLEDGED" })),
                decide.clone().path("id", &exception).json(resolution),
                // Errors.
                inbox
                    .clone()
                    .query("status", "NOPE")
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                inbox
                    .query("limit", 0)
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/exceptions").expect(StatusCode::UNAUTHORIZED),
                Call::get("/api/exceptions/{id}")
                    .admin()
                    .path("id", UNKNOWN_ID)
                    .expect(StatusCode::NOT_FOUND),
                decide
                    .clone()
                    .path("id", &exception)
                    .json(json!({ "status": "WHATEVER" }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                decide
                    .path("id", UNKNOWN_ID)
                    .json(json!({ "status": "DISMISSED" }))
                    .expect(StatusCode::NOT_FOUND),
            ],
        )
        .await;

    let login = |route: &'static str| Call::post(route).admin().path("id", &tasks.login);
    contract
        .send_all(
            app,
            [
                login("/api/tasks/{id}/auto-retry"),
                // It is queued now, so there is nothing to retry.
                login("/api/tasks/{id}/auto-retry").expect(StatusCode::CONFLICT),
                login("/api/tasks/{id}/retry").expect(StatusCode::CONFLICT),
                login("/api/tasks/{id}/run").json(json!({ "workingDir": "/srv/login" })),
            ],
        )
        .await;

    let lease = start(contract, app, runner, &tasks.flaky).await;
    let failed = with(&lease, json!({ "success": false, "error": "timed out" }));
    contract
        .send_all(
            app,
            [
                Call::post("/api/runner/complete")
                    .bearer(token)
                    .json(failed),
                Call::post("/api/tasks/{id}/retry")
                    .admin()
                    .path("id", &tasks.flaky)
                    .json(json!({})),
                Call::post("/api/agents")
                    .admin()
                    .json(json!({ "taskId": tasks.flaky, "workingDir": "/srv/flaky" }))
                    .expect(StatusCode::ACCEPTED),
                Call::post("/api/agents")
                    .admin()
                    .json(json!({ "taskId": UNKNOWN_ID }))
                    .expect(StatusCode::NOT_FOUND),
                Call::post("/api/agents")
                    .admin()
                    .json(json!({}))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::post("/api/runner/claim")
                    .bearer(token)
                    .json(json!({ "taskId": UNKNOWN_ID }))
                    .expect(StatusCode::NOT_FOUND),
            ],
        )
        .await;
}

/// The documentation task: a lock force-released, its agent stopped, the task deleted,
/// the idle agents retired.
async fn stopped_attempt(
    contract: &mut Contract,
    app: &impl Api,
    runner: &Runner,
    tasks: &Tasks,
    schema_agent: &str,
) {
    let lease = start(contract, app, runner, &tasks.docs).await;
    let agent = text(&lease["agentId"]);
    let release = json!({ "filePath": "docs/logout.md", "reason": "Handed to a technical writer" });
    contract
        .send_all(
            app,
            [
                Call::delete("/api/locks").admin().json(release),
                Call::delete("/api/locks")
                    .admin()
                    .json(json!({ "filePath": "nothing/holds/this.md" }))
                    .expect(StatusCode::NOT_FOUND),
                Call::delete("/api/locks")
                    .admin()
                    .json(json!({ "reason": "no path" }))
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::patch("/api/agents/{id}")
                    .admin()
                    .path("id", &agent)
                    .json(json!({ "action": "stop" })),
            ],
        )
        .await;
    let heartbeat = Call::post("/api/runner/heartbeat")
        .bearer(&runner.token)
        .json(lease.clone());
    let answer = contract.send(app, heartbeat).await;
    assert_eq!(answer["data"]["signal"], "stop", "{answer}");
    let stopped = with(&lease, json!({ "success": false, "cancelled": true }));
    let retire = |id: &str| Call::delete("/api/agents/{id}").admin().path("id", id);
    contract
        .send_all(
            app,
            [
                Call::post("/api/runner/complete")
                    .bearer(&runner.token)
                    .json(stopped),
                Call::delete("/api/tasks/{id}")
                    .admin()
                    .path("id", &tasks.docs),
                // A completed task stays.
                Call::delete("/api/tasks/{id}")
                    .admin()
                    .path("id", &tasks.schema)
                    .expect(StatusCode::CONFLICT),
                retire(&agent),
                retire(UNKNOWN_ID).expect(StatusCode::NOT_FOUND),
            ],
        )
        .await;
    if agent != schema_agent {
        contract.send(app, retire(schema_agent)).await;
    }
}

async fn dashboard_cleanup_and_events(
    contract: &mut Contract,
    app: &impl Api,
    runner: &Runner,
    tasks: &Tasks,
) {
    let token = runner.token.as_str();
    contract
        .send_all(
            app,
            [
                Call::get("/api/dashboard/stats").admin(),
                Call::get("/api/usage").admin(),
                Call::get("/api/usage")
                    .admin()
                    .query("since", "2024-05-01T00:00:00Z")
                    .query("until", "2025-05-01T00:00:00.000+02:00")
                    .query("topTasks", 5),
                Call::get("/api/cron/cleanup").bearer(CRON_SECRET),
                Call::get("/api/events")
                    .admin()
                    .query("taskId", &tasks.schema)
                    .query("after", 0),
                Call::get("/api/events").admin(),
                // Errors.
                Call::get("/api/dashboard/stats").expect(StatusCode::UNAUTHORIZED),
                Call::get("/api/dashboard/stats")
                    .bearer(token)
                    .expect(StatusCode::FORBIDDEN),
                Call::get("/api/usage").expect(StatusCode::UNAUTHORIZED),
                Call::get("/api/usage")
                    .bearer(token)
                    .expect(StatusCode::FORBIDDEN),
                // The window is the wrong way round, or too long.
                Call::get("/api/usage")
                    .admin()
                    .query("since", "2025-05-01T00:00:00Z")
                    .query("until", "2024-05-01T00:00:00Z")
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/usage")
                    .admin()
                    .query("since", "2020-01-01T00:00:00Z")
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/usage")
                    .admin()
                    .query("until", "soon")
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/usage")
                    .admin()
                    .query("topTasks", 101)
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                Call::get("/api/cron/cleanup").expect(StatusCode::UNAUTHORIZED),
                // The admin token is not the cron secret.
                Call::get("/api/cron/cleanup")
                    .admin()
                    .expect(StatusCode::UNAUTHORIZED),
                Call::get("/api/events").expect(StatusCode::UNAUTHORIZED),
                Call::get("/api/events")
                    .bearer(token)
                    .expect(StatusCode::FORBIDDEN),
                Call::get("/api/events")
                    .admin()
                    .query("after", "abc")
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
            ],
        )
        .await;
}

/// Listing and revoking runner sessions, by an admin and by the runners themselves.
async fn runner_sessions(contract: &mut Contract, app: &impl Api, runner: &Runner) {
    let spare = connect_runner(contract, app, "spare-box").await;
    let leaving = connect_runner(contract, app, "leaving-box").await;
    let revoke = |id: &str| Call::delete("/api/runners/{id}").path("id", id);
    let disconnect = Call::delete("/api/connect");
    contract
        .send_all(
            app,
            [
                Call::get("/api/runners")
                    .admin()
                    .query("limit", 10)
                    .query("status", "ACTIVE"),
                revoke(&spare.id).admin(),
                // Revoking twice is harmless.
                revoke(&spare.id).admin(),
                // The runner token in the body.
                disconnect
                    .clone()
                    .json(json!({ "runnerToken": leaving.token })),
                disconnect.clone().bearer(&runner.token),
                // Errors.
                Call::get("/api/runners")
                    .admin()
                    .query("status", "GONE")
                    .breaking_the_document()
                    .expect(StatusCode::BAD_REQUEST),
                revoke(UNKNOWN_ID).admin().expect(StatusCode::NOT_FOUND),
                revoke(&spare.id).expect(StatusCode::UNAUTHORIZED),
                Call::get("/api/runner/status")
                    .bearer(&spare.token)
                    .expect(StatusCode::UNAUTHORIZED),
                disconnect
                    .clone()
                    .bearer(&runner.token)
                    .expect(StatusCode::UNAUTHORIZED),
                disconnect.expect(StatusCode::UNAUTHORIZED),
            ],
        )
        .await;
}

/// A client over its budget is told so in the error envelope.
async fn rate_limited(contract: &mut Contract, backing: &common::Backing) {
    let one_a_minute = RateLimitConfig {
        per_minute: NonZeroU32::MIN,
        ..RateLimitConfig::default()
    };
    let (app, _) = common::build(backing, move |state| {
        state.with_rate_limits(Some(one_a_minute))
    })
    .await;
    let stats = Call::get("/api/dashboard/stats").admin();
    contract
        .send_all(
            &app,
            [stats.clone(), stats.expect(StatusCode::TOO_MANY_REQUESTS)],
        )
        .await;
}
