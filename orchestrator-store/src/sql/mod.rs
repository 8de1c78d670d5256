//! Every SQL statement of the stores, written once for all dialects.
//!
//! [`read`] holds lookups and list queries, [`write`] the inserts and guarded updates.
//! Spelling differences between backends come from [`Dialect`](crate::dialect::Dialect).

pub(crate) mod hidden;
pub(crate) mod locks;
pub(crate) mod read;
pub(crate) mod write;
