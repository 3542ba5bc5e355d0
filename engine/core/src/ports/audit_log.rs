//! The audit log: who submitted, cancelled or retried a run, saved a
//! workflow, pushed or removed a plugin, created or revoked a token, set,
//! removed or re-sealed secrets, in the order it happened. Bounded: the
//! newest [`MAX_AUDIT_ENTRIES`] are kept.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Role;
use crate::run::Millis;
use crate::Error;

/// Entries a store keeps; older ones are dropped as new ones come.
pub const MAX_AUDIT_ENTRIES: u64 = 100_000;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditAction {
    SubmitRun,
    CancelRun,
    RetryRun,
    SaveWorkflow,
    PushPlugin,
    RemovePlugin,
    CreateToken,
    RevokeToken,
    SetSecret,
    RemoveSecret,
    RotateSecrets,
    /// An approval step approved (target `run/step`).
    ApproveStep,
    /// An approval step rejected (target `run/step`).
    RejectStep,
}

/// One thing someone did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuditEntry {
    /// Its place in the log, given by the store when recorded: 1, 2, 3...
    #[serde(default)]
    pub seq: u64,
    pub at: Millis,
    /// The token's name; `None` on a server without auth.
    pub who: Option<String>,
    pub role: Role,
    pub action: AuditAction,
    /// What it was done to: a run's id, `name@version`, a token's name.
    pub target: String,
}

/// The audit log port.
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends `entry`, with the next `seq` (its own is ignored).
    ///
    /// # Contract
    /// Entries recorded one after another get increasing `seq`s; two
    /// recorded at once get different ones. Past [`MAX_AUDIT_ENTRIES`] the
    /// oldest are dropped.
    async fn record(&self, entry: &AuditEntry) -> Result<(), Error>;

    /// Newest first: at most `limit` entries with a `seq` below `before`
    /// (all, when `None`).
    async fn audit(&self, limit: usize, before: Option<u64>) -> Result<Vec<AuditEntry>, Error>;
}
