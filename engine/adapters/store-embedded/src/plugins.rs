//! `PluginStore` on redb: records by (name, version), bytes by hash.

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use weft_core::plugins::PluginRecord;
use weft_core::ports::PluginStore;
use weft_core::Error;

use crate::{decode, encode, err, EmbeddedRunStore};

pub(crate) const PLUGINS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("plugins");
pub(crate) const WASM: TableDefinition<&str, &[u8]> = TableDefinition::new("wasm");

#[async_trait]
impl PluginStore for EmbeddedRunStore {
    async fn put_wasm(&self, sha256: &str, wasm: &[u8]) -> Result<(), Error> {
        let (sha256, wasm) = (sha256.to_string(), wasm.to_vec());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("storing a plugin"))?;
            {
                let mut table = txn.open_table(WASM).map_err(err("storing a plugin"))?;
                if table
                    .get(sha256.as_str())
                    .map_err(err("storing a plugin"))?
                    .is_none()
                {
                    table
                        .insert(sha256.as_str(), wasm.as_slice())
                        .map_err(err("storing a plugin"))?;
                }
            }
            txn.commit().map_err(err("storing a plugin"))
        })
        .await
    }

    async fn wasm(&self, sha256: &str) -> Result<Option<Vec<u8>>, Error> {
        let sha256 = sha256.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("reading a plugin"))?;
            let table = txn.open_table(WASM).map_err(err("reading a plugin"))?;
            let bytes = table
                .get(sha256.as_str())
                .map_err(err("reading a plugin"))?;
            Ok(bytes.map(|b| b.value().to_vec()))
        })
        .await
    }

    async fn put_plugin(&self, record: &PluginRecord) -> Result<(), Error> {
        let record = record.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("registering a plugin"))?;
            {
                if txn
                    .open_table(WASM)
                    .map_err(err("registering a plugin"))?
                    .get(record.sha256.as_str())
                    .map_err(err("registering a plugin"))?
                    .is_none()
                {
                    return Err(Error::NotFound(format!("plugin bytes {}", record.sha256)));
                }
                let mut table = txn
                    .open_table(PLUGINS)
                    .map_err(err("registering a plugin"))?;
                let key = (record.name.as_str(), record.version.as_str());
                if let Some(old) = table.get(key).map_err(err("registering a plugin"))? {
                    let old: PluginRecord = decode(old.value())?;
                    if old.sha256 == record.sha256 {
                        return Ok(());
                    }
                    return Err(Error::Conflict(format!(
                        "{}@{} exists with other contents; push a new version",
                        record.name, record.version
                    )));
                }
                table
                    .insert(key, encode(&record)?.as_slice())
                    .map_err(err("registering a plugin"))?;
            }
            txn.commit().map_err(err("registering a plugin"))
        })
        .await
    }

    async fn plugin_versions(&self, name: &str) -> Result<Vec<PluginRecord>, Error> {
        let name = name.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("listing plugins"))?;
            let table = txn.open_table(PLUGINS).map_err(err("listing plugins"))?;
            let range = table
                .range((name.as_str(), "")..)
                .map_err(err("listing plugins"))?;
            let mut out = Vec::new();
            for entry in range {
                let (k, v) = entry.map_err(err("listing plugins"))?;
                if k.value().0 != name {
                    break;
                }
                out.push(decode(v.value())?);
            }
            Ok(weft_core::plugins::by_upload(out))
        })
        .await
    }

    async fn plugins(&self) -> Result<Vec<PluginRecord>, Error> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("listing plugins"))?;
            let table = txn.open_table(PLUGINS).map_err(err("listing plugins"))?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(err("listing plugins"))? {
                let (_, v) = entry.map_err(err("listing plugins"))?;
                out.push(decode(v.value())?);
            }
            Ok(weft_core::plugins::by_upload(out))
        })
        .await
    }

    async fn remove_plugin(&self, name: &str, version: Option<&str>) -> Result<usize, Error> {
        let versions: Vec<String> = match version {
            Some(v) => vec![v.to_string()],
            None => self
                .plugin_versions(name)
                .await?
                .into_iter()
                .map(|r| r.version)
                .collect(),
        };
        let name = name.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("removing a plugin"))?;
            let mut removed = 0;
            {
                let mut table = txn.open_table(PLUGINS).map_err(err("removing a plugin"))?;
                for v in &versions {
                    if table
                        .remove((name.as_str(), v.as_str()))
                        .map_err(err("removing a plugin"))?
                        .is_some()
                    {
                        removed += 1;
                    }
                }
            }
            txn.commit().map_err(err("removing a plugin"))?;
            Ok(removed)
        })
        .await
    }
}
