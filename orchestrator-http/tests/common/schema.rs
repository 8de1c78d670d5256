//! A JSON Schema validator for the part of JSON Schema 2020-12 that the OpenAPI 3.1
//! document of the API uses.
//!
//! It never passes a value silently: a keyword, `format` or `pattern` it cannot check
//! makes it panic with the keyword's name and place, so that something new in the
//! document is noticed and taught here rather than ignored. Annotations (descriptions,
//! defaults, examples...) are skipped on purpose. Each violation names the offending
//! value's JSON path and the schema's path.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Number, Value};

/// Keywords that only describe a value and never constrain it.
const ANNOTATIONS: &[&str] = &[
    "$comment",
    "contentEncoding",
    "contentMediaType",
    "default",
    "deprecated",
    "description",
    "example",
    "examples",
    "readOnly",
    "title",
    "writeOnly",
];

/// Keywords the validator checks.
const ASSERTIONS: &[&str] = &[
    "$ref",
    "additionalProperties",
    "allOf",
    "anyOf",
    "const",
    "enum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "format",
    "items",
    "maxItems",
    "maxLength",
    "maximum",
    "minItems",
    "minLength",
    "minimum",
    "oneOf",
    "pattern",
    "properties",
    "required",
    "type",
];

/// The values of `format` the validator checks.
const FORMATS: &[&str] = &[
    "uuid",
    "date",
    "date-time",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float",
    "double",
];

/// One way a value breaks its schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Where the value is, as `data.tasks[0].status` (empty for the whole value, shown
    /// as `$`).
    pub instance_path: String,
    /// The schema keyword that refused it, as a JSON pointer into the document.
    pub schema_path: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (schema {})",
            root_or(&self.instance_path),
            self.message,
            self.schema_path
        )
    }
}

/// Validates values against the schemas of one OpenAPI document, resolving `$ref`s
/// within it.
#[derive(Debug, Clone, Copy)]
pub struct Validator<'d> {
    document: &'d Value,
}

impl<'d> Validator<'d> {
    pub fn new(document: &'d Value) -> Self {
        Self { document }
    }

    /// The value a local reference (`#/components/schemas/Task`) points to; panics when it
    /// points nowhere or outside the document.
    pub fn resolve(&self, reference: &str) -> &'d Value {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local references are supported: {reference}"));
        self.document
            .pointer(pointer)
            .unwrap_or_else(|| panic!("the reference {reference} points nowhere"))
    }

    /// Checks `value` against the schema at `pointer` (`#/components/schemas/Task`).
    pub fn validate_at(&self, pointer: &str, value: &Value) -> Result<(), Vec<Violation>> {
        self.validate(self.resolve(pointer), pointer, value)
    }

    /// Checks `value` against `schema`, found in the document at `schema_path` (used in
    /// the violations' schema paths).
    pub fn validate(
        &self,
        schema: &'d Value,
        schema_path: &str,
        value: &Value,
    ) -> Result<(), Vec<Violation>> {
        let mut violations = Vec::new();
        self.check(schema, schema_path, value, "", &mut violations);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }

    /// Walks `schema` and every schema nested in it (not following references) and panics
    /// at the first keyword or format the validator does not know, reference that does
    /// not resolve or pattern it cannot check. This reaches branches that no validated
    /// value happened to visit.
    pub fn audit(&self, schema: &'d Value, schema_path: &str) {
        let map = match schema {
            Value::Bool(_) => return,
            Value::Object(map) => map,
            other => panic!("{schema_path} is not a schema: {other}"),
        };
        for keyword in map.keys() {
            known_keyword(keyword, schema_path);
        }
        if let Some(reference) = map.get("$ref") {
            let reference = reference
                .as_str()
                .unwrap_or_else(|| panic!("{schema_path}/$ref is not a string"));
            self.resolve(reference);
        }
        if let Some(pattern) = map.get("pattern") {
            let pattern = pattern
                .as_str()
                .unwrap_or_else(|| panic!("{schema_path}/pattern is not a string"));
            Pattern::new(pattern, &format!("{schema_path}/pattern"));
        }
        if let Some(format) = map.get("format") {
            known_format(format, &format!("{schema_path}/format"));
        }
        for (path, subschema) in subschemas(map, schema_path) {
            self.audit(subschema, &path);
        }
    }

    /// Adds to `out` every way `value` (at `path`) breaks `schema` (at `at`).
    fn check(
        &self,
        schema: &'d Value,
        at: &str,
        value: &Value,
        path: &str,
        out: &mut Vec<Violation>,
    ) {
        let map = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                out.push(violation(path, at, "no value is allowed here".to_owned()));
                return;
            }
            Value::Object(map) => map,
            other => panic!("{at} is not a schema: {other}"),
        };
        for keyword in map.keys() {
            known_keyword(keyword, at);
        }
        if let Some(reference) = map.get("$ref") {
            let reference = reference
                .as_str()
                .unwrap_or_else(|| panic!("{at}/$ref is not a string"));
            self.check(self.resolve(reference), reference, value, path, out);
        }
        if let Some(types) = map.get("type")
            && !check_type(types, &format!("{at}/type"), value, path, out)
        {
            // The other keywords would only restate that the value has the wrong type.
            return;
        }
        if let Some(allowed) = map.get("enum") {
            let allowed = allowed
                .as_array()
                .unwrap_or_else(|| panic!("{at}/enum is not an array"));
            if !allowed.iter().any(|candidate| same_json(candidate, value)) {
                let message = format!(
                    "{} is not one of {}",
                    brief(value),
                    Value::Array(allowed.clone())
                );
                out.push(violation(path, &format!("{at}/enum"), message));
            }
        }
        if let Some(expected) = map.get("const")
            && !same_json(expected, value)
        {
            let message = format!("{} is not the constant {expected}", brief(value));
            out.push(violation(path, &format!("{at}/const"), message));
        }
        if let Some(format) = map.get("format") {
            let format_at = format!("{at}/format");
            check_format(
                known_format(format, &format_at),
                &format_at,
                value,
                path,
                out,
            );
        }
        if let Value::Number(number) = value {
            check_bounds(map, at, number, path, out);
        }
        if let Value::String(text) = value {
            check_string(map, at, text, path, out);
        }
        if let Value::Array(items) = value {
            self.check_array(map, at, items, path, out);
        }
        if let Value::Object(object) = value {
            self.check_object(map, at, object, path, out);
        }
        self.check_combinations(map, at, value, path, out);
    }

    fn check_array(
        &self,
        map: &'d Map<String, Value>,
        at: &str,
        items: &[Value],
        path: &str,
        out: &mut Vec<Violation>,
    ) {
        if let Some(min) = count_keyword(map, "minItems", at)
            && items.len() < min
        {
            let message = format!("{} items, fewer than the minimum {min}", items.len());
            out.push(violation(path, &format!("{at}/minItems"), message));
        }
        if let Some(max) = count_keyword(map, "maxItems", at)
            && items.len() > max
        {
            let message = format!("{} items, more than the maximum {max}", items.len());
            out.push(violation(path, &format!("{at}/maxItems"), message));
        }
        if let Some(item_schema) = map.get("items") {
            let item_at = format!("{at}/items");
            for (index, item) in items.iter().enumerate() {
                self.check(item_schema, &item_at, item, &index_path(path, index), out);
            }
        }
    }

    fn check_object(
        &self,
        map: &'d Map<String, Value>,
        at: &str,
        object: &Map<String, Value>,
        path: &str,
        out: &mut Vec<Violation>,
    ) {
        let properties = match map.get("properties") {
            Some(Value::Object(properties)) => Some(properties),
            Some(_) => panic!("{at}/properties is not an object"),
            None => None,
        };
        if let Some(required) = map.get("required") {
            let required = required
                .as_array()
                .unwrap_or_else(|| panic!("{at}/required is not an array"));
            for name in required {
                let name = name
                    .as_str()
                    .unwrap_or_else(|| panic!("{at}/required holds a non-string: {name}"));
                if !object.contains_key(name) {
                    let message = format!("the required property `{name}` is missing");
                    out.push(violation(path, &format!("{at}/required"), message));
                }
            }
        }
        for (name, property) in object {
            let property_path = key_path(path, name);
            match properties.and_then(|properties| properties.get(name)) {
                Some(property_schema) => {
                    let property_at = format!("{at}/properties/{}", pointer_escape(name));
                    self.check(property_schema, &property_at, property, &property_path, out);
                }
                None => match map.get("additionalProperties") {
                    None | Some(Value::Bool(true)) => {}
                    Some(Value::Bool(false)) => {
                        let message = format!(
                            "the property `{name}` is not allowed (additionalProperties is false)"
                        );
                        out.push(violation(
                            path,
                            &format!("{at}/additionalProperties"),
                            message,
                        ));
                    }
                    Some(extra) => {
                        let extra_at = format!("{at}/additionalProperties");
                        self.check(extra, &extra_at, property, &property_path, out);
                    }
                },
            }
        }
    }

    /// `allOf`, `anyOf` and `oneOf`.
    fn check_combinations(
        &self,
        map: &'d Map<String, Value>,
        at: &str,
        value: &Value,
        path: &str,
        out: &mut Vec<Violation>,
    ) {
        if let Some(all) = map.get("allOf") {
            for (index, branch) in branches(all, "allOf", at).iter().enumerate() {
                self.check(branch, &format!("{at}/allOf/{index}"), value, path, out);
            }
        }
        if let Some(any) = map.get("anyOf") {
            let outcomes = self.branch_outcomes(any, "anyOf", at, value, path);
            if outcomes.iter().all(|outcome| outcome.is_err()) {
                let message = format!(
                    "{} matches none of the anyOf schemas:{}",
                    brief(value),
                    explain(&outcomes)
                );
                out.push(violation(path, &format!("{at}/anyOf"), message));
            }
        }
        if let Some(one) = map.get("oneOf") {
            let outcomes = self.branch_outcomes(one, "oneOf", at, value, path);
            let matching: Vec<usize> = outcomes
                .iter()
                .enumerate()
                .filter(|(_, outcome)| outcome.is_ok())
                .map(|(index, _)| index)
                .collect();
            match matching.len() {
                1 => {}
                0 => {
                    let message = format!(
                        "{} matches none of the oneOf schemas:{}",
                        brief(value),
                        explain(&outcomes)
                    );
                    out.push(violation(path, &format!("{at}/oneOf"), message));
                }
                _ => {
                    let message = format!(
                        "{} matches the oneOf schemas {matching:?}; exactly one must match",
                        brief(value)
                    );
                    out.push(violation(path, &format!("{at}/oneOf"), message));
                }
            }
        }
    }

    /// The violations of `value` against each branch of an `anyOf` or `oneOf`.
    fn branch_outcomes(
        &self,
        list: &'d Value,
        keyword: &str,
        at: &str,
        value: &Value,
        path: &str,
    ) -> Vec<Result<(), Vec<Violation>>> {
        branches(list, keyword, at)
            .iter()
            .enumerate()
            .map(|(index, branch)| {
                let mut violations = Vec::new();
                let branch_at = format!("{at}/{keyword}/{index}");
                self.check(branch, &branch_at, value, path, &mut violations);
                if violations.is_empty() {
                    Ok(())
                } else {
                    Err(violations)
                }
            })
            .collect()
    }
}

/// Panics unless the validator checks `keyword` or knows it to be an annotation.
fn known_keyword(keyword: &str, at: &str) {
    assert!(
        ASSERTIONS.contains(&keyword) || ANNOTATIONS.contains(&keyword),
        "{at}: the validator does not understand the JSON Schema keyword `{keyword}`; \
         teach it to check the keyword, or list it among the annotations"
    );
}

/// The name of a format the validator checks; panics at any other.
fn known_format<'s>(format: &'s Value, at: &str) -> &'s str {
    let format = format
        .as_str()
        .unwrap_or_else(|| panic!("{at} is not a string"));
    assert!(
        FORMATS.contains(&format),
        "{at}: the validator does not know the format `{format}`; teach it to check it"
    );
    format
}

/// The schemas nested directly in a schema object, with their paths.
fn subschemas<'d>(map: &'d Map<String, Value>, at: &str) -> Vec<(String, &'d Value)> {
    let mut nested = Vec::new();
    if let Some(properties) = map.get("properties") {
        let properties = properties
            .as_object()
            .unwrap_or_else(|| panic!("{at}/properties is not an object"));
        for (name, property) in properties {
            nested.push((
                format!("{at}/properties/{}", pointer_escape(name)),
                property,
            ));
        }
    }
    for keyword in ["items", "additionalProperties"] {
        if let Some(schema) = map.get(keyword) {
            nested.push((format!("{at}/{keyword}"), schema));
        }
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = map.get(keyword) {
            for (index, branch) in branches(list, keyword, at).iter().enumerate() {
                nested.push((format!("{at}/{keyword}/{index}"), branch));
            }
        }
    }
    nested
}

fn branches<'d>(list: &'d Value, keyword: &str, at: &str) -> &'d [Value] {
    match list {
        Value::Array(branches) if !branches.is_empty() => branches,
        _ => panic!("{at}/{keyword} is not a non-empty array"),
    }
}

/// The branches' violations, indented under the violation that sums them up.
fn explain(outcomes: &[Result<(), Vec<Violation>>]) -> String {
    let mut text = String::new();
    for (index, outcome) in outcomes.iter().enumerate() {
        if let Err(violations) = outcome {
            for violation in violations {
                text.push_str(&format!("\n    [{index}] {violation}"));
            }
        }
    }
    text
}

fn violation(path: &str, schema_path: &str, message: String) -> Violation {
    Violation {
        instance_path: path.to_owned(),
        schema_path: schema_path.to_owned(),
        message,
    }
}

/// The path of property `name` of the value at `path`.
fn key_path(path: &str, name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    match (path.is_empty(), plain) {
        (true, true) => name.to_owned(),
        (false, true) => format!("{path}.{name}"),
        (_, false) => format!("{}[{}]", root_or(path), Value::String(name.to_owned())),
    }
}

/// The path of item `index` of the array at `path`.
fn index_path(path: &str, index: usize) -> String {
    format!("{}[{index}]", root_or(path))
}

/// `path`, or `$` (the whole value) when it is empty.
fn root_or(path: &str) -> &str {
    if path.is_empty() { "$" } else { path }
}

/// `name` as one JSON pointer token.
fn pointer_escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// A value as shown in messages: its JSON, cut short when long.
fn brief(value: &Value) -> String {
    const MAX_CHARS: usize = 120;
    let text = value.to_string();
    if text.chars().count() <= MAX_CHARS {
        text
    } else {
        let cut: String = text.chars().take(MAX_CHARS).collect();
        format!("{cut}...")
    }
}

/// Equality of JSON values in JSON Schema's sense: numbers compare by value (1 == 1.0).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare(x, y) == Some(std::cmp::Ordering::Equal),
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(key, x)| ys.get(key).is_some_and(|y| same_json(x, y)))
        }
        _ => a == b,
    }
}

/// The JSON type names `value` has: an integral number is both "integer" and "number".
fn json_types(value: &Value) -> &'static [&'static str] {
    match value {
        Value::Null => &["null"],
        Value::Bool(_) => &["boolean"],
        Value::Number(number) if integer(number).is_some() => &["integer", "number"],
        Value::Number(_) => &["number"],
        Value::String(_) => &["string"],
        Value::Array(_) => &["array"],
        Value::Object(_) => &["object"],
    }
}

/// Checks `type` (a name or a list of names); whether the value has one of them.
fn check_type(
    types: &Value,
    at: &str,
    value: &Value,
    path: &str,
    out: &mut Vec<Violation>,
) -> bool {
    const NAMES: &[&str] = &[
        "null", "boolean", "integer", "number", "string", "array", "object",
    ];
    let allowed: Vec<&str> = match types {
        Value::String(name) => vec![name.as_str()],
        Value::Array(names) => names
            .iter()
            .map(|name| {
                name.as_str()
                    .unwrap_or_else(|| panic!("{at} holds a non-string: {name}"))
            })
            .collect(),
        other => panic!("{at} is neither a type name nor a list of them: {other}"),
    };
    for name in &allowed {
        assert!(NAMES.contains(name), "{at}: `{name}` is not a JSON type");
    }
    let has = json_types(value);
    if allowed.iter().any(|name| has.contains(name)) {
        return true;
    }
    let expected = if allowed.len() == 1 {
        allowed[0].to_owned()
    } else {
        format!("one of {}", allowed.join(", "))
    };
    let message = format!("expected {expected}, got {} {}", has[0], brief(value));
    out.push(violation(path, at, message));
    false
}

/// The exact value of an integral number (including one written with a fraction of 0,
/// such as 3.0), or None.
fn integer(number: &Number) -> Option<i128> {
    if let Some(signed) = number.as_i64() {
        return Some(i128::from(signed));
    }
    if let Some(unsigned) = number.as_u64() {
        return Some(i128::from(unsigned));
    }
    let float = number.as_f64()?;
    // i128 holds every integral f64 below 2^127; the cast below is exact for them.
    (float.fract() == 0.0 && float.abs() < 1.7e38).then_some(float as i128)
}

/// Orders two numbers exactly when both are integers, else as floats.
fn compare(a: &Number, b: &Number) -> Option<std::cmp::Ordering> {
    match (integer(a), integer(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// `minimum`, `maximum`, `exclusiveMinimum` and `exclusiveMaximum`.
fn check_bounds(
    map: &Map<String, Value>,
    at: &str,
    number: &Number,
    path: &str,
    out: &mut Vec<Violation>,
) {
    use std::cmp::Ordering::{Greater, Less};
    // Each bound: the keyword, the orderings of value against bound that break it, and how
    // the message words the bound.
    let bounds: [(&str, &[std::cmp::Ordering], &str); 4] = [
        ("minimum", &[Less], "less than the minimum"),
        ("maximum", &[Greater], "more than the maximum"),
        (
            "exclusiveMinimum",
            &[Less, std::cmp::Ordering::Equal],
            "not more than the exclusive minimum",
        ),
        (
            "exclusiveMaximum",
            &[Greater, std::cmp::Ordering::Equal],
            "not less than the exclusive maximum",
        ),
    ];
    for (keyword, breaking, wording) in bounds {
        let Some(bound) = map.get(keyword) else {
            continue;
        };
        let bound = match bound {
            Value::Number(bound) => bound,
            other => panic!("{at}/{keyword} is not a number: {other}"),
        };
        let ordering = compare(number, bound)
            .unwrap_or_else(|| panic!("{number} and {bound} cannot be compared"));
        if breaking.contains(&ordering) {
            let message = format!("{number} is {wording} {bound}");
            out.push(violation(path, &format!("{at}/{keyword}"), message));
        }
    }
}

/// `minLength`, `maxLength` (in characters) and `pattern` (found anywhere in the text,
/// as JSON Schema's patterns are not anchored).
fn check_string(
    map: &Map<String, Value>,
    at: &str,
    text: &str,
    path: &str,
    out: &mut Vec<Violation>,
) {
    let length = text.chars().count();
    if let Some(min) = count_keyword(map, "minLength", at)
        && length < min
    {
        let message = format!("{length} characters, fewer than the minimum {min}");
        out.push(violation(path, &format!("{at}/minLength"), message));
    }
    if let Some(max) = count_keyword(map, "maxLength", at)
        && length > max
    {
        let message = format!("{length} characters, more than the maximum {max}");
        out.push(violation(path, &format!("{at}/maxLength"), message));
    }
    if let Some(pattern) = map.get("pattern") {
        let pattern = pattern
            .as_str()
            .unwrap_or_else(|| panic!("{at}/pattern is not a string"));
        if !Pattern::new(pattern, &format!("{at}/pattern")).is_match(text) {
            let message = format!(
                "{} does not match the pattern {pattern:?}",
                brief(&Value::String(text.to_owned()))
            );
            out.push(violation(path, &format!("{at}/pattern"), message));
        }
    }
}

/// A `pattern`: an ECMA-262 regular expression, found anywhere in the text.
///
/// The regex crate has no look-around. Look-aheads at the very start of an anchored
/// pattern (`^(?!a)(?=b)c`), the idiom for stating several conditions on a whole text,
/// are checked as patterns of their own anchored at the start (`^a` must not match, `^b`
/// must, and so must `^c`). A look-around anywhere else makes the pattern unsupported.
struct Pattern {
    /// Look-aheads at the start, each with whether it must match.
    lookaheads: Vec<(bool, Regex)>,
    main: Regex,
}

impl Pattern {
    /// The pattern `source` found at `at`; panics when it cannot be checked.
    fn new(source: &str, at: &str) -> Self {
        let compile = |pattern: &str| {
            Regex::new(pattern).unwrap_or_else(|err| {
                panic!("{at}: the pattern {source:?} cannot be checked: {err}")
            })
        };
        let Some(mut rest) = source.strip_prefix('^') else {
            return Self {
                lookaheads: Vec::new(),
                main: compile(source),
            };
        };
        let mut lookaheads = Vec::new();
        loop {
            let positive = if rest.starts_with("(?=") {
                true
            } else if rest.starts_with("(?!") {
                false
            } else {
                break;
            };
            let end = group_end(rest)
                .unwrap_or_else(|| panic!("{at}: unbalanced group in the pattern {source:?}"));
            lookaheads.push((positive, compile(&format!("^(?:{})", &rest[3..end]))));
            rest = &rest[end + 1..];
        }
        Self {
            lookaheads,
            main: compile(&format!("^{rest}")),
        }
    }

    fn is_match(&self, text: &str) -> bool {
        self.lookaheads
            .iter()
            .all(|(positive, regex)| regex.is_match(text) == *positive)
            && self.main.is_match(text)
    }
}

/// The index of the `)` closing the group that opens `pattern`, skipping escaped
/// characters and character classes.
fn group_end(pattern: &str) -> Option<usize> {
    let mut depth = 0_usize;
    let mut in_class = false;
    let mut chars = pattern.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => {
                depth -= 1;
                if depth == 0 {
                    return Some(index);
                }
            }
            _ => {}
        }
    }
    None
}

/// A keyword whose value is a count (`minItems`, `maxLength`...).
fn count_keyword(map: &Map<String, Value>, keyword: &str, at: &str) -> Option<usize> {
    map.get(keyword).map(|count| {
        count
            .as_u64()
            .and_then(|count| usize::try_from(count).ok())
            .unwrap_or_else(|| panic!("{at}/{keyword} is not a count: {count}"))
    })
}

/// Checks `format`, one of [`FORMATS`]. A format constrains only values of the type it describes (a
/// `date-time` format says nothing about a null), so other values pass it.
fn check_format(format: &str, at: &str, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let problem = match format {
        "uuid" => value
            .as_str()
            .filter(|text| !is_uuid(text))
            .map(|_| "is not a UUID (8-4-4-4-12 hexadecimal digits)".to_owned()),
        "date" => value
            .as_str()
            .and_then(|text| full_date_problem(text).err()),
        "date-time" => value.as_str().and_then(|text| rfc3339_problem(text).err()),
        "int8" => integer_range(value, i128::from(i8::MIN), i128::from(i8::MAX)),
        "uint8" => integer_range(value, 0, i128::from(u8::MAX)),
        "int16" => integer_range(value, i128::from(i16::MIN), i128::from(i16::MAX)),
        "uint16" => integer_range(value, 0, i128::from(u16::MAX)),
        "int32" => integer_range(value, i128::from(i32::MIN), i128::from(i32::MAX)),
        "uint32" => integer_range(value, 0, i128::from(u32::MAX)),
        "int64" => integer_range(value, i128::from(i64::MIN), i128::from(i64::MAX)),
        "uint64" => integer_range(value, 0, i128::from(u64::MAX)),
        "float" => value
            .as_f64()
            .filter(|float| float.abs() > f64::from(f32::MAX))
            .map(|_| "is outside the range of a 32-bit float".to_owned()),
        // Every JSON number serde_json holds is a finite 64-bit float at most.
        "double" => None,
        other => unreachable!("{at}: `{other}` is not among the formats checked"),
    };
    if let Some(problem) = problem {
        out.push(violation(path, at, format!("{} {problem}", brief(value))));
    }
}

/// Why a number is not an integer in `min..=max`, if it is not. Non-numbers pass.
fn integer_range(value: &Value, min: i128, max: i128) -> Option<String> {
    let Value::Number(number) = value else {
        return None;
    };
    match integer(number) {
        None => Some("is not an integer".to_owned()),
        Some(n) if n < min || n > max => Some(format!("is outside {min}..={max}")),
        Some(_) => None,
    }
}

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(index, c)| match index {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Checks an RFC 3339 date-time (`2024-02-29T23:59:60.5+01:00`): its shape, and that the
/// month, day, hour, minute, second and offset are in range.
fn rfc3339_problem(text: &str) -> Result<(), String> {
    static SHAPE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))$",
        )
        .expect("the RFC 3339 pattern compiles")
    });
    let captures = SHAPE
        .captures(text)
        .ok_or("is not an RFC 3339 date-time (YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm))")?;
    let field = |index: usize| -> u32 {
        captures
            .get(index)
            .map_or(0, |digits| digits.as_str().parse().expect("digits"))
    };
    calendar_problem(field(1), field(2), field(3))?;
    // Second 60 is a leap second.
    let (hour, minute, second) = (field(4), field(5), field(6));
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!(
            "has no time {hour:02}:{minute:02}:{second:02} in a day"
        ));
    }
    let (offset_hours, offset_minutes) = (field(8), field(9));
    if offset_hours > 23 || offset_minutes > 59 {
        return Err(format!(
            "has no offset of {offset_hours:02}:{offset_minutes:02}"
        ));
    }
    Ok(())
}

/// Checks an RFC 3339 full-date (`2024-02-29`): its shape, and that the month and day are
/// in range.
fn full_date_problem(text: &str) -> Result<(), String> {
    static SHAPE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(\d{4})-(\d{2})-(\d{2})$").expect("the full-date pattern compiles")
    });
    let captures = SHAPE
        .captures(text)
        .ok_or("is not an RFC 3339 full-date (YYYY-MM-DD)")?;
    let field = |index: usize| -> u32 { captures[index].parse().expect("digits") };
    calendar_problem(field(1), field(2), field(3))
}

/// Why `year`-`month`-`day` is not a day of the Gregorian calendar, if it is not.
fn calendar_problem(year: u32, month: u32, day: u32) -> Result<(), String> {
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(format!("has no month {month}")),
    };
    if !(1..=days_in_month).contains(&day) {
        return Err(format!("has no day {day} in month {month} of {year}"));
    }
    Ok(())
}
