//! An admission plugin: GPUs for the roles it governs (`roles`, default
//! `["operator"]`) only from approved images and only so many per run.
//!
//! Config (all optional):
//! - `roles`: the roles it reviews; runs of other roles are allowed as they are.
//! - `images`: images a GPU step's container may use (a name, or a prefix
//!   ending in `*`); a GPU step that is not a container of one is denied.
//! - `max-gpus-per-run` (default 2): more GPUs over all steps is denied.
//! - `max-memory-mib`: a step asking more memory is patched down to it
//!   (and told why in `$ADMISSION_NOTE`).

use serde::Deserialize;
use serde_json::{json, Value};

use weft_plugin_support as _;

wit_bindgen::generate!({ world: "admission-plugin", path: "../../wit" });

use exports::weft::plugin::admission::{Context, Guest};
use weft::plugin::host::{log, Level};

/// What this plugin reads of the request (borrowed, the rest skipped:
/// a thousand-step workflow is parsed without a tree of values).
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    workflow: Workflow<'a>,
    #[serde(borrow)]
    submitter: Submitter<'a>,
}

#[derive(Deserialize)]
struct Workflow<'a> {
    #[serde(borrow)]
    steps: Vec<Step<'a>>,
}

#[derive(Deserialize)]
struct Submitter<'a> {
    role: &'a str,
}

#[derive(Deserialize)]
struct Step<'a> {
    id: &'a str,
    #[serde(default)]
    image: Option<&'a str>,
    resources: Resources,
}

#[derive(Deserialize)]
struct Resources {
    memory: Option<u64>,
    gpus: u64,
}

struct Plugin;

fn allowed(patterns: &[Value], image: &str) -> bool {
    patterns.iter().filter_map(Value::as_str).any(|p| match p.strip_suffix('*') {
        Some(prefix) => image.starts_with(prefix),
        None => p == image,
    })
}

impl Guest for Plugin {
    fn review(ctx: Context, request: String) -> Result<String, String> {
        let config: Value = serde_json::from_str(&ctx.config).map_err(|e| e.to_string())?;
        let request: Request = serde_json::from_str(&request).map_err(|e| e.to_string())?;
        let role = request.submitter.role;
        let roles = config["roles"].as_array().cloned().unwrap_or_else(|| vec![json!("operator")]);
        if !roles.iter().any(|r| r.as_str() == Some(role)) {
            return Ok(json!({"decision": "allow"}).to_string());
        }
        let images = config["images"].as_array().cloned().unwrap_or_default();
        let max_gpus = config["max-gpus-per-run"].as_u64().unwrap_or(2);
        let max_memory = config["max-memory-mib"].as_u64().map(|m| m << 20);
        let mut denials = Vec::new();
        let mut patches = Vec::new();
        let mut notes = Vec::new();
        let mut gpus = 0;
        for step in &request.workflow.steps {
            let id = step.id;
            let asked = step.resources.gpus;
            gpus += asked;
            if asked > 0 {
                match step.image {
                    Some(image) if allowed(&images, image) => {}
                    Some(image) => denials.push(json!({"step": id, "message": format!("GPU steps of the {role} role run approved images only; `{image}` is not one")})),
                    None => denials.push(json!({"step": id, "message": format!("GPU steps of the {role} role run in containers of approved images only")})),
                }
            }
            if let (Some(max), Some(m)) = (max_memory, step.resources.memory) {
                if m > max {
                    let note = format!("memory lowered from {} MiB to {} MiB", m >> 20, max >> 20);
                    notes.push(json!({"step": id, "message": note}));
                    patches.push(json!({"step": id, "resources": {"memory": max}, "env": {"ADMISSION_NOTE": note}}));
                }
            }
        }
        if gpus > max_gpus {
            denials.push(json!({"message": format!("the run asks for {gpus} GPUs; the {role} role may use {max_gpus} per run")}));
        }
        let answer = if !denials.is_empty() {
            log(Level::Info, &format!("denied {} for {} reason(s)", ctx.workflow, denials.len()));
            json!({"decision": "deny", "reasons": denials})
        } else if !patches.is_empty() {
            log(Level::Info, &format!("patched {} step(s) of {}", patches.len(), ctx.workflow));
            json!({"decision": "patch", "patches": patches, "reasons": notes})
        } else {
            json!({"decision": "allow"})
        };
        Ok(answer.to_string())
    }
}

export!(Plugin);
