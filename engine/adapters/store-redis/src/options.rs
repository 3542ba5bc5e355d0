//! How to reach Redis and name keys there.

use serde::Deserialize;

/// Redis settings. Every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Options {
    /// Redis URL. Default: `redis://127.0.0.1:6379/`.
    pub url: String,
    /// Prefix of every key. Default: `weft`.
    pub prefix: String,
    /// Chunks kept per attempt log stream (approximate cap). Default: 100000.
    pub log_max_chunks: u64,
    /// Every key written expires after this many seconds: for tests on a
    /// shared Redis. Default: none (keys persist).
    pub expire_after_secs: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/".into(),
            prefix: "weft".into(),
            log_max_chunks: 100_000,
            expire_after_secs: None,
        }
    }
}
