//! `AuditLog` on Redis: a sorted set scored by a counter (INCR gives each
//! entry its own place, even when two servers record at once), trimmed to
//! the newest `MAX_AUDIT_ENTRIES`.

use async_trait::async_trait;
use redis::AsyncCommands;
use weft_core::ports::{AuditEntry, AuditLog, MAX_AUDIT_ENTRIES};
use weft_core::Error;

use crate::store::{decode, encode, redis_err};
use crate::RedisRunStore;

#[async_trait]
impl AuditLog for RedisRunStore {
    async fn record(&self, entry: &AuditEntry) -> Result<(), Error> {
        let (log, counter) = (self.key(&["audit"]), self.key(&["audit-seq"]));
        let seq: u64 = self
            .conn()
            .incr(&counter, 1)
            .await
            .map_err(redis_err("numbering an audit entry"))?;
        let body = encode(&AuditEntry {
            seq,
            ..entry.clone()
        })?;
        let _: () = redis::pipe()
            .atomic()
            .zadd(&log, body, seq)
            .ignore()
            .zremrangebyrank(&log, 0, -(MAX_AUDIT_ENTRIES as isize) - 1)
            .ignore()
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err("recording an audit entry"))?;
        self.expire_key(&log).await?;
        self.expire_key(&counter).await
    }

    async fn audit(&self, limit: usize, before: Option<u64>) -> Result<Vec<AuditEntry>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let max = match before {
            Some(b) => format!("({b}"),
            None => "+inf".into(),
        };
        let raw: Vec<String> = self
            .conn()
            .zrevrangebyscore_limit(self.key(&["audit"]), max, "-inf", 0, limit as isize)
            .await
            .map_err(redis_err("reading the audit log"))?;
        raw.iter().map(|r| decode(r)).collect()
    }
}
