//! `StepCache` in redb: entries by key. An expired entry is never read and
//! is removed by `prune_cached`; past the bound, the entry that expires
//! soonest goes.

use std::collections::BTreeSet;

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use weft_core::artifacts::Digest;
use weft_core::cache::CacheEntry;
use weft_core::ports::{StepCache, MAX_CACHE_ENTRIES};
use weft_core::Error;

use crate::{decode, encode, err, EmbeddedRunStore};

pub(crate) const CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("step_cache");

#[async_trait]
impl StepCache for EmbeddedRunStore {
    async fn cached(&self, key: &Digest, now: u64) -> Result<Option<CacheEntry>, Error> {
        let key = key.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("reading the step cache"))?;
            let table = txn
                .open_table(CACHE)
                .map_err(err("reading the step cache"))?;
            let raw = table
                .get(key.as_str())
                .map_err(err("reading the step cache"))?;
            let entry: Option<CacheEntry> = raw.map(|r| decode(r.value())).transpose()?;
            Ok(entry.filter(|e| e.is_live(now)))
        })
        .await
    }

    async fn save_cached(&self, key: &Digest, entry: &CacheEntry) -> Result<(), Error> {
        let (key, body) = (key.clone(), encode(entry)?);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("saving to the step cache"))?;
            {
                let mut table = txn
                    .open_table(CACHE)
                    .map_err(err("saving to the step cache"))?;
                table
                    .insert(key.as_str(), body.as_slice())
                    .map_err(err("saving to the step cache"))?;
                if table.len().map_err(err("saving to the step cache"))? > MAX_CACHE_ENTRIES as u64
                {
                    let mut soonest: Option<(u64, String)> = None;
                    for row in table.iter().map_err(err("saving to the step cache"))? {
                        let (k, v) = row.map_err(err("saving to the step cache"))?;
                        let e: CacheEntry = decode(v.value())?;
                        if soonest.as_ref().is_none_or(|(at, _)| e.expires_at < *at) {
                            soonest = Some((e.expires_at, k.value().to_string()));
                        }
                    }
                    if let Some((_, k)) = soonest {
                        table
                            .remove(k.as_str())
                            .map_err(err("saving to the step cache"))?;
                    }
                }
            }
            txn.commit().map_err(err("saving to the step cache"))
        })
        .await
    }

    async fn prune_cached(&self, now: u64) -> Result<u64, Error> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("pruning the step cache"))?;
            let removed = {
                let mut table = txn
                    .open_table(CACHE)
                    .map_err(err("pruning the step cache"))?;
                let mut gone = Vec::new();
                for row in table.iter().map_err(err("pruning the step cache"))? {
                    let (k, v) = row.map_err(err("pruning the step cache"))?;
                    let e: CacheEntry = decode(v.value())?;
                    if !e.is_live(now) {
                        gone.push(k.value().to_string());
                    }
                }
                for k in &gone {
                    table
                        .remove(k.as_str())
                        .map_err(err("pruning the step cache"))?;
                }
                gone.len() as u64
            };
            txn.commit().map_err(err("pruning the step cache"))?;
            Ok(removed)
        })
        .await
    }

    async fn cached_artifacts(&self, now: u64) -> Result<BTreeSet<Digest>, Error> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("reading the step cache"))?;
            let table = txn
                .open_table(CACHE)
                .map_err(err("reading the step cache"))?;
            let mut kept = BTreeSet::new();
            for row in table.iter().map_err(err("reading the step cache"))? {
                let (_, v) = row.map_err(err("reading the step cache"))?;
                let e: CacheEntry = decode(v.value())?;
                if e.is_live(now) {
                    kept.extend(e.artifacts.values().map(|a| a.digest.clone()));
                }
            }
            Ok(kept)
        })
        .await
    }
}
