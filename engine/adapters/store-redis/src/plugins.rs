//! `PluginStore` on Redis: bytes under `wasm:<sha256>` (written once), one
//! hash per plugin name (`version -> record`, HSETNX so a version never
//! changes), and a set of names.

use async_trait::async_trait;
use redis::AsyncCommands;
use weft_core::plugins::PluginRecord;
use weft_core::ports::PluginStore;
use weft_core::Error;

use crate::store::{decode, encode, redis_err};
use crate::RedisRunStore;

#[async_trait]
impl PluginStore for RedisRunStore {
    async fn put_wasm(&self, sha256: &str, wasm: &[u8]) -> Result<(), Error> {
        let key = self.key(&["wasm", sha256]);
        let _: bool = self
            .conn()
            .set_nx(&key, wasm)
            .await
            .map_err(redis_err("storing a plugin"))?;
        self.expire_key(&key).await
    }

    async fn wasm(&self, sha256: &str) -> Result<Option<Vec<u8>>, Error> {
        self.conn()
            .get(self.key(&["wasm", sha256]))
            .await
            .map_err(redis_err("reading a plugin"))
    }

    async fn put_plugin(&self, record: &PluginRecord) -> Result<(), Error> {
        let stored: bool = self
            .conn()
            .exists(self.key(&["wasm", &record.sha256]))
            .await
            .map_err(redis_err("registering a plugin"))?;
        if !stored {
            return Err(Error::NotFound(format!("plugin bytes {}", record.sha256)));
        }
        let key = self.key(&["plugin", &record.name]);
        let new: bool = self
            .conn()
            .hset_nx(&key, &record.version, encode(record)?)
            .await
            .map_err(redis_err("registering a plugin"))?;
        if !new {
            let old: String = self
                .conn()
                .hget(&key, &record.version)
                .await
                .map_err(redis_err("reading a plugin"))?;
            let old: PluginRecord = decode(&old)?;
            if old.sha256 != record.sha256 {
                return Err(Error::Conflict(format!(
                    "{}@{} exists with other contents; push a new version",
                    record.name, record.version
                )));
            }
        }
        let names = self.key(&["plugins"]);
        let _: () = self
            .conn()
            .sadd(&names, &record.name)
            .await
            .map_err(redis_err("indexing a plugin"))?;
        self.expire_key(&key).await?;
        self.expire_key(&names).await
    }

    async fn plugin_versions(&self, name: &str) -> Result<Vec<PluginRecord>, Error> {
        let raw: Vec<String> = self
            .conn()
            .hvals(self.key(&["plugin", name]))
            .await
            .map_err(redis_err("listing plugins"))?;
        Ok(weft_core::plugins::by_upload(
            raw.iter().map(|r| decode(r)).collect::<Result<_, _>>()?,
        ))
    }

    async fn plugins(&self) -> Result<Vec<PluginRecord>, Error> {
        let names: Vec<String> = self
            .conn()
            .smembers(self.key(&["plugins"]))
            .await
            .map_err(redis_err("listing plugins"))?;
        let mut out = Vec::new();
        for name in names {
            out.extend(self.plugin_versions(&name).await?);
        }
        Ok(weft_core::plugins::by_upload(out))
    }

    async fn remove_plugin(&self, name: &str, version: Option<&str>) -> Result<usize, Error> {
        let key = self.key(&["plugin", name]);
        let removed: usize = match version {
            Some(v) => self
                .conn()
                .hdel(&key, v)
                .await
                .map_err(redis_err("removing a plugin"))?,
            None => {
                let n: usize = self
                    .conn()
                    .hlen(&key)
                    .await
                    .map_err(redis_err("removing a plugin"))?;
                let _: () = self
                    .conn()
                    .del(&key)
                    .await
                    .map_err(redis_err("removing a plugin"))?;
                n
            }
        };
        let left: usize = self
            .conn()
            .hlen(&key)
            .await
            .map_err(redis_err("removing a plugin"))?;
        if left == 0 {
            let _: () = self
                .conn()
                .srem(self.key(&["plugins"]), name)
                .await
                .map_err(redis_err("removing a plugin"))?;
        }
        Ok(removed)
    }
}
