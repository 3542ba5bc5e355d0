//! A step plugin: statistics of a text. Input `{ "text": "..." }` (or
//! `{ "texts": [...] }`, joined by newlines); outputs `lines`, `words`,
//! `bytes`, `sha256` and the `top` words with their counts (config-free;
//! `top` takes `limit`, default 5).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use weft_plugin_support as _;

wit_bindgen::generate!({ world: "step-plugin", path: "../../wit" });

use exports::weft::plugin::step::{Context, Guest};
use weft::plugin::host::{log, Level};

struct Plugin;

impl Guest for Plugin {
    fn run(_: Context, input: String) -> Result<String, String> {
        let input: Value = serde_json::from_str(&input).map_err(|e| e.to_string())?;
        let text = match (input.get("text"), input.get("texts")) {
            (Some(Value::String(t)), _) => t.clone(),
            (_, Some(Value::Array(ts))) => ts
                .iter()
                .map(|t| t.as_str().map_or_else(|| t.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => return Err("input needs `text` (a string) or `texts` (a list)".into()),
        };
        let limit = input.get("limit").and_then(Value::as_u64).unwrap_or(5) as usize;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for w in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            *counts.entry(w.to_lowercase()).or_default() += 1;
        }
        let mut top: Vec<(String, u64)> = counts.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(limit);
        let digest = Sha256::digest(text.as_bytes());
        let sha256: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        log(Level::Info, &format!("hashed {} bytes", text.len()));
        Ok(json!({
            "lines": text.lines().count(),
            "words": text.split_whitespace().count(),
            "bytes": text.len(),
            "sha256": sha256,
            "top": top.into_iter().map(|(w, n)| json!([w, n])).collect::<Vec<_>>(),
        })
        .to_string())
    }
}

export!(Plugin);
