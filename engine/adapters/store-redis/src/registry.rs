//! `WorkerRegistry` on Redis: one key per worker that expires with its
//! heartbeat, and a set of names to find them.

use async_trait::async_trait;
use redis::AsyncCommands;
use weft_core::ports::{WorkerInfo, WorkerRegistry};
use weft_core::Error;

use crate::store::{decode, encode, redis_err};
use crate::RedisRunStore;

#[async_trait]
impl WorkerRegistry for RedisRunStore {
    async fn heartbeat(&self, info: &WorkerInfo, ttl_ms: u64) -> Result<(), Error> {
        let (key, set, body) = (
            self.key(&["worker", &info.name]),
            self.key(&["workers"]),
            encode(info)?,
        );
        crate::retry::retrying(self.retry_for(), "recording a heartbeat", || {
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&key)
                .arg(&body)
                .arg("PX")
                .arg(ttl_ms.max(1))
                .ignore()
                .sadd(&set, &info.name)
                .ignore();
            let mut conn = self.conn();
            async move { pipe.query_async::<()>(&mut conn).await }
        })
        .await
    }

    async fn workers(&self, _now: u64) -> Result<Vec<WorkerInfo>, Error> {
        let set = self.key(&["workers"]);
        let names: Vec<String> =
            crate::retry::retrying(self.retry_for(), "listing workers", || {
                let (mut conn, set) = (self.conn(), set.clone());
                async move { conn.smembers(set).await }
            })
            .await?;
        let mut conn = self.conn();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = names.iter().map(|n| self.key(&["worker", n])).collect();
        let raws: Vec<Option<String>> = conn
            .mget(&keys)
            .await
            .map_err(redis_err("reading workers"))?;
        let mut live = Vec::new();
        for (name, raw) in names.iter().zip(raws) {
            match raw {
                Some(r) => live.push(decode::<WorkerInfo>(&r)?),
                // Expired: forget the name too.
                None => {
                    let _: () = conn
                        .srem(self.key(&["workers"]), name)
                        .await
                        .map_err(redis_err("pruning workers"))?;
                }
            }
        }
        live.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(live)
    }

    async fn leave(&self, name: &str) -> Result<(), Error> {
        let mut conn = self.conn();
        let _: () = conn
            .del(self.key(&["worker", name]))
            .await
            .map_err(redis_err("removing a worker"))?;
        let _: () = conn
            .srem(self.key(&["workers"]), name)
            .await
            .map_err(redis_err("removing a worker"))?;
        Ok(())
    }
}
