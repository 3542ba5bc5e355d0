//! The change bus between servers over Redis pub/sub: one channel under
//! the store's prefix. Pub/sub keeps nothing: a server that is not
//! listening misses what is said meanwhile, which the bus allows
//! (`weft_core::ports::ChangeBus`).

use async_trait::async_trait;
use futures_util::StreamExt;
use weft_core::ports::ChangeBus;
use weft_core::Error;

use crate::conn::Conn;
use crate::store::redis_err;
use crate::Options;

/// Run changes between the servers sharing one Redis (and prefix).
pub struct RedisChangeBus {
    /// Where a listener subscribes: every node given. A cluster hands what
    /// is published on any node to the subscribers of every node.
    clients: Vec<redis::Client>,
    conn: Conn,
    channel: String,
}

impl RedisChangeBus {
    pub async fn connect(options: &Options) -> Result<Self, Error> {
        // With Sentinels these name them, and are not listened on.
        let clients = options
            .nodes()
            .into_iter()
            .map(redis::Client::open)
            .collect::<Result<_, _>>()
            .map_err(redis_err("parsing the URL"))?;
        Ok(Self {
            clients,
            conn: Conn::open(options).await?,
            channel: format!("{}changes", options.prefix),
        })
    }

    /// A subscription connection to the first node that takes one (with
    /// Sentinels, to the primary they named last).
    async fn pubsub(&self) -> Result<redis::aio::PubSub, Error> {
        let mut last = None;
        let clients = match &self.conn {
            Conn::Sentinel(watched) => vec![watched.client()],
            _ => self.clients.clone(),
        };
        for client in &clients {
            match client.get_async_pubsub().await {
                Ok(pubsub) => return Ok(pubsub),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => redis_err("listening for run changes")(e),
            None => Error::Invalid("redis: no URL to listen on".into()),
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
        let mut pubsub = self.pubsub().await?;
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
