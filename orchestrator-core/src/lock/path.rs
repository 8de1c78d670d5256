//! [`LockPath`]: a normalized, repository-relative path that a lock covers.
//!
//! `\` becomes `/`, repeated slashes and `.` segments collapse, `..` is resolved and may
//! not leave the repository, absolute paths are refused. Every path covers everything
//! below it: the server cannot see the repository to tell a directory named without a
//! trailing `/` from a file, and below a file there is nothing to cover. A trailing `/`
//! (or `.`) is kept in the key as the caller's mark of a directory; `./` is the whole
//! repository. Segments compare exactly, so `src/a` and `src/ab` never overlap.

use std::fmt;

use crate::error::{Error, Result};

/// The key of the repository root, a directory covering every path.
pub const ROOT_KEY: &str = "./";

/// The longest path accepted, in bytes (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4_096;

/// The most components a path may have.
pub const MAX_PATH_DEPTH: usize = 64;

/// A normalized lock target. See the module documentation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockPath {
    segments: Vec<String>,
    directory: bool,
}

impl LockPath {
    /// Normalizes `input`; the error names `field` and says what is wrong.
    pub fn parse_field(input: &str, field: &str) -> Result<Self> {
        if input.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n')) {
            return Err(Error::invalid(field, "a path must not be empty"));
        }
        if input.len() > MAX_PATH_BYTES {
            return Err(Error::invalid(
                field,
                format!(
                    "a path may be at most {MAX_PATH_BYTES} bytes long; this one has {}",
                    input.len()
                ),
            ));
        }
        if input.contains('\0') {
            return Err(Error::invalid(
                field,
                "a path must not contain NUL characters",
            ));
        }
        let unified = input.replace('\\', "/");
        if unified.starts_with('/') || has_drive_prefix(&unified) {
            return Err(Error::invalid(
                field,
                format!("{input:?} is absolute; give a path relative to the repository root"),
            ));
        }
        let mut segments: Vec<String> = Vec::new();
        for segment in unified.split('/') {
            match segment {
                "" | "." => {}
                ".." => {
                    if segments.pop().is_none() {
                        return Err(Error::invalid(
                            field,
                            format!("{input:?} leaves the repository through `..`"),
                        ));
                    }
                }
                name => {
                    if segments.len() == MAX_PATH_DEPTH {
                        return Err(Error::invalid(
                            field,
                            format!("a path may have at most {MAX_PATH_DEPTH} components"),
                        ));
                    }
                    segments.push(name.to_owned());
                }
            }
        }
        let last = unified.rsplit('/').next().unwrap_or_default();
        let directory = segments.is_empty() || unified.ends_with('/') || matches!(last, "." | "..");
        Ok(Self {
            segments,
            directory,
        })
    }

    /// Normalizes `input`, naming the field `path` in errors.
    pub fn parse(input: &str) -> Result<Self> {
        Self::parse_field(input, "path")
    }

    /// The canonical text: `src/lib.rs`, `src/` for a directory, `./` for the root.
    pub fn key(&self) -> String {
        if self.segments.is_empty() {
            ROOT_KEY.to_owned()
        } else if self.directory {
            format!("{}/", self.segments.join("/"))
        } else {
            self.segments.join("/")
        }
    }

    /// The path's segments, root first (empty for the repository root).
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// Whether two locks on these paths would cover a common file: one lies in the other
    /// or below it.
    pub fn overlaps(&self, other: &LockPath) -> bool {
        let (short, long) = if self.segments.len() <= other.segments.len() {
            (self, other)
        } else {
            (other, self)
        };
        long.segments.starts_with(&short.segments)
    }

    /// Whether a lock on this path covers `other`: `other` is this path or lies below it.
    pub fn covers(&self, other: &LockPath) -> bool {
        other.segments.starts_with(&self.segments)
    }

    /// The directory this path lies in (the root for a top-level path and for the root).
    pub fn parent_directory(&self) -> LockPath {
        let depth = self.segments.len().saturating_sub(1);
        LockPath {
            segments: self.segments[..depth].to_vec(),
            directory: true,
        }
    }

    /// Keys of every lock that covers this path from above or names it exactly: the
    /// root, and each ancestor and the path itself, with and without the trailing `/`.
    pub fn covering_keys(&self) -> Vec<String> {
        let mut keys = Vec::with_capacity(1 + 2 * self.segments.len());
        keys.push(ROOT_KEY.to_owned());
        let mut prefix = String::with_capacity(self.key_bytes());
        for segment in &self.segments {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(segment);
            keys.push(format!("{prefix}/"));
            keys.push(prefix.clone());
        }
        keys
    }

    /// Bytes of every key [`LockPath::covering_keys`] lists, counted without making them:
    /// what indexing and looking up this path costs.
    pub fn key_bytes(&self) -> usize {
        let mut prefix = 0;
        let mut total = ROOT_KEY.len();
        for segment in &self.segments {
            prefix += segment.len() + usize::from(prefix > 0);
            total += 2 * prefix + 1;
        }
        total
    }

    /// The half-open key range `[start, end)` holding every path below this one.
    pub fn descendant_range(&self) -> DescendantRange {
        if self.segments.is_empty() {
            return DescendantRange::Everything;
        }
        let joined = self.segments.join("/");
        // Every key below starts with `joined/`; `0` is the byte after `/`.
        DescendantRange::Keys {
            start: format!("{joined}/"),
            end: format!("{joined}0"),
        }
    }
}

/// Which keys lie below a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescendantRange {
    /// The root: every key.
    Everything,
    /// Keys `k` with `start <= k < end` in byte order.
    Keys { start: String, end: String },
}

impl DescendantRange {
    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &str) -> bool {
        match self {
            Self::Everything => true,
            Self::Keys { start, end } => start.as_str() <= key && key < end.as_str(),
        }
    }
}

fn has_drive_prefix(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

/// In API documents: the rules [`LockPath::parse_field`] checks that a pattern can state
/// (a `..` deeper in the path may still leave the repository, and depth is not stated).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for LockPath {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A path relative to the repository root (a trailing `/` marks a directory): \
                 not absolute, not leaving the repository through `..`, at most 4,096 bytes \
                 and 64 components",
            ))
            .min_length(Some(1))
            .max_length(Some(MAX_PATH_BYTES))
            .pattern(Some(
                r"^(?![\\/])(?![A-Za-z]:)(?!\.\.(?:[\\/]|$))(?=[^\x00]*[^ \t\r\n\x00])[^\x00]*$",
            ))
            .examples([serde_json::json!("src/auth/login.rs")])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for LockPath {}

impl fmt::Display for LockPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

impl fmt::Debug for LockPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockPath({})", self.key())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(input: &str) -> String {
        LockPath::parse(input).unwrap().key()
    }

    #[test]
    fn paths_past_the_length_or_depth_limit_are_refused_naming_the_limit() {
        let longest = "a".repeat(MAX_PATH_BYTES);
        assert!(LockPath::parse(&longest).is_ok());
        let err = LockPath::parse_field(&format!("{longest}b"), "paths[3]").unwrap_err();
        assert!(
            err.to_string().contains("paths[3]") && err.to_string().contains("4096 bytes"),
            "{err}"
        );
        let deepest = vec!["d"; MAX_PATH_DEPTH].join("/");
        assert_eq!(
            LockPath::parse(&deepest).unwrap().segments().len(),
            MAX_PATH_DEPTH
        );
        let err = LockPath::parse(&format!("{deepest}/e")).unwrap_err();
        assert!(err.to_string().contains("at most 64 components"), "{err}");
        // `..` gives depth back.
        let wandering = vec!["d/.."; 200].join("/");
        assert_eq!(key(&format!("{wandering}/x")), "x");
    }

    #[test]
    fn normalizes_separators_dots_and_repeats() {
        assert_eq!(key("src\\auth\\login.rs"), "src/auth/login.rs");
        assert_eq!(key("./src//auth/./login.rs"), "src/auth/login.rs");
        assert_eq!(key("src/auth/"), "src/auth/");
        assert_eq!(key("src/auth/."), "src/auth/");
        assert_eq!(key("src/x/../auth"), "src/auth");
        assert_eq!(key("."), "./");
        assert_eq!(key("./"), "./");
        assert_eq!(key("docs/数据库/"), "docs/数据库/");
    }

    #[test]
    fn refuses_escapes_and_absolute_paths_with_the_field_named() {
        for bad in [
            "../x",
            "src/../../x",
            "/etc/passwd",
            "\\\\server\\share",
            "C:\\x",
            "c:x",
            "",
        ] {
            match LockPath::parse_field(bad, "filesHint[2]") {
                Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "filesHint[2]"),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn directories_cover_below_and_siblings_do_not_overlap() {
        let overlaps = |a: &str, b: &str| {
            LockPath::parse(a)
                .unwrap()
                .overlaps(&LockPath::parse(b).unwrap())
        };
        assert!(overlaps("src/", "src/a.rs"));
        assert!(overlaps("src/a.rs", "src/"));
        assert!(overlaps("./", "anything/at/all"));
        assert!(overlaps("src/a", "src/a"));
        assert!(
            overlaps("src/a", "src/a/"),
            "a file and a directory of the same name"
        );
        assert!(!overlaps("src/a", "src/ab"));
        assert!(!overlaps("src/a/", "src/ab/"));
        assert!(!overlaps("src/a", "src/a.rs"));
        assert!(
            overlaps("src/components", "src/components/button.tsx"),
            "a directory named without a trailing slash covers what is below it"
        );
    }

    #[test]
    fn covering_keys_and_ranges_find_every_overlap() {
        for named in ["src/a/", "src/a"] {
            let range = LockPath::parse(named).unwrap().descendant_range();
            assert!(range.contains("src/a/b.rs") && range.contains("src/a/"));
            assert!(!range.contains("src/ab") && !range.contains("src/a"));
            assert!(!range.contains("src/a.rs") && !range.contains("src/aü"));
        }
        let file = LockPath::parse("src/a/b.rs").unwrap();
        assert_eq!(
            file.covering_keys(),
            [
                "./",
                "src/",
                "src",
                "src/a/",
                "src/a",
                "src/a/b.rs/",
                "src/a/b.rs"
            ]
        );
        assert_eq!(
            LockPath::parse("./").unwrap().descendant_range(),
            DescendantRange::Everything
        );
        let deepest = vec!["dir"; MAX_PATH_DEPTH].join("/");
        for path in ["./", "src/a/b.rs", "ü/ß", deepest.as_str()] {
            let path = LockPath::parse(path).unwrap();
            let listed: usize = path.covering_keys().iter().map(String::len).sum();
            assert_eq!(path.key_bytes(), listed, "{}", path.key());
        }
    }

    /// An independent, deliberately naive model: the set of entries (from a small universe)
    /// that a raw path covers — the one it names and everything below it.
    fn covered(raw: &str, universe: &[Vec<String>]) -> Vec<Vec<String>> {
        let unified = raw.replace('\\', "/");
        let mut stack: Vec<String> = Vec::new();
        for part in unified.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    stack.pop();
                }
                name => stack.push(name.to_owned()),
            }
        }
        universe
            .iter()
            .filter(|entry| entry.len() >= stack.len() && entry[..stack.len()] == stack[..])
            .cloned()
            .collect()
    }

    fn universe(names: &[&str]) -> Vec<Vec<String>> {
        let mut all = vec![Vec::new()];
        let mut layer: Vec<Vec<String>> = vec![Vec::new()];
        for _ in 0..3 {
            let mut next = Vec::new();
            for prefix in &layer {
                for name in names {
                    let mut path = prefix.clone();
                    path.push((*name).to_owned());
                    next.push(path);
                }
            }
            all.extend(next.iter().cloned());
            layer = next;
        }
        all
    }

    const NAMES: &[&str] = &["a", "ab", "b", "ü"];

    fn raw_path() -> impl Strategy<Value = String> {
        let part = prop::sample::select(vec!["a", "ab", "b", "ü", ".", "", ".."]);
        let separator = prop::sample::select(vec!["/", "\\", "//"]);
        (
            prop::sample::select(vec!["", "./", ".\\"]),
            prop::collection::vec((part, separator), 1..4),
            any::<bool>(),
        )
            .prop_map(|(lead, parts, trailing)| {
                let mut raw = lead.to_owned();
                for (index, (part, separator)) in parts.iter().enumerate() {
                    if index > 0 {
                        raw.push_str(separator);
                    }
                    raw.push_str(part);
                }
                if trailing {
                    raw.push('/');
                }
                raw
            })
    }

    proptest! {
        #[test]
        fn overlap_matches_the_brute_force_model(a in raw_path(), b in raw_path()) {
            let (Ok(pa), Ok(pb)) = (LockPath::parse(&a), LockPath::parse(&b)) else {
                return Ok(());
            };
            let files = universe(NAMES);
            let ca = covered(&a, &files);
            let cb = covered(&b, &files);
            let model = ca.iter().any(|file| cb.contains(file));
            prop_assert_eq!(pa.overlaps(&pb), model, "{:?} vs {:?}", pa, pb);
            prop_assert_eq!(pa.overlaps(&pb), pb.overlaps(&pa));
        }

        #[test]
        fn index_lookups_find_exactly_the_overlapping_keys(a in raw_path(), b in raw_path()) {
            let (Ok(pa), Ok(pb)) = (LockPath::parse(&a), LockPath::parse(&b)) else {
                return Ok(());
            };
            // How a store finds the held lock `pb` when `pa` is requested.
            let held = pb.key();
            let found = pa.covering_keys().contains(&held) || pa.descendant_range().contains(&held);
            prop_assert_eq!(found, pa.overlaps(&pb), "{:?} vs held {:?}", pa, held);
        }

        #[test]
        fn the_key_parses_back_to_the_same_path(a in raw_path()) {
            if let Ok(path) = LockPath::parse(&a) {
                prop_assert_eq!(LockPath::parse(&path.key()).unwrap(), path);
            }
        }
    }
}
