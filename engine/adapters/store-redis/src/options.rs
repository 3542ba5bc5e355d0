//! How to reach Redis and name keys there.

use serde::Deserialize;

/// Redis settings. Every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Options {
    /// Redis URL. Default: `redis://127.0.0.1:6379/`. With `cluster`, one
    /// node of the cluster (a seed: the others are learnt from it).
    pub url: String,
    /// The Redis at `url` is a Redis Cluster. Each run's keys then share a
    /// hash tag (its id), so its scripts touch one slot and runs spread
    /// over the primaries; the keys shared by all runs (indexes, workers,
    /// tokens, secrets) share the prefix's tag. Default: false.
    pub cluster: bool,
    /// More seed nodes of the cluster, tried when `url` does not answer;
    /// with `sentinel-master`, the other Sentinels. Default: none.
    pub urls: Vec<String>,
    /// The name of the primary a set of Redis Sentinels watches (its
    /// `sentinel monitor` name): `url` and `urls` then name the Sentinels,
    /// which say where the primary is now, and weft asks them again when
    /// the primary it uses stops answering or turns replica (a failover).
    /// The primary is reached with `url`'s user, password and database.
    /// Default: none (no Sentinel).
    pub sentinel_master: Option<String>,
    /// Prefix of every key. Default: `weft`.
    pub prefix: String,
    /// Chunks kept per attempt log stream (approximate cap). Default: 100000.
    pub log_max_chunks: u64,
    /// Every key written expires after this many seconds: for tests on a
    /// shared Redis. Default: none (keys persist).
    pub expire_after_secs: Option<u64>,
    /// Replicas that must hold a write before the store call that made it
    /// returns (Redis `WAIT`), for the writes a failover must not lose:
    /// runs created, events appended, leases taken, attempts claimed,
    /// finished or aborted. Redis replicates asynchronously, so without it
    /// a write the primary acknowledged just before it died may be missing
    /// on the replica promoted in its place. Best effort: a write that
    /// reaches fewer within `wait-timeout-ms` is kept (it is on the
    /// primary) and a warning says so. Default: 0 (no wait).
    pub wait_for_replicas: u32,
    /// How long a write waits for `wait-for-replicas`, in milliseconds.
    /// Default: 1000.
    pub wait_timeout_ms: u64,
    /// How long one command may take before it counts as failed, in
    /// milliseconds. Default: 5000.
    pub response_timeout_ms: u64,
    /// How long calls that are safe to repeat (reads, renewals, finishing a
    /// claim, appends checked by length) are tried again through timeouts
    /// and lost connections before failing, in milliseconds. Default: 10000.
    pub retry_for_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/".into(),
            cluster: false,
            urls: Vec::new(),
            sentinel_master: None,
            wait_for_replicas: 0,
            wait_timeout_ms: 1_000,
            prefix: "weft".into(),
            log_max_chunks: 100_000,
            expire_after_secs: None,
            response_timeout_ms: 5_000,
            retry_for_ms: 10_000,
        }
    }
}

impl Options {
    /// Every node given: `url`, then `urls`.
    pub(crate) fn nodes(&self) -> Vec<&str> {
        std::iter::once(self.url.as_str())
            .chain(self.urls.iter().map(String::as_str))
            .collect()
    }
}
