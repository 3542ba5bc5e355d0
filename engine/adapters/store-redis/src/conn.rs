//! One connection type over a single Redis, a primary found through Redis
//! Sentinel, and a Redis Cluster, so every store call is written once: a
//! `ConnectionManager` (one server, reconnecting), the same to the primary
//! the Sentinels name (asked again after a failover), or a cluster
//! connection (routing each key to the primary of its slot, following
//! `MOVED` and `ASK` while slots move).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Value};
use weft_core::Error;

use crate::Options;

/// A cheap-to-clone handle on the store's Redis.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Sentinel(Arc<Watched>),
    Cluster(ClusterConnection),
}

/// The primary a set of Sentinels names, and the connection to it: every
/// clone of the store's connection uses the latest.
pub(crate) struct Watched {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    config: ConnectionManagerConfig,
    /// The connection to the primary last named, and how many times it
    /// has been asked for (a caller that saw generation `n` fail asks
    /// again only if nobody has since).
    primary: std::sync::Mutex<(u64, ConnectionManager, redis::Client)>,
    /// Since when the Sentinels have named no primary that answers: one
    /// warning per failover, not one per failed call.
    trouble: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How every connection to a Redis node is set: commands go out at once.
/// One connection carries many callers' commands (claims, heartbeats,
/// event appends) at a time, and with Nagle's algorithm the kernel holds
/// a command back while the one before it is unanswered.
fn tcp_settings() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

/// Whether `e` may mean the primary moved: a failure worth trying again,
/// or an answer that it is a replica now.
fn primary_moved(e: &redis::RedisError) -> bool {
    crate::retry::transient(e)
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                redis::ServerErrorKind::ReadOnly | redis::ServerErrorKind::MasterDown
            )
        )
}

impl Watched {
    async fn open(options: &Options, master: &str, timeout: Duration) -> redis::RedisResult<Self> {
        let first = options.url.as_str().into_connection_info()?;
        let node = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(first.redis_settings().clone())
            .set_tcp_settings(tcp_settings());
        let mut sentinels = SentinelClient::build(
            options.nodes(),
            master.to_string(),
            Some(node),
            SentinelServerType::Master,
        )?;
        // One quick reconnection try, not the default six with backoff
        // (six seconds): past it, the Sentinels are asked where the
        // primary is now.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout))
            .set_number_of_retries(1);
        let client = sentinels.async_get_client().await?;
        let manager = client
            .get_connection_manager_with_config(config.clone())
            .await?;
        Ok(Self {
            sentinels: tokio::sync::Mutex::new(sentinels),
            config,
            primary: std::sync::Mutex::new((0, manager, client)),
            trouble: std::sync::Mutex::new(None),
        })
    }

    fn latest(&self) -> (u64, ConnectionManager) {
        let primary = self.primary.lock().expect("primary lock");
        (primary.0, primary.1.clone())
    }

    /// A client of the primary last named (for subscriptions).
    pub fn client(&self) -> redis::Client {
        self.primary.lock().expect("primary lock").2.clone()
    }

    /// Asks the Sentinels where the primary is, unless someone has since
    /// `seen`; keeps the connection it had if they cannot say.
    async fn ask_again(&self, seen: u64) {
        let mut sentinels = self.sentinels.lock().await;
        if self.latest().0 != seen {
            return;
        }
        let asked = async {
            let client = sentinels.async_get_client().await?;
            let manager = client
                .get_connection_manager_with_config(self.config.clone())
                .await?;
            Ok::<_, redis::RedisError>((client, manager))
        };
        let failed = match tokio::time::timeout(Duration::from_secs(10), asked).await {
            Ok(Ok((client, manager))) => {
                let mut primary = self.primary.lock().expect("primary lock");
                let addr = client.get_connection_info().addr().to_string();
                if primary.2.get_connection_info().addr().to_string() != addr {
                    let since = self.trouble.lock().expect("trouble lock").take();
                    let after = since.map(|t| format!(" after {:?}", t.elapsed()));
                    tracing::info!(
                        "redis: the Sentinels name a new primary, {addr}{}",
                        after.unwrap_or_default()
                    );
                }
                *primary = (seen + 1, manager, client);
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "they did not answer".to_string(),
        };
        let mut trouble = self.trouble.lock().expect("trouble lock");
        if trouble.is_none() {
            *trouble = Some(std::time::Instant::now());
            tracing::warn!(
                "redis: the primary does not answer, and the Sentinels name none that does \
                 ({failed}); asking them again as calls fail, until a failover"
            );
        } else {
            tracing::debug!("redis: asking the Sentinels for the primary: {failed}");
        }
    }

    fn command<'a>(self: &Arc<Self>, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let this = self.clone();
        Box::pin(async move {
            let (seen, mut conn) = this.latest();
            let answer = conn.req_packed_command(cmd).await;
            if let Err(e) = &answer {
                if primary_moved(e) {
                    this.ask_again(seen).await;
                }
            }
            answer
        })
    }

    fn commands<'a>(
        self: &Arc<Self>,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let this = self.clone();
        Box::pin(async move {
            let (seen, mut conn) = this.latest();
            let answer = conn.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &answer {
                if primary_moved(e) {
                    this.ask_again(seen).await;
                }
            }
            answer
        })
    }
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
        if options.cluster && options.sentinel_master.is_some() {
            return Err(Error::Invalid(
                "[redis] cluster and sentinel-master exclude each other: a Redis Cluster \
                 fails over by itself, without Sentinels"
                    .into(),
            ));
        }
        if !options.cluster && options.sentinel_master.is_none() && !options.urls.is_empty() {
            return Err(Error::Invalid(
                "[redis] urls names more nodes of a Redis Cluster, or more Sentinels: \
                 set cluster = true or sentinel-master, or leave urls out for a single Redis"
                    .into(),
            ));
        }
        if let Some(master) = &options.sentinel_master {
            let watched = Watched::open(options, master, timeout).await.map_err(|e| {
                let nodes: Vec<String> = options
                    .nodes()
                    .into_iter()
                    .map(weft_core::ports::redacted_url)
                    .collect();
                Error::backend(
                    format!(
                        "redis: asking the Sentinels at {} for primary {master:?}",
                        nodes.join(", ")
                    ),
                    e,
                )
            })?;
            return Ok(Self::Sentinel(Arc::new(watched)));
        }
        if options.cluster {
            let client = ClusterClient::builder(options.nodes())
                .tcp_settings(tcp_settings())
                .response_timeout(timeout)
                .connection_timeout(timeout)
                .build()
                .map_err(failed)?;
            return Ok(Self::Cluster(
                client.get_async_connection().await.map_err(failed)?,
            ));
        }
        let info = options
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| Error::backend("redis: parsing the URL", e))?
            .set_tcp_settings(tcp_settings());
        let client =
            redis::Client::open(info).map_err(|e| Error::backend("redis: parsing the URL", e))?;
        let config = ConnectionManagerConfig::new().set_response_timeout(Some(timeout));
        Ok(Self::Single(
            client
                .get_connection_manager_with_config(config)
                .await
                .map_err(failed)?,
        ))
    }
}

impl Conn {
    /// Waits until `replicas` replicas hold every write made so far on the
    /// connection that wrote `key` (Redis `WAIT`), at most `timeout_ms`;
    /// how many do. On a cluster, asked of `key`'s primary.
    pub async fn wait_for_replicas(
        &self,
        key: &str,
        replicas: u32,
        timeout_ms: u64,
    ) -> redis::RedisResult<u32> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout_ms);
        match self {
            Self::Cluster(c) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let route = Route::with_key(key, SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                let answer = c.clone().route_command(cmd, routing).await?;
                Ok(redis::from_redis_value(answer)?)
            }
            _ => cmd.query_async(&mut self.clone()).await,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Sentinel(w) => w.command(cmd),
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
            Self::Sentinel(w) => w.commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Sentinel(w) => w.latest().1.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Conn;
    use crate::Options;

    /// `WAIT` reaches the primary of the key on a cluster (each of the
    /// test cluster's primaries has one replica) and on a Sentinel's
    /// primary (one replica): it answers that the replica holds the write.
    #[tokio::test]
    async fn a_write_is_waited_for_on_a_cluster_and_behind_sentinels() {
        let cluster = weft_testkit::redis_cluster::RedisCluster::shared().urls();
        let sentinels = weft_testkit::redis_sentinel::RedisSentinel::shared().urls();
        let setups = [
            Options {
                url: cluster[0].clone(),
                urls: cluster[1..].to_vec(),
                cluster: true,
                ..Options::default()
            },
            Options {
                url: sentinels[0].clone(),
                sentinel_master: Some(weft_testkit::redis_sentinel::MASTER.into()),
                ..Options::default()
            },
        ];
        for options in setups {
            let conn = Conn::open(&options).await.unwrap();
            for i in 0..5 {
                let key = weft_testkit::unique(&format!("waited-{i}"));
                let mut c = conn.clone();
                let (): () = redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("EX")
                    .arg(60)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                let held = conn.wait_for_replicas(&key, 1, 5_000).await.unwrap();
                assert_eq!(held, 1, "{key} on {}", options.url);
            }
        }
    }
}
