//! Helpers over TOML values: conversion to JSON, type names, names,
//! nesting limits, "did you mean" suggestions, and a step's strings that may
//! hold templates.

use serde_json::Value as Json;
use toml::de::DeValue;

use super::model::{StepText, TextPlace};
use super::parse::{Value, MAX_NESTING};
use super::settings::Settings;
use crate::diagnostic::{Span, Spanned};

/// Finds where bracket nesting passes `MAX_NESTING`, skipping strings and comments.
pub(super) fn too_deep(source: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            q @ (b'"' | b'\'') => {
                let triple = bytes[i..].starts_with(if q == b'"' { b"\"\"\"" } else { b"'''" });
                i += if triple { 3 } else { 1 };
                while i < bytes.len() {
                    if q == b'"' && bytes[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if bytes[i] == q && (!triple || bytes[i..].starts_with(&[q, q, q])) {
                        i += if triple { 2 } else { 0 };
                        break;
                    }
                    if !triple && bytes[i] == b'\n' {
                        break;
                    }
                    i += 1;
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

pub(super) fn collect_strings(v: &Value, out: &mut Vec<Spanned<String>>) {
    match v.get_ref() {
        DeValue::String(s) if s.contains("{{") => out.push(Spanned::new(s.to_string(), v.span())),
        DeValue::Array(a) => a.iter().for_each(|i| collect_strings(i, out)),
        DeValue::Table(t) => t.values().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}

pub(super) fn type_name(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// The longest pool name: a pool's queues carry its name with a prefix
/// and a band, and AMQP names hold at most 255 bytes.
pub const POOL_NAME_MAX: usize = 100;

/// Why `name` cannot name a pool, if it cannot: in a workflow's `pool`
/// and a worker's pools alike.
pub fn pool_name_problem(name: &str) -> Option<String> {
    if !is_name(name) {
        return Some(format!(
            "pool name `{name}` may hold only letters, digits, `_` and `-`"
        ));
    }
    if name.len() > POOL_NAME_MAX {
        return Some(format!(
            "pool name `{}…` is {} characters; at most {POOL_NAME_MAX}",
            &name[..20],
            name.len()
        ));
    }
    None
}

/// Names of steps, params and pools.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Converts a TOML value to JSON (date-times become strings).
pub(super) fn to_json(v: &Value) -> Result<Json, (Span, String)> {
    Ok(match v.get_ref() {
        DeValue::String(s) => Json::String(s.to_string()),
        DeValue::Integer(i) => {
            let n = i64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
                .map_err(|_| (v.span(), "integer out of range".to_string()))?;
            Json::from(n)
        }
        DeValue::Float(f) => {
            let x: f64 = f
                .as_str()
                .replace('_', "")
                .parse()
                .map_err(|_| (v.span(), "bad float".to_string()))?;
            serde_json::Number::from_f64(x)
                .map(Json::Number)
                .ok_or((v.span(), "inf and nan are not allowed".to_string()))?
        }
        DeValue::Boolean(b) => Json::Bool(*b),
        DeValue::Datetime(d) => Json::String(d.to_string()),
        DeValue::Array(a) => Json::Array(a.iter().map(to_json).collect::<Result<_, _>>()?),
        DeValue::Table(t) => Json::Object(
            t.iter()
                .map(|(k, v)| Ok((k.get_ref().to_string(), to_json(v)?)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// The candidate closest to `word` by edit distance, if any is close.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The kind of a JSON value, as messages name it.
pub(super) fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a table",
    }
}

/// The step's strings that may hold templates, each with its place: the
/// action's (a container's `env` apart), the `env`s, the hooks' configs.
pub(super) fn step_texts(action: Option<&(&str, &Value)>, settings: &Settings) -> Vec<StepText> {
    let mut action_texts = Vec::new();
    let mut env_texts: Vec<Spanned<String>> = settings.env.values().cloned().collect();
    match action {
        Some(("container", v)) => match v.get_ref() {
            DeValue::Table(t) => {
                for (key, value) in t.iter() {
                    let out = if key.get_ref() == "env" {
                        &mut env_texts
                    } else {
                        &mut action_texts
                    };
                    collect_strings(value, out);
                }
            }
            _ => collect_strings(v, &mut action_texts),
        },
        Some((_, v)) => collect_strings(v, &mut action_texts),
        None => {}
    }
    if let Some(Some(key)) = settings
        .cache
        .as_ref()
        .map(|c| c.as_ref().and_then(|c| c.key.clone()))
    {
        action_texts.push(key);
    }
    let place = |place| move |text| StepText { text, place };
    let configs = settings
        .pre
        .iter()
        .chain(&settings.post)
        .flat_map(|h| h.value.config_texts.iter().cloned());
    action_texts
        .into_iter()
        .map(place(TextPlace::Action))
        .chain(env_texts.into_iter().map(place(TextPlace::Env)))
        .chain(configs.map(place(TextPlace::HookConfig)))
        .collect()
}
