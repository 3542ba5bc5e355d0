//! `Deliveries` in redb: delivery key → (run id, expires at), in one write
//! transaction, so a delivery is recorded once; past the bound, expired
//! records go, then those that expire soonest.

use async_trait::async_trait;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use weft_core::ports::{Deliveries, MAX_DELIVERIES};
use weft_core::Error;

use crate::{decode, encode, err, EmbeddedRunStore};

pub(crate) const DELIVERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("deliveries");

#[async_trait]
impl Deliveries for EmbeddedRunStore {
    async fn record_delivery(
        &self,
        key: &str,
        run_id: &str,
        now: u64,
        expires_at: u64,
    ) -> Result<Option<String>, Error> {
        let (key, body) = (key.to_string(), encode(&(run_id, expires_at))?);
        self.blocking(move |db| {
            let what = "recording a webhook delivery";
            let txn = db.begin_write().map_err(err(what))?;
            let found = {
                let mut table = txn.open_table(DELIVERIES).map_err(err(what))?;
                let current: Option<(String, u64)> = table
                    .get(key.as_str())
                    .map_err(err(what))?
                    .map(|v| decode(v.value()))
                    .transpose()?;
                match current {
                    Some((run, until)) if until > now => Some(run),
                    _ => {
                        table
                            .insert(key.as_str(), body.as_slice())
                            .map_err(err(what))?;
                        if table.len().map_err(err(what))? > MAX_DELIVERIES as u64 {
                            let mut all: Vec<(u64, String)> = Vec::new();
                            for row in table.iter().map_err(err(what))? {
                                let (k, v) = row.map_err(err(what))?;
                                let (_, until): (String, u64) = decode(v.value())?;
                                all.push((until, k.value().to_string()));
                            }
                            // Soonest to expire first: the expired, then
                            // as many more as the bound needs.
                            all.sort();
                            let expired = all.iter().filter(|(until, _)| *until <= now).count();
                            let drop = expired.max(all.len() - MAX_DELIVERIES);
                            for (_, k) in &all[..drop] {
                                table.remove(k.as_str()).map_err(err(what))?;
                            }
                        }
                        None
                    }
                }
            };
            txn.commit().map_err(err(what))?;
            Ok(found)
        })
        .await
    }
}
