//! A post hook that turns `key=value` lines of a step's log into outputs:
//! `loss=0.25` in the log becomes `outputs.metrics.loss = 0.25`.
//!
//! Config: `prefix` (only lines starting with it count, and it is removed;
//! default none) and `into` (the output key to fill; default `metrics`).
//! Numbers become numbers; anything else stays text. A later line wins.

use serde_json::{Map, Value};

use weft_plugin_support as _;

wit_bindgen::generate!({ world: "hook-plugin", path: "../../wit" });

use exports::weft::plugin::hook::{Context, Guest};
use weft::plugin::host::{log, Level};

struct Plugin;

impl Guest for Plugin {
    fn pre_process(_: Context, input: String) -> Result<String, String> {
        Ok(input)
    }

    fn post_process(ctx: Context, result: String) -> Result<String, String> {
        let config: Value = serde_json::from_str(&ctx.config).map_err(|e| e.to_string())?;
        let prefix = config.get("prefix").and_then(Value::as_str).unwrap_or("");
        let into = config.get("into").and_then(Value::as_str).unwrap_or("metrics");
        let mut result: Value = serde_json::from_str(&result).map_err(|e| e.to_string())?;
        let tail = result.get("log-tail").and_then(Value::as_str).unwrap_or("");
        let metrics = extract(tail, prefix);
        if metrics.is_empty() {
            return Ok(result.to_string());
        }
        log(Level::Info, &format!("extracted {} metrics", metrics.len()));
        if let Some(outputs) = result.get_mut("outputs").and_then(Value::as_object_mut) {
            outputs.insert(into.to_string(), Value::Object(metrics));
        }
        Ok(result.to_string())
    }

    fn filter_log(_: Context, chunk: String) -> String {
        chunk
    }
}

export!(Plugin);

fn extract(log: &str, prefix: &str) -> Map<String, Value> {
    let mut metrics = Map::new();
    for line in log.lines() {
        let Some(line) = line.trim().strip_prefix(prefix) else {
            continue;
        };
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        let is_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
        if !is_key {
            continue;
        }
        let value = match value.parse::<f64>() {
            Ok(x) if x.is_finite() => serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number),
            _ => Value::String(value.to_string()),
        };
        metrics.insert(key.to_string(), value);
    }
    metrics
}
