//! `SecretStore` in redb: sealed secrets by name (never in clear).

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use weft_core::ports::SecretStore;
use weft_core::secrets::{StoredSecret, MAX_SECRETS};
use weft_core::Error;

use crate::{decode, encode, err, EmbeddedRunStore};

pub(crate) const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");

#[async_trait]
impl SecretStore for EmbeddedRunStore {
    async fn put_secret(&self, secret: &StoredSecret) -> Result<(), Error> {
        let (name, body) = (secret.name.clone(), encode(secret)?);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("storing a secret"))?;
            {
                let mut table = txn.open_table(SECRETS).map_err(err("storing a secret"))?;
                let exists = table
                    .get(name.as_str())
                    .map_err(err("storing a secret"))?
                    .is_some();
                let count = table.len().map_err(err("storing a secret"))?;
                if !exists && count >= MAX_SECRETS as u64 {
                    return Err(Error::Invalid(format!(
                        "{MAX_SECRETS} secrets are set already: remove one first"
                    )));
                }
                table
                    .insert(name.as_str(), body.as_slice())
                    .map_err(err("storing a secret"))?;
            }
            txn.commit().map_err(err("storing a secret"))
        })
        .await
    }

    async fn secret(&self, name: &str) -> Result<Option<StoredSecret>, Error> {
        let name = name.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("reading a secret"))?;
            let table = txn.open_table(SECRETS).map_err(err("reading a secret"))?;
            let raw = table.get(name.as_str()).map_err(err("reading a secret"))?;
            raw.map(|r| decode(r.value())).transpose()
        })
        .await
    }

    async fn secrets(&self) -> Result<Vec<StoredSecret>, Error> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("listing secrets"))?;
            let table = txn.open_table(SECRETS).map_err(err("listing secrets"))?;
            let all = table.iter().map_err(err("listing secrets"))?;
            all.map(|entry| {
                let (_, v) = entry.map_err(err("listing secrets"))?;
                decode(v.value())
            })
            .collect()
        })
        .await
    }

    async fn remove_secret(&self, name: &str) -> Result<bool, Error> {
        let name = name.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("removing a secret"))?;
            let removed = {
                let mut table = txn.open_table(SECRETS).map_err(err("removing a secret"))?;
                let removed = table
                    .remove(name.as_str())
                    .map_err(err("removing a secret"))?
                    .is_some();
                removed
            };
            txn.commit().map_err(err("removing a secret"))?;
            Ok(removed)
        })
        .await
    }
}
