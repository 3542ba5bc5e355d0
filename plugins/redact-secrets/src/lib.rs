//! A post hook that keeps secrets out of what a step records: its outputs,
//! its failure reason and its log.
//!
//! Config: `values` (literal secrets to hide wherever they appear) and
//! `keys` (names whose values are secret: an output key or a `key=value` /
//! `key: value` in text; default password, secret, token, api_key, apikey).
//! Every hidden value becomes `***`.

use serde_json::Value;

use weft_plugin_support as _;

wit_bindgen::generate!({ world: "hook-plugin", path: "../../wit" });

use exports::weft::plugin::hook::{Context, Guest};

const MASK: &str = "***";
const DEFAULT_KEYS: &[&str] = &["password", "secret", "token", "api_key", "apikey"];

struct Plugin;

struct Rules {
    values: Vec<String>,
    keys: Vec<String>,
}

impl Rules {
    fn from(ctx: &Context) -> Self {
        let config: Value = serde_json::from_str(&ctx.config).unwrap_or(Value::Null);
        let list = |k: &str| -> Option<Vec<String>> {
            config.get(k).and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
        };
        Self {
            values: list("values").unwrap_or_default(),
            keys: list("keys")
                .unwrap_or_else(|| DEFAULT_KEYS.iter().map(|s| s.to_string()).collect())
                .into_iter()
                .map(|k| k.to_ascii_lowercase())
                .collect(),
        }
    }

    fn secret_key(&self, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        self.keys.iter().any(|k| key.contains(k.as_str()))
    }

    fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            out = out.replace(v.as_str(), MASK);
        }
        out.split_inclusive('\n')
            .map(|line| self.line(line))
            .collect()
    }

    /// `password=hunter2` and `token: abc` lose their values.
    fn line(&self, line: &str) -> String {
        for sep in ['=', ':'] {
            if let Some((key, rest)) = line.split_once(sep) {
                let name = key.trim().rsplit(|c: char| c.is_whitespace()).next().unwrap_or("");
                if !name.is_empty() && self.secret_key(name) && !rest.trim().is_empty() {
                    let end = if line.ends_with('\n') { "\n" } else { "" };
                    return format!("{key}{sep} {MASK}{end}");
                }
            }
        }
        line.to_string()
    }

    fn value(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.text(s),
            Value::Array(items) => items.iter_mut().for_each(|i| self.value(i)),
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if self.secret_key(k) {
                        *child = Value::String(MASK.into());
                    } else {
                        self.value(child);
                    }
                }
            }
            _ => {}
        }
    }
}

impl Guest for Plugin {
    fn pre_process(_: Context, input: String) -> Result<String, String> {
        Ok(input)
    }

    fn post_process(ctx: Context, result: String) -> Result<String, String> {
        let rules = Rules::from(&ctx);
        let mut result: Value = serde_json::from_str(&result).map_err(|e| e.to_string())?;
        for key in ["outputs", "reason", "log-tail"] {
            if let Some(v) = result.get_mut(key) {
                rules.value(v);
            }
        }
        Ok(result.to_string())
    }

    fn filter_log(ctx: Context, chunk: String) -> String {
        Rules::from(&ctx).text(&chunk)
    }
}

export!(Plugin);
