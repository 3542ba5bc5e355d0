//! A pre hook that checks a step's inputs against a JSON Schema given in the
//! workflow (`config = { schema = { ... } }`) and fails the attempt, naming
//! every mismatch, before the step runs. Properties the inputs lack get the
//! schema's `default`, so the step sees them in `$WEFT_INPUTS`.
//!
//! Supported keywords (the ones workflow inputs need): `type`, `enum`,
//! `const`, `required`, `properties`, `additionalProperties` (boolean),
//! `items`, `minItems`, `maxItems`, `minLength`, `maxLength`, `minimum`,
//! `maximum`, `exclusiveMinimum`, `exclusiveMaximum`. Unknown keywords are
//! ignored, as JSON Schema asks.

use serde_json::Value;

use weft_plugin_support as _;

wit_bindgen::generate!({ world: "hook-plugin", path: "../../wit" });

use exports::weft::plugin::hook::{Context, Guest};
use weft::plugin::host::{log, Level};

struct Plugin;

impl Guest for Plugin {
    fn pre_process(ctx: Context, input: String) -> Result<String, String> {
        let config: Value = serde_json::from_str(&ctx.config).map_err(|e| e.to_string())?;
        let Some(schema) = config.get("schema") else {
            return Err("config needs a `schema` table".into());
        };
        let mut payload: Value = serde_json::from_str(&input).map_err(|e| e.to_string())?;
        let mut inputs = payload.get("inputs").cloned().unwrap_or(Value::Null);
        let filled = fill_defaults(schema, &mut inputs);
        let mut problems = Vec::new();
        check(schema, &inputs, "inputs", &mut problems);
        if problems.is_empty() {
            log(Level::Info, "inputs match the schema");
            if filled == 0 {
                return Ok(input);
            }
            log(Level::Info, &format!("filled {filled} default(s)"));
            payload["inputs"] = inputs;
            Ok(payload.to_string())
        } else {
            Err(format!(
                "inputs do not match the schema: {}",
                problems.join("; ")
            ))
        }
    }

    fn post_process(_: Context, result: String) -> Result<String, String> {
        Ok(result)
    }

    fn filter_log(_: Context, chunk: String) -> String {
        chunk
    }
}

export!(Plugin);

/// Gives missing properties their schema `default`; returns how many.
fn fill_defaults(schema: &Value, v: &mut Value) -> usize {
    let (Some(props), Value::Object(map)) = (
        schema.get("properties").and_then(Value::as_object),
        v,
    ) else {
        return 0;
    };
    let mut filled = 0;
    for (k, sub) in props {
        match (map.get_mut(k), sub.get("default")) {
            (Some(child), _) => filled += fill_defaults(sub, child),
            (None, Some(d)) => {
                map.insert(k.clone(), d.clone());
                filled += 1;
            }
            (None, None) => {}
        }
    }
    filled
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, want: &str) -> bool {
    let got = type_name(v);
    got == want || (want == "number" && got == "integer")
}

fn check(schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let Some(s) = schema.as_object() else { return };
    if let Some(t) = s.get("type") {
        let wanted: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !wanted.is_empty() && !wanted.iter().any(|w| has_type(v, w)) {
            out.push(format!(
                "{at}: expected {}, got {}",
                wanted.join(" or "),
                type_name(v)
            ));
            return;
        }
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.contains(v) {
            out.push(format!("{at}: {v} is not one of {}", Value::Array(options.clone())));
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            out.push(format!("{at}: expected {c}, got {v}"));
        }
    }
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(required)) = s.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        out.push(format!("{at}: `{r}` is required"));
                    }
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            for (k, child) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => check(sub, child, &format!("{at}.{k}"), out),
                    None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        out.push(format!("{at}: `{k}` is not allowed"))
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            bound(s, "minItems", items.len() as f64, at, "items", false, out);
            bound(s, "maxItems", items.len() as f64, at, "items", true, out);
            if let Some(sub) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(sub, item, &format!("{at}[{i}]"), out);
                }
            }
        }
        Value::String(text) => {
            let n = text.chars().count() as f64;
            bound(s, "minLength", n, at, "characters", false, out);
            bound(s, "maxLength", n, at, "characters", true, out);
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            for (key, ok) in [
                ("minimum", &(|x: f64, b: f64| x >= b) as &dyn Fn(f64, f64) -> bool),
                ("maximum", &|x, b| x <= b),
                ("exclusiveMinimum", &|x, b| x > b),
                ("exclusiveMaximum", &|x, b| x < b),
            ] {
                if let Some(b) = s.get(key).and_then(Value::as_f64) {
                    if !ok(x, b) {
                        out.push(format!("{at}: {x} breaks {key} {b}"));
                    }
                }
            }
        }
        _ => {}
    }
}

fn bound(
    s: &serde_json::Map<String, Value>,
    key: &str,
    n: f64,
    at: &str,
    what: &str,
    upper: bool,
    out: &mut Vec<String>,
) {
    if let Some(b) = s.get(key).and_then(Value::as_f64) {
        if (upper && n > b) || (!upper && n < b) {
            let side = if upper { "at most" } else { "at least" };
            out.push(format!("{at}: has {n} {what}, needs {side} {b}"));
        }
    }
}
