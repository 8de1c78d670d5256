//! The first characters of an id, as people type them from a short id (as with git's
//! abbreviated commits): a range of ids that the stores find through their primary key.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::error::{Error, Result};

/// The hyphenated, lower-case form every id is written in.
const LOWEST: &str = "00000000-0000-0000-0000-000000000000";
const HIGHEST: &str = "ffffffff-ffff-ffff-ffff-ffffffffffff";

/// The beginning of an id: 1 to 36 characters of its hyphenated form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPrefix(String);

impl IdPrefix {
    /// The lowest and the highest id that begin with this prefix.
    pub fn range(&self) -> (Uuid, Uuid) {
        let fill = |template: &str| {
            let id = format!("{}{}", self.0, &template[self.0.len()..]);
            Uuid::parse_str(&id).expect("a checked prefix completes to an id")
        };
        (fill(LOWEST), fill(HIGHEST))
    }

    /// Whether `id` begins with this prefix.
    pub fn matches(&self, id: impl Into<Uuid>) -> bool {
        id.into().hyphenated().to_string().starts_with(&self.0)
    }
}

/// In API documents: the beginning of a hyphenated id, in either case.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for IdPrefix {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        const HEX: &str = "[0-9a-fA-F]";
        let group = |len: usize, rest: Option<String>| match rest {
            None => format!("{HEX}{{0,{len}}}"),
            Some(rest) => format!("({HEX}{{0,{len}}}|{HEX}{{{len}}}-{rest})"),
        };
        let tail = group(4, Some(group(4, Some(group(4, Some(group(12, None)))))));
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!("^({HEX}{{1,8}}|{HEX}{{8}}-{tail})$")))
            .examples([serde_json::json!("3f2a9c1e")])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for IdPrefix {}

impl FromStr for IdPrefix {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let prefix = s.trim().to_ascii_lowercase();
        let fits = !prefix.is_empty()
            && prefix.len() <= LOWEST.len()
            && prefix.chars().zip(LOWEST.chars()).all(|(c, slot)| {
                if slot == '-' {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
        if !fits {
            return Err(Error::invalid(
                "idPrefix",
                format!(
                    "{s:?} is not the beginning of an id: give 1 to 36 characters of one, \
                     like 3f2a9c1e"
                ),
            ));
        }
        Ok(Self(prefix))
    }
}

impl fmt::Display for IdPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_the_range_of_ids_that_begin_with_it() {
        let prefix: IdPrefix = "3F2A9".parse().unwrap();
        let (low, high) = prefix.range();
        assert_eq!(low.to_string(), "3f2a9000-0000-0000-0000-000000000000");
        assert_eq!(high.to_string(), "3f2a9fff-ffff-ffff-ffff-ffffffffffff");
        assert!(prefix.matches(Uuid::parse_str("3f2a9c1e-0000-4000-8000-000000000000").unwrap()));
        assert!(!prefix.matches(Uuid::parse_str("3f2a8c1e-0000-4000-8000-000000000000").unwrap()));
        let whole: IdPrefix = "3f2a9c1e-0000-4000-8000-000000000000".parse().unwrap();
        assert_eq!(whole.range().0, whole.range().1);
        assert!("3f2a9c1e-".parse::<IdPrefix>().is_ok());
        for bad in [
            "",
            "xyz",
            "3f2a9c1e0",
            "3f2a9c1e-0000-4000-8000-0000000000000",
            "-",
        ] {
            let err = bad.parse::<IdPrefix>().unwrap_err();
            assert!(
                err.to_string().contains("beginning of an id"),
                "{bad}: {err}"
            );
        }
    }
}
