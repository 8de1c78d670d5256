//! An attempt's change as the task page shows it: the changed files with their stats,
//! and the unified patch the runner sent, split per file and hunk, with old and new
//! line numbers and syntax colours (each hunk's old and new side coloured as a whole).

use orchestrator_core::model::{AttemptChanges, FileChange};
use orchestrator_verify::{SourceLanguage, TokenClass, highlight};

/// A changed file in the list above the patch.
pub(super) struct ChangedFile {
    pub(super) path: String,
    pub(super) old_path: Option<String>,
    pub(super) status: &'static str,
    pub(super) insertions: u32,
    pub(super) deletions: u32,
    pub(super) binary: bool,
}

impl From<&FileChange> for ChangedFile {
    fn from(file: &FileChange) -> Self {
        Self {
            path: file.path.clone(),
            old_path: file.old_path.clone(),
            status: file.status.as_str(),
            insertions: file.insertions,
            deletions: file.deletions,
            binary: file.binary,
        }
    }
}

/// A line of a patch.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Line {
    /// `add`, `del`, `ctx` (unchanged) or `note` (`\ No newline at end of file`).
    pub(super) kind: &'static str,
    pub(super) old_number: Option<u32>,
    pub(super) new_number: Option<u32>,
    /// The text in pieces, each with its colour class if it has one.
    pub(super) pieces: Vec<(Option<&'static str>, String)>,
}

/// A hunk: its header and lines.
pub(super) struct Hunk {
    pub(super) header: String,
    pub(super) lines: Vec<Line>,
}

/// One file's part of the patch.
pub(super) struct FilePatch {
    pub(super) path: String,
    /// Lines of the file header other than `diff --git` (mode changes, renames, binary).
    pub(super) notes: Vec<String>,
    pub(super) hunks: Vec<Hunk>,
}

/// One attempt's change.
pub(super) struct AttemptDiff {
    pub(super) attempt: u32,
    pub(super) files: Vec<ChangedFile>,
    pub(super) omitted_files: u32,
    pub(super) insertions: u32,
    pub(super) deletions: u32,
    pub(super) patches: Vec<FilePatch>,
    /// The runner cut the patch at this many KiB.
    pub(super) cut_at_kib: Option<u32>,
}

impl From<&AttemptChanges> for AttemptDiff {
    fn from(changes: &AttemptChanges) -> Self {
        let report = &changes.changes;
        Self {
            attempt: changes.attempt_number,
            files: report.files.iter().map(ChangedFile::from).collect(),
            omitted_files: report.omitted_files,
            insertions: report.files.iter().map(|f| f.insertions).sum(),
            deletions: report.files.iter().map(|f| f.deletions).sum(),
            patches: parse_patch(&report.patch),
            cut_at_kib: report.truncated.then_some(report.max_patch_bytes / 1024),
        }
    }
}

/// The path a `diff --git a/… b/…` header names (the new side).
fn header_path(header: &str) -> String {
    let rest = header.trim_start_matches("diff --git ");
    match rest.rfind(" b/") {
        Some(at) => rest[at + 3..].to_owned(),
        None => rest.to_owned(),
    }
}

/// The first line numbers of a hunk header `@@ -a,b +c,d @@`.
fn hunk_start(header: &str) -> (u32, u32) {
    let mut numbers = header.split_whitespace().skip(1).take(2).map(|range| {
        range[1..]
            .split(',')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    });
    (numbers.next().unwrap_or(1), numbers.next().unwrap_or(1))
}

/// Splits a unified patch into files and hunks, numbering each line.
fn parse_patch(patch: &str) -> Vec<FilePatch> {
    let mut files: Vec<FilePatch> = Vec::new();
    let (mut old, mut new) = (0, 0);
    for text in patch.lines() {
        if text.starts_with("diff --git ") {
            files.push(FilePatch {
                path: header_path(text),
                notes: Vec::new(),
                hunks: Vec::new(),
            });
            continue;
        }
        let Some(file) = files.last_mut() else {
            continue;
        };
        if text.starts_with("@@") {
            (old, new) = hunk_start(text);
            file.hunks.push(Hunk {
                header: text.to_owned(),
                lines: Vec::new(),
            });
            continue;
        }
        let Some(hunk) = file.hunks.last_mut() else {
            if !text.starts_with("--- ") && !text.starts_with("+++ ") {
                file.notes.push(text.to_owned());
            }
            continue;
        };
        let (kind, old_number, new_number, body) = match text.chars().next() {
            Some('+') => {
                new += 1;
                ("add", None, Some(new - 1), &text[1..])
            }
            Some('-') => {
                old += 1;
                ("del", Some(old - 1), None, &text[1..])
            }
            Some('\\') => ("note", None, None, text),
            _ => {
                old += 1;
                new += 1;
                (
                    "ctx",
                    Some(old - 1),
                    Some(new - 1),
                    text.get(1..).unwrap_or(""),
                )
            }
        };
        hunk.lines.push(Line {
            kind,
            old_number,
            new_number,
            pieces: vec![(None, body.to_owned())],
        });
    }
    for file in &mut files {
        if let Some(language) = SourceLanguage::of(&file.path) {
            for hunk in &mut file.hunks {
                colour(language, &mut hunk.lines);
            }
        }
    }
    files
}

/// Colours a hunk's lines: the old side (unchanged and removed lines) and the new side
/// (unchanged and added lines) are each coloured as one text, so that a construct that
/// spans lines is seen whole.
fn colour(language: SourceLanguage, lines: &mut [Line]) {
    for side in ["del", "add"] {
        let members: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].kind == side || lines[i].kind == "ctx")
            .collect();
        let mut text = String::new();
        let mut starts = Vec::with_capacity(members.len());
        for &i in &members {
            starts.push(text.len());
            text.push_str(&lines[i].pieces[0].1);
            text.push('\n');
        }
        let pieces = highlight(language, &text);
        for (slot, &i) in members.iter().enumerate() {
            // Unchanged lines are coloured from the new side.
            if side == "del" && lines[i].kind == "ctx" {
                continue;
            }
            let start = starts[slot];
            let end = start + lines[i].pieces[0].1.len();
            lines[i].pieces = split_line(&text[start..end], start, &pieces);
        }
    }
}

/// The pieces of `line` (which starts at byte `offset` of the coloured text).
fn split_line(
    line: &str,
    offset: usize,
    pieces: &[(std::ops::Range<usize>, TokenClass)],
) -> Vec<(Option<&'static str>, String)> {
    let end = offset + line.len();
    let mut out = Vec::new();
    let mut at = offset;
    for (range, class) in pieces {
        if range.end <= offset || range.start >= end {
            continue;
        }
        let start = range.start.max(offset);
        let stop = range.end.min(end);
        if start > at {
            out.push((None, line[at - offset..start - offset].to_owned()));
        }
        out.push((
            Some(class.name()),
            line[start - offset..stop - offset].to_owned(),
        ));
        at = stop;
    }
    if at < end || out.is_empty() {
        out.push((None, line[at - offset..].to_owned()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATCH: &str = "diff --git a/src/lib.rs b/src/lib.rs\n\
index 1111111..2222222 100644\n\
--- a/src/lib.rs\n\
+++ b/src/lib.rs\n\
@@ -1,3 +1,3 @@\n \
fn main() {\n\
-    let x = 1;\n\
+    let x = \"two\";\n \
}\n\
diff --git a/logo.png b/logo.png\n\
new file mode 100644\n\
Binary files /dev/null and b/logo.png differ\n";

    #[test]
    fn a_patch_is_split_into_files_and_numbered_hunks() {
        let files = parse_patch(PATCH);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, "src/lib.rs");
        let lines = &files[0].hunks[0].lines;
        let numbers: Vec<_> = lines
            .iter()
            .map(|l| (l.kind, l.old_number, l.new_number))
            .collect();
        assert_eq!(
            numbers,
            [
                ("ctx", Some(1), Some(1)),
                ("del", Some(2), None),
                ("add", None, Some(2)),
                ("ctx", Some(3), Some(3)),
            ]
        );
        assert_eq!(files[1].path, "logo.png");
        assert!(files[1].notes.iter().any(|n| n.starts_with("Binary files")));
        assert!(files[1].hunks.is_empty());
    }

    #[test]
    fn lines_keep_their_text_and_gain_colours() {
        let files = parse_patch(PATCH);
        for line in &files[0].hunks[0].lines {
            let text: String = line.pieces.iter().map(|(_, t)| t.as_str()).collect();
            assert!(!text.contains('\n'));
            assert!(PATCH.contains(&text), "{text:?}");
        }
        let added = &files[0].hunks[0].lines[2];
        assert!(
            added
                .pieces
                .contains(&(Some("string"), "\"two\"".to_owned())),
            "{:?}",
            added.pieces
        );
        let context = &files[0].hunks[0].lines[0];
        assert!(context.pieces.contains(&(Some("keyword"), "fn".to_owned())));
    }

    #[test]
    fn a_cut_or_odd_patch_does_not_break_the_page() {
        for patch in [
            "",
            "garbage\n",
            "diff --git a/x b/x\n@@ nonsense\n+é\n",
            "@@ -1 +1 @@\n+x\n",
        ] {
            let _ = parse_patch(patch);
        }
        let files = parse_patch("diff --git a/a.py b/a.py\n@@ -0,0 +1,1 @@\n+héllo = 'wörld'\n");
        let text: String = files[0].hunks[0].lines[0]
            .pieces
            .iter()
            .map(|(_, t)| t.as_str())
            .collect();
        assert_eq!(text, "héllo = 'wörld'");
    }
}
