//! One connection type over a single Redis and a Redis Cluster, so every
//! store call is written once: a `ConnectionManager` (one server,
//! reconnecting) or a cluster connection (routing each key to the primary
//! of its slot, following `MOVED` and `ASK` while slots move).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use weft_core::Error;

use crate::Options;

/// A cheap-to-clone handle on the store's Redis.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    pub async fn open(options: &Options) -> Result<Self, Error> {
        let timeout = Duration::from_millis(options.response_timeout_ms.max(1));
        let failed = |e: redis::RedisError| {
            let nodes: Vec<String> = options
                .nodes()
                .into_iter()
                .map(weft_core::ports::redacted_url)
                .collect();
            Error::backend(format!("redis: connecting to {}", nodes.join(", ")), e)
        };
        if !options.cluster && !options.urls.is_empty() {
            return Err(Error::Invalid(
                "[redis] urls names more nodes of a Redis Cluster: set cluster = true, \
                 or leave urls out for a single Redis"
                    .into(),
            ));
        }
        if options.cluster {
            let client = ClusterClient::builder(options.nodes())
                .response_timeout(timeout)
                .connection_timeout(timeout)
                .build()
                .map_err(failed)?;
            return Ok(Self::Cluster(
                client.get_async_connection().await.map_err(failed)?,
            ));
        }
        let client = redis::Client::open(options.url.as_str())
            .map_err(|e| Error::backend("redis: parsing the URL", e))?;
        let config = ConnectionManagerConfig::new().set_response_timeout(Some(timeout));
        Ok(Self::Single(
            client
                .get_connection_manager_with_config(config)
                .await
                .map_err(failed)?,
        ))
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
