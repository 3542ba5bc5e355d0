//! Pushing a plugin into the registry: checked whole before anything is
//! stored, so a bad upload leaves nothing behind.

use std::sync::Arc;
use std::time::Duration;

use weft_core::plugins::{valid_version, PluginRecord, PluginWorld};
use weft_core::ports::PluginStore;

use crate::{sha256_hex, Error, Host, World};

/// Validates `wasm` (name, version, size, component, imports, world; a
/// compile bounded in time) and registers it as `name@version`. A version
/// already registered is settled before anything is compiled: the same
/// bytes are a no-op, other bytes a `Conflict`.
pub async fn register(
    host: &Arc<Host>,
    store: &dyn PluginStore,
    name: &str,
    version: &str,
    wasm: Vec<u8>,
    now: u64,
) -> Result<PluginRecord, Error> {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(Error::BadName(format!(
            "`{name}` is not a plugin name: use letters, digits, `-` and `_` (at most 64)"
        )));
    }
    valid_version(version).map_err(Error::BadName)?;
    let (size, sha256) = (wasm.len() as u64, sha256_hex(&wasm));
    if let Some(existing) = store
        .plugin_versions(name)
        .await?
        .into_iter()
        .find(|r| r.version == version)
    {
        if existing.sha256 == sha256 {
            return Ok(existing);
        }
        return Err(Error::Store(weft_core::Error::Conflict(format!(
            "{name}@{version} exists with other contents ({}); a version never changes: push a new one",
            existing.sha256
        ))));
    }
    let limit = Duration::from_millis(host.options().max_compile_ms.max(1));
    let wasm = Arc::new(wasm);
    let task = {
        let (host, wasm) = (host.clone(), wasm.clone());
        tokio::task::spawn_blocking(move || host.inspect(&wasm))
    };
    let inspection = match tokio::time::timeout(limit, task).await {
        Ok(joined) => joined.map_err(|e| Error::Compile(e.to_string()))??,
        // The compile goes on in the background; its result is dropped.
        Err(_) => return Err(Error::CompileTimeout(limit.as_secs())),
    };
    let record = PluginRecord {
        name: name.to_string(),
        version: version.to_string(),
        sha256: sha256.clone(),
        size,
        world: match inspection.world {
            World::Hook => PluginWorld::Hook,
            World::Step => PluginWorld::Step,
            World::Admission => PluginWorld::Admission,
        },
        exports: inspection.exports,
        imports: inspection.imports,
        uploaded_at: now,
    };
    store.put_wasm(&sha256, &wasm).await?;
    store.put_plugin(&record).await?;
    Ok(record)
}
