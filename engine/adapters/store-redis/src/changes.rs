//! The change bus between servers over Redis pub/sub: one channel under
//! the store's prefix. Pub/sub keeps nothing: a server that is not
//! listening misses what is said meanwhile, which the bus allows
//! (`weft_core::ports::ChangeBus`).

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use weft_core::ports::ChangeBus;
use weft_core::Error;

use crate::store::redis_err;
use crate::Options;

/// Run changes between the servers sharing one Redis (and prefix).
pub struct RedisChangeBus {
    client: redis::Client,
    conn: ConnectionManager,
    channel: String,
}

impl RedisChangeBus {
    pub async fn connect(options: &Options) -> Result<Self, Error> {
        let client =
            redis::Client::open(options.url.as_str()).map_err(redis_err("parsing the URL"))?;
        let conn = client
            .get_connection_manager()
            .await
            .map_err(redis_err("connecting for run changes"))?;
        Ok(Self {
            client,
            conn,
            channel: format!("{}changes", options.prefix),
        })
    }
}

#[async_trait]
impl ChangeBus for RedisChangeBus {
    async fn publish(&self, change: &[u8]) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(change)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(redis_err("publishing a run change"))?;
        Ok(())
    }

    async fn listen(&self, deliver: &(dyn Fn(Vec<u8>) + Send + Sync)) -> Result<(), Error> {
        let mut pubsub = self
            .client
            .get_async_pubsub()
            .await
            .map_err(redis_err("listening for run changes"))?;
        pubsub
            .subscribe(&self.channel)
            .await
            .map_err(redis_err("subscribing to run changes"))?;
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            deliver(message.get_payload_bytes().to_vec());
        }
        Err(Error::backend(
            "redis: listening for run changes",
            std::io::Error::other("the connection closed"),
        ))
    }
}
