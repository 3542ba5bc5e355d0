//! What the Chromium benches share: a signed-in browser on a cluster, and
//! percentiles of measured times.

use serde_json::json;

use crate::browser::Browser;
use crate::cluster::Cluster;

/// The `p` quantile (0 to 1) of sorted times; NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A browser on `cluster`'s origin with the admin token set.
pub async fn open(cluster: &Cluster) -> Browser {
    let b = Browser::start().await;
    b.goto(&format!("{}/healthz", cluster.url)).await;
    b.eval(
        "localStorage.clear(); localStorage.setItem('weft.token', arguments[0])",
        json!([cluster.admin_token]),
    )
    .await;
    b
}
