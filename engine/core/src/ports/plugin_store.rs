//! The plugin registry: versions of named plugins, and their bytes, stored
//! by content hash.

use async_trait::async_trait;

use crate::plugins::PluginRecord;
use crate::Error;

/// The plugin store port.
#[async_trait]
pub trait PluginStore: Send + Sync {
    /// Stores a component's bytes under their SHA-256 (hex). Storing the
    /// same bytes again is a no-op.
    async fn put_wasm(&self, sha256: &str, wasm: &[u8]) -> Result<(), Error>;

    /// A component's bytes, by SHA-256.
    async fn wasm(&self, sha256: &str) -> Result<Option<Vec<u8>>, Error>;

    /// Registers `name@version` for bytes already stored with `put_wasm`.
    ///
    /// # Contract
    /// Pushing a version that exists with the same hash is a no-op; with a
    /// different hash it fails with `Conflict` (a version never changes).
    async fn put_plugin(&self, record: &PluginRecord) -> Result<(), Error>;

    /// Every version of `name`, oldest upload first.
    async fn plugin_versions(&self, name: &str) -> Result<Vec<PluginRecord>, Error>;

    /// Every version of every plugin, by name then upload.
    async fn plugins(&self) -> Result<Vec<PluginRecord>, Error>;

    /// Removes one version, or every version when `version` is `None`;
    /// returns how many were removed. The bytes stay, so runs that resolved
    /// them can still be retried.
    async fn remove_plugin(&self, name: &str, version: Option<&str>) -> Result<usize, Error>;
}
