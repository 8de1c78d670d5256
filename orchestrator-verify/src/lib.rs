//! Verification of an agent's change: pipelines of
//! [`Verifier`](orchestrator_core::Verifier)s — syntax checks with tree-sitter, change
//! sets from git2, the diff policy, and the type, lint and test commands of each
//! ecosystem, detected per tree and adjustable through `orchestrator.toml`.
//! [`Verification`] takes a change from its tree to its result, with any verifiers of
//! your own after the project's checks.

pub mod changes;
pub mod check;
pub mod command;
pub mod config;
pub mod detect;
pub mod highlight;
pub mod output;
pub mod pipeline;
pub mod policy;
pub mod semantic;
pub mod syntax;
pub mod tool_integrity;
pub mod verification;

pub use changes::{
    ChangeKind, ChangeSet, ChangeSetError, ChangedFile, LineRange, change_report, patch_text,
    paths_outside_locks,
};
pub use check::CommandCheck;
pub use config::{CONFIG_FILE, ConfigError, VerifyConfig};
pub use detect::detect_checks;
pub use highlight::{TokenClass, highlight};
pub use orchestrator_core::verify::{StageReport, StageStatus, VerificationInput};
pub use output::OutputFormat;
pub use pipeline::{Pipeline, summarize};
pub use policy::PolicyVerifier;
pub use semantic::{ReviewModel, SemanticVerifier};
pub use syntax::{SourceLanguage, SyntaxLimits, SyntaxVerifier};
pub use verification::{PrepareError, PreparedChange, Verification};
