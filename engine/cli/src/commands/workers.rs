//! `weft workers`: live workers, their pools, slots and running attempts —
//! from the server if one is configured, else straight from Redis.

use std::process::ExitCode;

use weft_core::ports::{WorkerInfo, WorkerRegistry};
use weft_store_redis::RedisRunStore;

use crate::config::Config;
use crate::table;

fn gib(bytes: u64) -> String {
    format!("{:.1}GiB", bytes as f64 / (1u64 << 30) as f64)
}

pub async fn workers(config: Config, server: Option<weft_api::Client>) -> anyhow::Result<ExitCode> {
    let list: Vec<WorkerInfo> = match server {
        Some(client) => client.workers().await?,
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            RedisRunStore::connect(config.redis)
                .await?
                .workers(now)
                .await?
        }
    };
    if list.is_empty() {
        println!("no live workers");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|w| {
            // `0:H100(busy),1:H100`: index, name, and whether a step holds it.
            let gpus = if w.slots.gpus.is_empty() {
                "-".to_string()
            } else {
                w.slots
                    .gpus
                    .iter()
                    .map(|g| {
                        let busy = if g.busy { "(busy)" } else { "" };
                        format!("{}:{}{busy}", g.index, g.name.replace(' ', "_"))
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            };
            vec![
                w.name.clone(),
                format!("{}:{}", w.host, w.pid),
                w.pools.join(","),
                w.slots.cpus.to_string(),
                gib(w.slots.memory_bytes),
                gpus,
                format!("{}/{}", w.running.len(), w.slots.concurrency),
                w.status_url.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["WORKER", "HOST:PID", "POOLS", "CPUS", "MEMORY", "GPUS", "BUSY", "STATUS"],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
