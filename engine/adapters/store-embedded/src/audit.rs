//! `AuditLog` in redb: entries by their place, numbered in the writing
//! transaction, the oldest dropped past `MAX_AUDIT_ENTRIES`.

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use weft_core::ports::{AuditEntry, AuditLog, MAX_AUDIT_ENTRIES};
use weft_core::Error;

use crate::{decode, encode, err, EmbeddedRunStore};

pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

#[async_trait]
impl AuditLog for EmbeddedRunStore {
    async fn record(&self, entry: &AuditEntry) -> Result<(), Error> {
        let entry = entry.clone();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("recording an audit entry"))?;
            {
                let mut log = txn
                    .open_table(AUDIT)
                    .map_err(err("recording an audit entry"))?;
                let last = log
                    .last()
                    .map_err(err("recording an audit entry"))?
                    .map_or(0, |(k, _)| k.value());
                let seq = last + 1;
                let body = encode(&AuditEntry { seq, ..entry })?;
                log.insert(seq, body.as_slice())
                    .map_err(err("recording an audit entry"))?;
                if log.len().map_err(err("recording an audit entry"))? > MAX_AUDIT_ENTRIES {
                    log.pop_first().map_err(err("trimming the audit log"))?;
                }
            }
            txn.commit().map_err(err("recording an audit entry"))
        })
        .await
    }

    async fn audit(&self, limit: usize, before: Option<u64>) -> Result<Vec<AuditEntry>, Error> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("reading the audit log"))?;
            let log = match txn.open_table(AUDIT) {
                Ok(log) => log,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(err("reading the audit log")(e)),
            };
            let range = log
                .range(..before.unwrap_or(u64::MAX))
                .map_err(err("reading the audit log"))?;
            range
                .rev()
                .take(limit)
                .map(|entry| {
                    let (_, v) = entry.map_err(err("reading the audit log"))?;
                    decode(v.value())
                })
                .collect()
        })
        .await
    }
}
