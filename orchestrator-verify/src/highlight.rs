//! Syntax colours for source text. tree-sitter parses the text with the language's
//! grammar, the grammar's own highlight query names what each piece is, and the names
//! are reduced to a few classes a stylesheet colours.

use std::ops::Range;
use std::sync::OnceLock;

use tree_sitter::{Parser, Query, QueryCursor, StreamingIterator};

use crate::syntax::SourceLanguage;

/// What a piece of source text is, as far as its colour goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenClass {
    Keyword,
    String,
    Comment,
    Number,
    Function,
    Type,
    Constant,
    Property,
    Operator,
}

impl TokenClass {
    /// The class's name, for a stylesheet.
    pub fn name(self) -> &'static str {
        match self {
            Self::Keyword => "keyword",
            Self::String => "string",
            Self::Comment => "comment",
            Self::Number => "number",
            Self::Function => "function",
            Self::Type => "type",
            Self::Constant => "constant",
            Self::Property => "property",
            Self::Operator => "operator",
        }
    }

    /// The class of a highlight query's capture name (`keyword.control`, `string`, …),
    /// by its first part; `None` for names that get no colour.
    fn of_capture(name: &str) -> Option<Self> {
        let head = name.split('.').next().unwrap_or(name);
        Some(match head {
            "keyword" | "include" | "conditional" | "repeat" | "exception" | "storageclass" => {
                Self::Keyword
            }
            "string" | "character" | "escape" => Self::String,
            "comment" => Self::Comment,
            "number" | "float" => Self::Number,
            "function" | "method" | "constructor" => Self::Function,
            "type" | "tag" => Self::Type,
            "constant" | "boolean" => Self::Constant,
            "property" | "attribute" | "label" => Self::Property,
            "operator" => Self::Operator,
            _ => return None,
        })
    }
}

/// Longest text coloured; longer text is shown plain.
const MAX_SOURCE_BYTES: usize = 1 << 20;

impl SourceLanguage {
    /// The grammar's highlight query (TypeScript's and C++'s build on JavaScript's and
    /// C's).
    fn highlights(self) -> String {
        match self {
            Self::Rust => tree_sitter_rust::HIGHLIGHTS_QUERY.to_owned(),
            Self::TypeScript | Self::Tsx => format!(
                "{}\n{}",
                tree_sitter_javascript::HIGHLIGHT_QUERY,
                tree_sitter_typescript::HIGHLIGHTS_QUERY
            ),
            Self::JavaScript => tree_sitter_javascript::HIGHLIGHT_QUERY.to_owned(),
            Self::Python => tree_sitter_python::HIGHLIGHTS_QUERY.to_owned(),
            Self::Go => tree_sitter_go::HIGHLIGHTS_QUERY.to_owned(),
            Self::Java => tree_sitter_java::HIGHLIGHTS_QUERY.to_owned(),
            Self::C => tree_sitter_c::HIGHLIGHT_QUERY.to_owned(),
            Self::Cpp => format!(
                "{}\n{}",
                tree_sitter_c::HIGHLIGHT_QUERY,
                tree_sitter_cpp::HIGHLIGHT_QUERY
            ),
            Self::Json => tree_sitter_json::HIGHLIGHTS_QUERY.to_owned(),
            Self::Toml => tree_sitter_toml_ng::HIGHLIGHTS_QUERY.to_owned(),
            Self::Yaml => tree_sitter_yaml::HIGHLIGHTS_QUERY.to_owned(),
            Self::Bash => tree_sitter_bash::HIGHLIGHT_QUERY.to_owned(),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Every language, in declaration order.
const LANGUAGES: [SourceLanguage; 13] = [
    SourceLanguage::Rust,
    SourceLanguage::TypeScript,
    SourceLanguage::Tsx,
    SourceLanguage::JavaScript,
    SourceLanguage::Python,
    SourceLanguage::Go,
    SourceLanguage::Java,
    SourceLanguage::C,
    SourceLanguage::Cpp,
    SourceLanguage::Json,
    SourceLanguage::Toml,
    SourceLanguage::Yaml,
    SourceLanguage::Bash,
];

/// A grammar's compiled highlight query with the class of each of its captures.
type Highlighter = (Query, Vec<Option<TokenClass>>);

/// The highlighter of `language`, built once; `None` if the grammar refuses its query.
fn query(language: SourceLanguage) -> Option<&'static Highlighter> {
    static QUERIES: [OnceLock<Option<Highlighter>>; LANGUAGES.len()] =
        [const { OnceLock::new() }; LANGUAGES.len()];
    QUERIES[language.index()]
        .get_or_init(|| {
            let query = Query::new(&language.grammar(), &language.highlights()).ok()?;
            let classes = query
                .capture_names()
                .iter()
                .map(|name| TokenClass::of_capture(name))
                .collect();
            Some((query, classes))
        })
        .as_ref()
}

/// The coloured pieces of `source` in `language`: byte ranges in order, not
/// overlapping, each with its class (text between them has none). Empty when the text
/// is too long or cannot be parsed.
pub fn highlight(language: SourceLanguage, source: &str) -> Vec<(Range<usize>, TokenClass)> {
    if source.len() > MAX_SOURCE_BYTES {
        return Vec::new();
    }
    let Some((query, classes)) = query(language) else {
        return Vec::new();
    };
    let mut parser = Parser::new();
    if parser.set_language(&language.grammar()).is_err() {
        return Vec::new();
    }
    let Some(tree) = parser.parse(source, None) else {
        return Vec::new();
    };
    // Each byte takes the class of the first capture that covers it, as the query's
    // patterns are written most specific first.
    let mut painted: Vec<Option<TokenClass>> = vec![None; source.len()];
    let mut cursor = QueryCursor::new();
    let mut captures = cursor.captures(query, tree.root_node(), source.as_bytes());
    while let Some((found, index)) = captures.next() {
        let capture = found.captures()[*index];
        let Some(class) = classes[capture.index as usize] else {
            continue;
        };
        for byte in &mut painted[capture.node.byte_range()] {
            byte.get_or_insert(class);
        }
    }
    let mut pieces: Vec<(Range<usize>, TokenClass)> = Vec::new();
    for (at, class) in painted.into_iter().enumerate() {
        let Some(class) = class else { continue };
        match pieces.last_mut() {
            Some((range, last)) if range.end == at && *last == class => range.end = at + 1,
            _ => pieces.push((at..at + 1, class)),
        }
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes_of(language: SourceLanguage, source: &str) -> Vec<(String, &'static str)> {
        highlight(language, source)
            .into_iter()
            .map(|(range, class)| (source[range].to_owned(), class.name()))
            .collect()
    }

    #[test]
    fn every_grammar_accepts_its_highlight_query() {
        for language in LANGUAGES {
            assert!(query(language).is_some(), "{language:?}");
            assert_eq!(LANGUAGES[language.index()], language);
        }
    }

    #[test]
    fn rust_keywords_strings_comments_and_literals_are_told_apart() {
        let pieces = classes_of(
            SourceLanguage::Rust,
            "// hi\nfn main() { let s = \"x\"; let n = 42; }\n",
        );
        for expected in [
            ("// hi".to_owned(), "comment"),
            ("fn".to_owned(), "keyword"),
            ("\"x\"".to_owned(), "string"),
            ("42".to_owned(), "constant"),
            ("main".to_owned(), "function"),
        ] {
            assert!(pieces.contains(&expected), "{expected:?} in {pieces:?}");
        }
    }

    #[test]
    fn typescript_builds_on_javascript() {
        let pieces = classes_of(SourceLanguage::TypeScript, "const n: number = 1;\n");
        assert!(
            pieces.contains(&("const".to_owned(), "keyword")),
            "{pieces:?}"
        );
        assert!(pieces.contains(&("1".to_owned(), "number")), "{pieces:?}");
    }

    #[test]
    fn pieces_are_ordered_and_apart_even_in_broken_text() {
        let source = "def f(:\n    return 'a\n";
        let pieces = highlight(SourceLanguage::Python, source);
        assert!(!pieces.is_empty());
        for pair in pieces.windows(2) {
            assert!(pair[0].0.end <= pair[1].0.start, "{pieces:?}");
        }
        assert!(source.get(pieces[0].0.clone()).is_some());
    }
}
