//! A post hook that checks a CSV artifact the step left, without a file
//! system: it reads the artifact through the host (`read-artifact`), checks
//! that its header has the columns the config names, counts its rows, and
//! records `outputs.<artifact>` = `{"rows": N, "columns": [...]}`.
//!
//! Config: `artifact` (the name the step declares, or `<step>/<name>` for
//! one it uses; required), `columns` (required header names; default
//! none), `max-bytes` (read at most this much; default 16 MiB).

use serde_json::{json, Value};

use weft_plugin_support as _;

wit_bindgen::generate!({ world: "hook-plugin", path: "../../wit" });

use exports::weft::plugin::hook::{Context, Guest};
use weft::plugin::host::{log, read_artifact, Level};

struct Plugin;

/// Reads up to `max` bytes of `name`, a piece (at most 1 MiB) at a time.
fn read_all(name: &str, max: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    loop {
        let piece = read_artifact(name, bytes.len() as u64, 1 << 20)?;
        if piece.is_empty() {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&piece);
        if bytes.len() as u64 > max {
            return Err(format!("artifact `{name}` is larger than max-bytes ({max})"));
        }
    }
}

impl Guest for Plugin {
    fn pre_process(_: Context, input: String) -> Result<String, String> {
        Ok(input)
    }

    fn post_process(ctx: Context, result: String) -> Result<String, String> {
        let config: Value = serde_json::from_str(&ctx.config).map_err(|e| e.to_string())?;
        let mut result: Value = serde_json::from_str(&result).map_err(|e| e.to_string())?;
        if result.get("status").and_then(Value::as_str) != Some("succeeded") {
            return Ok(result.to_string());
        }
        let name = config
            .get("artifact")
            .and_then(Value::as_str)
            .ok_or("csv-check needs `artifact` in its config")?;
        let max = config.get("max-bytes").and_then(Value::as_u64).unwrap_or(16 << 20);
        let bytes = read_all(name, max)?;
        let text = String::from_utf8(bytes).map_err(|_| format!("artifact `{name}` is not UTF-8 text"))?;
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap_or("")
            .split(',')
            .map(|c| c.trim().to_string())
            .collect();
        let wanted = config.get("columns").and_then(Value::as_array).cloned().unwrap_or_default();
        let missing: Vec<&str> = wanted
            .iter()
            .filter_map(Value::as_str)
            .filter(|c| !header.iter().any(|h| h == c))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "artifact `{name}` has no column {} (its header: {})",
                missing.join(", "),
                header.join(",")
            ));
        }
        let rows = lines.filter(|l| !l.trim().is_empty()).count();
        log(Level::Info, &format!("{name}: {rows} rows, columns {}", header.join(",")));
        if let Some(outputs) = result.get_mut("outputs").and_then(Value::as_object_mut) {
            outputs.insert(name.to_string(), json!({"rows": rows, "columns": header}));
        }
        Ok(result.to_string())
    }

    fn filter_log(_: Context, chunk: String) -> String {
        chunk
    }
}

export!(Plugin);
