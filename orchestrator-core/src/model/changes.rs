//! What an attempt changed: the files with their line counts and the unified patch, as
//! its runner reports them with the completion ([`ChangeReport`]) and as they are kept
//! with the attempt ([`AttemptChanges`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::TaskId;
use crate::model::{FileChangeStatus, check_max_chars};
use crate::time::Timestamp;

/// Largest patch a completion may carry, in bytes (1 MiB).
pub const MAX_PATCH_BYTES: u32 = 1024 * 1024;
/// Most files a completion lists; a runner counts the others in `omittedFiles`.
pub const MAX_CHANGED_FILES: usize = 2_000;
/// Longest path of a changed file, in characters.
pub const MAX_CHANGED_PATH_CHARS: usize = 4_096;

/// One file an attempt's change touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileChange {
    /// Repository-relative and `/`-separated; a deleted file's old path.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 4_096, pattern = r"^[^\x00]*$")
    )]
    pub path: String,
    /// The path before a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 4_096, pattern = r"^[^\x00]*$")
    )]
    pub old_path: Option<String>,
    pub status: FileChangeStatus,
    /// Lines added (none for a binary file).
    pub insertions: u32,
    /// Lines removed (none for a binary file).
    pub deletions: u32,
    /// The patch names a binary file without its content.
    pub binary: bool,
}

/// What an attempt changed, as its runner reports it with the completion: the files with
/// their line counts, and the unified patch in git's format (`diff --git` headers), cut
/// after a whole file or line once it would pass the runner's `maxPatchBytes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeReport {
    /// The changed files in path order, at most 2,000.
    #[cfg_attr(feature = "openapi", schema(max_items = 2_000))]
    pub files: Vec<FileChange>,
    /// Changed files beyond those listed.
    #[serde(default)]
    pub omitted_files: u32,
    /// The unified patch, at most `maxPatchBytes` bytes of UTF-8 (binary files are named,
    /// not shown).
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 1_048_576, pattern = r"^[^\x00]*$")
    )]
    pub patch: String,
    /// The patch was cut: it ends before the first file or line that did not fit.
    pub truncated: bool,
    /// The largest patch the runner sends, in bytes (1 to 1,048,576).
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1_048_576))]
    pub max_patch_bytes: u32,
}

impl ChangeReport {
    /// Checks the bounds: the file count, each path, the cap and the patch under it.
    pub fn validate(&self) -> Result<()> {
        if self.files.len() > MAX_CHANGED_FILES {
            return Err(Error::invalid(
                "changes.files",
                format!(
                    "at most {MAX_CHANGED_FILES} files (got {}); count the others in omittedFiles",
                    self.files.len()
                ),
            ));
        }
        for (index, file) in self.files.iter().enumerate() {
            check_changed_path(&format!("changes.files[{index}].path"), &file.path)?;
            if let Some(old_path) = &file.old_path {
                check_changed_path(&format!("changes.files[{index}].oldPath"), old_path)?;
            }
        }
        if !(1..=MAX_PATCH_BYTES).contains(&self.max_patch_bytes) {
            return Err(Error::invalid(
                "changes.maxPatchBytes",
                format!(
                    "must be 1 to {MAX_PATCH_BYTES} bytes (got {})",
                    self.max_patch_bytes
                ),
            ));
        }
        if self.patch.len() > self.max_patch_bytes as usize {
            return Err(Error::invalid(
                "changes.patch",
                format!(
                    "{} bytes is more than maxPatchBytes ({})",
                    self.patch.len(),
                    self.max_patch_bytes
                ),
            ));
        }
        if self.patch.contains('\0') {
            return Err(Error::invalid(
                "changes.patch",
                "must not contain NUL characters",
            ));
        }
        Ok(())
    }
}

/// Refuses an empty path, a path with a NUL character or one over
/// [`MAX_CHANGED_PATH_CHARS`], naming `field`. Spaces alone are a name git allows.
fn check_changed_path(field: &str, path: &str) -> Result<()> {
    if path.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    check_max_chars(field, path, MAX_CHANGED_PATH_CHARS)?;
    if path.contains('\0') {
        return Err(Error::invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

/// An attempt's changes, kept with the end of the attempt that reported them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct AttemptChanges {
    pub task_id: TaskId,
    pub attempt_number: u32,
    /// When the attempt ended.
    pub created_at: Timestamp,
    pub changes: ChangeReport,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ChangeReport {
        ChangeReport {
            files: vec![FileChange {
                path: "src/lib.rs".into(),
                old_path: None,
                status: FileChangeStatus::Modified,
                insertions: 1,
                deletions: 1,
                binary: false,
            }],
            omitted_files: 0,
            patch: "diff --git a/src/lib.rs b/src/lib.rs\n".into(),
            truncated: false,
            max_patch_bytes: 256 * 1024,
        }
    }

    fn refused_field(report: &ChangeReport) -> String {
        match report.validate() {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn reports_within_the_bounds_pass_and_others_name_their_field() {
        report().validate().unwrap();
        let mut at_the_limits = report();
        at_the_limits.max_patch_bytes = MAX_PATCH_BYTES;
        at_the_limits.patch = "é".repeat(MAX_PATCH_BYTES as usize / 2);
        at_the_limits.files = vec![report().files[0].clone(); MAX_CHANGED_FILES];
        at_the_limits.files[0].path = "ü".repeat(MAX_CHANGED_PATH_CHARS);
        at_the_limits.validate().unwrap();

        let mut too_many = report();
        too_many.files = vec![report().files[0].clone(); MAX_CHANGED_FILES + 1];
        assert_eq!(refused_field(&too_many), "changes.files");
        let mut spaces = report();
        spaces.files[0].path = " ".into();
        spaces.validate().unwrap();
        let mut empty = report();
        empty.files[0].path = String::new();
        assert_eq!(refused_field(&empty), "changes.files[0].path");
        let mut long_old_path = report();
        long_old_path.files[0].old_path = Some("a".repeat(MAX_CHANGED_PATH_CHARS + 1));
        assert_eq!(refused_field(&long_old_path), "changes.files[0].oldPath");
        let mut nul_path = report();
        nul_path.files[0].path = "a\0b".into();
        assert_eq!(refused_field(&nul_path), "changes.files[0].path");
        let mut over_the_server = report();
        over_the_server.max_patch_bytes = MAX_PATCH_BYTES + 1;
        assert_eq!(refused_field(&over_the_server), "changes.maxPatchBytes");
        let mut no_cap = report();
        no_cap.max_patch_bytes = 0;
        assert_eq!(refused_field(&no_cap), "changes.maxPatchBytes");
        let mut over_its_cap = report();
        over_its_cap.max_patch_bytes = 8;
        assert_eq!(refused_field(&over_its_cap), "changes.patch");
        let mut nul_patch = report();
        nul_patch.patch.push('\0');
        assert_eq!(refused_field(&nul_patch), "changes.patch");
    }

    #[test]
    fn the_wire_shape_is_camel_case_and_omitted_files_may_be_left_out() {
        let json = serde_json::json!({
            "files": [{
                "path": "b.rs", "oldPath": "a.rs", "status": "RENAMED",
                "insertions": 0, "deletions": 0, "binary": false
            }],
            "patch": "",
            "truncated": false,
            "maxPatchBytes": 262144
        });
        let parsed: ChangeReport = serde_json::from_value(json).unwrap();
        assert_eq!(parsed.files[0].old_path.as_deref(), Some("a.rs"));
        assert_eq!(parsed.files[0].status, FileChangeStatus::Renamed);
        assert_eq!(parsed.omitted_files, 0);
        let back = serde_json::to_value(&parsed).unwrap();
        assert_eq!(back["omittedFiles"], 0);
        assert_eq!(back["maxPatchBytes"], 262_144);
    }
}
