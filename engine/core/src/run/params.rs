//! Run-time parameter overrides (`--param key=value`) over the workflow's defaults.

use serde_json::{Map, Value as Json};

use crate::spec::Workflow;

/// Applies `overrides` to the defaults. A value is read as the type of the
/// default: numbers and booleans parse, lists and objects take JSON (a list
/// also takes `a,b,c`), strings are taken as written.
pub fn resolve_params(
    workflow: &Workflow,
    overrides: &[(String, String)],
) -> Result<Map<String, Json>, String> {
    let mut params = workflow.param_defaults();
    for (key, raw) in overrides {
        let Some(default) = params.get(key) else {
            let known: Vec<_> = workflow.params.iter().map(|p| p.name.as_str()).collect();
            return Err(if known.is_empty() {
                format!("unknown parameter `{key}`: the workflow declares no [params]")
            } else {
                format!(
                    "unknown parameter `{key}`; the workflow declares: {}",
                    known.join(", ")
                )
            });
        };
        let bad = |what: &str| format!("parameter `{key}`: `{raw}` is not {what}");
        let value = match default {
            Json::String(_) | Json::Null => Json::String(raw.clone()),
            Json::Bool(_) => Json::Bool(raw.parse().map_err(|_| bad("true or false"))?),
            Json::Number(n) if n.is_i64() => {
                Json::from(raw.parse::<i64>().map_err(|_| bad("an integer"))?)
            }
            Json::Number(_) => {
                let x: f64 = raw.parse().map_err(|_| bad("a number"))?;
                serde_json::Number::from_f64(x)
                    .map(Json::Number)
                    .ok_or_else(|| bad("a finite number"))?
            }
            Json::Array(_) => match serde_json::from_str::<Json>(raw) {
                Ok(v @ Json::Array(_)) => v,
                _ => Json::Array(
                    raw.split(',')
                        .map(|s| Json::String(s.trim().to_string()))
                        .filter(|s| s != "")
                        .collect(),
                ),
            },
            Json::Object(_) => match serde_json::from_str::<Json>(raw) {
                Ok(v @ Json::Object(_)) => v,
                _ => return Err(bad("a JSON object")),
            },
        };
        params.insert(key.clone(), value);
    }
    Ok(params)
}

/// Params up to this size (as JSON) travel in every job of their run; a
/// run's bigger params travel by reference ([`Job::shared_params`]), and
/// its workers fetch them once: a `for-each` over a big list parameter
/// would otherwise put the whole list into each of its tasks' jobs
/// (quadratic in the list's length, in the queue, the broker and the
/// server's memory).
///
/// [`Job::shared_params`]: super::Job::shared_params
pub const INLINE_PARAMS_BYTES: usize = 4 * 1024;

/// The SHA-256 of `params` as JSON: how a job names its run's params when
/// they are too big to carry ([`INLINE_PARAMS_BYTES`]); `None` when they
/// travel in each job.
pub fn shared_params_digest(params: &Map<String, Json>) -> Option<crate::artifacts::Digest> {
    let text = serde_json::to_vec(params).ok()?;
    (text.len() > INLINE_PARAMS_BYTES).then(|| params_digest(&text))
}

/// The SHA-256 of params' JSON text, as [`shared_params_digest`] names them.
pub fn params_digest(json: &[u8]) -> crate::artifacts::Digest {
    use sha2::{Digest as _, Sha256};
    crate::artifacts::Digest::from_bytes(&Sha256::digest(json).into())
}
