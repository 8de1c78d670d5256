//! Verification of an agent's change: pipelines of
//! [`Verifier`](orchestrator_core::Verifier)s — syntax checks with tree-sitter, change
//! sets from git2, and the type, lint and test commands of each ecosystem.

pub mod cargo;
pub mod changes;
pub mod command;
pub mod pipeline;
pub mod policy;
pub mod syntax;

pub use cargo::{CargoStage, CargoVerifier};
pub use changes::{ChangeKind, ChangeSet, ChangeSetError, ChangedFile, LineRange};
pub use orchestrator_core::verify::{StageReport, StageStatus, VerificationInput};
pub use pipeline::{Pipeline, summarize};
pub use policy::PolicyVerifier;
pub use syntax::{SourceLanguage, SyntaxLimits, SyntaxVerifier};
