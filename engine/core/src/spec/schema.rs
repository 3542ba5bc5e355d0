//! The JSON Schema of the workflow format, for editors with a TOML language
//! server (Taplo, Even Better TOML).

use serde_json::{json, Value};

use super::parse::step_keys;

fn duration() -> Value {
    json!({"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(ms|s|m|h|d))+$", "description": "A duration such as \"30s\", \"10m\", \"1h30m\"."})
}

fn settings() -> serde_json::Map<String, Value> {
    let reference = json!({"type": "string", "description": "A plugin: name, name@1.2.3, name@^1, or a path to a .wasm file."});
    let plugin_list = json!({"type": "array", "items": {"oneOf": [reference.clone(), {
        "type": "object", "required": ["plugin"], "additionalProperties": false,
        "properties": {"plugin": reference, "config": {"type": "object", "description": "Given to the plugin as JSON."},
            "timeout": duration(), "memory": {"type": ["string", "integer"], "description": "Memory cap, e.g. 64MiB."}}}]}});
    json!({
        "timeout": duration(),
        "retries": {
            "description": "How often to retry a failed attempt, and how long to wait between attempts.",
            "oneOf": [
                {"type": "integer", "minimum": 0, "maximum": 100},
                {"type": "object", "additionalProperties": false, "properties": {
                    "limit": {"type": "integer", "minimum": 0, "maximum": 100, "description": "Retries after the first attempt."},
                    "backoff": {"enum": ["exponential", "fixed"]},
                    "delay": duration(),
                    "max-delay": duration(),
                    "jitter": {"type": "boolean"}
                }}
            ]
        },
        "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "resources": {"type": "object", "additionalProperties": false, "properties": {
            "cpus": {"type": "number", "exclusiveMinimum": 0},
            "memory": {"type": ["string", "integer"], "description": "Bytes, or a size such as \"4GiB\"."},
            "gpus": {"type": "integer", "minimum": 0}
        }},
        "hooks": {"type": "object", "additionalProperties": false, "properties": {"pre": plugin_list, "post": plugin_list}},
        "pool": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "maxLength": 100, "description": "Which workers may take the step."},
        "cache": {
            "description": "Reuse the result of an earlier run whose step had the same key (its rendered action, env, inputs, input artifacts and plugins).",
            "oneOf": [
                {"type": "boolean"},
                {"type": "object", "additionalProperties": false, "properties": {
                    "key": {"type": "string", "description": "Text added to the key (templated), to split the cache."},
                    "ttl": duration()
                }}
            ]
        }
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

/// The schema as a JSON value.
pub fn json_schema() -> Value {
    let mut step = settings();
    let string_or_list =
        json!({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]});
    step.insert("artifacts".into(), json!({
        "description": "Files or directories (paths in the step's scratch directory) left for later steps, which name them as {{ steps.<id>.artifacts.<name> }}.",
        "type": "object", "maxProperties": 64,
        "propertyNames": {"pattern": "^[A-Za-z0-9_-]+$"},
        "additionalProperties": {"oneOf": [
            {"type": "string"},
            {"type": "object", "required": ["path"], "additionalProperties": false, "properties": {
                "path": {"type": "string"}, "optional": {"type": "boolean"}
            }}
        ]}
    }));
    step.insert("run".into(), json!({"description": "A shell command (run by sh -c) or an argv list.", "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}));
    step.insert("container".into(), json!({"type": "object", "required": ["image"], "additionalProperties": false, "properties": {
        "image": {"type": "string"}, "command": string_or_list, "args": {"type": "array", "items": {"type": "string"}},
        "env": {"type": "object"}, "workdir": {"type": "string"}, "user": {"type": "string"},
        "mounts": {"type": "array"}, "network": {"type": ["boolean", "string"]}
    }}));
    step.insert("cuda".into(), json!({"type": "object", "required": ["entry"], "additionalProperties": false, "properties": {
        "source": {"type": "string"}, "ptx": {"type": "string"}, "entry": {"type": "string"},
        "grid": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
        "block": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 3},
        "shared-mem": {"type": "integer", "minimum": 0, "description": "Dynamic shared memory per block, in bytes."},
        "args": {"type": "array", "items": {"type": "object", "additionalProperties": false, "properties": {
            "scalar": {"description": "A value passed by value."}, "buffer": {"type": "string", "description": "A device buffer's name."},
            "type": {"enum": ["f32", "f64", "i32", "u32", "i64", "u64", "u8"]},
            "len": {"type": ["integer", "string"]}, "fill": {}, "values": {"type": ["array", "string"]}, "file": {"type": "string"},
            "output": {"type": "boolean", "description": "Copy the buffer back into the step's outputs."}
        }}}
    }}));
    step.insert("workflow".into(), json!({"type": "object", "required": ["name"], "additionalProperties": false, "description": "Run a saved workflow as a child run; its outputs (its [workflow] outputs step's, or every step's by id) become this step's.", "properties": {
        "name": {"type": "string"}, "version": {"type": "integer", "minimum": 1, "description": "The latest saved version by default."},
        "params": {"type": "object", "description": "Parameter overrides for the child; values may be templates."}
    }}));
    step.insert("approve".into(), json!({"type": "object", "additionalProperties": false, "description": "Wait for a person: runs on no worker; approved (weft approve, the API, the dashboard), its outputs are the inputs given; rejected or past its timeout, it fails.", "properties": {
        "roles": {"type": "array", "items": {"enum": ["viewer", "operator", "admin"]}, "description": "Who may decide (admins always may); operator by default."},
        "timeout": duration(),
        "inputs": {"type": "object", "maxProperties": 32, "additionalProperties": {"enum": ["string", "number", "boolean"]}, "description": "What an approver gives, by name and type: the step's outputs."}
    }}));
    step.insert("wasm".into(), json!({"type": "object", "required": ["plugin"], "additionalProperties": false, "properties": {
        "plugin": {"type": "string"}, "input": {}, "timeout": duration(), "memory": {"type": ["string", "integer"]}
    }}));
    step.insert("needs".into(), json!({"description": "Steps that must finish first (and succeed, unless `status = \"any\"`).", "oneOf": [{"type": "string"}, {"type": "array", "items": {"oneOf": [
        {"type": "string"},
        {"type": "object", "required": ["step"], "additionalProperties": false, "properties": {
            "step": {"type": "string"}, "status": {"enum": ["succeeded", "any"]}
        }}
    ]}}]}));
    step.insert("max-parallel".into(), json!({"type": "integer", "minimum": 1, "maximum": 100000, "description": "At most this many of a for-each step's instances at once."}));
    step.insert("continue-on-error".into(), json!({"type": "boolean", "description": "A failure of this step neither skips its dependents nor fails the run by itself."}));
    step.insert("when".into(), json!({"type": "string", "description": "A CEL condition over params and upstream outputs; the step is skipped when false."}));
    step.insert("for-each".into(), json!({"description": "A list, or one reference to a list: one instance of the step per item.", "oneOf": [{"type": "array"}, {"type": "string"}]}));
    step.insert("description".into(), json!({"type": "string"}));
    step.insert(
        "name".into(),
        json!({"type": "string", "description": "A display name, shown instead of the step id."}),
    );
    debug_assert_eq!(step.len(), step_keys().len());
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://weft.dev/schemas/workflow.json",
        "title": "weft workflow",
        "type": "object",
        "additionalProperties": false,
        "required": ["workflow", "steps"],
        "properties": {
            "workflow": {"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
                "name": {"type": "string"}, "description": {"type": "string"},
                "timeout": duration(),
                "on-finish": {"type": "array", "maxItems": 8, "description": "Saved workflows a finished run starts (their latest versions), with parent_run, parent_status and parent_workflow as params when they declare them.", "items": {"type": "object", "additionalProperties": false, "required": ["workflow"], "properties": {
                    "workflow": {"type": "string"}, "when": {"type": "string", "description": "CEL over run.id, run.status, run.failed, run.workflow."}}}},
                "outputs": {"type": "string", "description": "The step whose outputs are the run's outputs (what a parent's sub-workflow step gets); every step's, by id, when absent."},
                "on-exit": {"type": "string", "description": "A step that runs last whatever happened: after every other step, or after a cancel or the run's timeout. It needs no step and no step needs it."},
                "concurrency": {"type": "object", "additionalProperties": false, "description": "At most `limit` runs holding one key at once, across the cluster; the others wait in line by priority, then by submission.", "properties": {
                    "key": {"type": "string", "description": "A template over params and workflow.name, e.g. \"train-{{ params.dataset }}\"; the workflow's name by default. It may not render empty."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "Runs holding the key at once (1 by default)."},
                    "policy": {"enum": ["queue", "skip", "cancel-running"], "description": "When all slots are held: wait (queue, the default), end cancelled (skip), or cancel the holders and take a slot (cancel-running)."}
                }}
            }},
            "params": {"type": "object", "description": "Parameters with their defaults; override with --param key=value."},
            "triggers": {"type": "object", "additionalProperties": false, "properties": {
                "schedule": {"type": "array", "maxItems": 16, "description": "Runs a saved version of this workflow starts by itself.", "items": {
                    "type": "object", "additionalProperties": false, "required": ["cron"], "properties": {
                        "cron": {"type": "string", "description": "5 fields (minute hour day month weekday), or 6 with seconds first; @hourly, @daily, @weekly."},
                        "timezone": {"type": "string", "description": "An IANA time zone, UTC by default."},
                        "params": {"type": "object", "description": "Parameter overrides for its runs."},
                        "overlap": {"enum": ["skip", "queue", "cancel-previous", "allow"], "description": "What a fire does while the schedule's previous run still runs (skip by default)."},
                        "catch-up": duration(),
                        "priority": {"type": "integer", "minimum": -1000, "maximum": 1000, "description": "Its runs' priority (higher first): their place among runs waiting for a concurrency key, and their jobs' band in their pools' queues (above 0, 0, below 0)."}
                    }}},
                "webhook": {"type": "array", "maxItems": 16, "description": "POST /api/triggers/<name>, signed with a secret, starts a run of the saved workflow.", "items": {
                    "type": "object", "additionalProperties": false, "required": ["name", "secret"], "properties": {
                        "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "description": "The webhook's name, in its URL; unique among saved workflows."},
                        "secret": {"type": "string", "description": "The weft secret whose value signs deliveries (HMAC-SHA256 of the body)."},
                        "params": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Parameter overrides rendered from the delivery: \"{{ payload.field }}\"."}
                    }}}
            }},
            "defaults": {"type": "object", "additionalProperties": false, "properties": settings()},
            "steps": {"type": "object", "minProperties": 1, "propertyNames": {"pattern": "^[A-Za-z0-9_-]+$"},
                "additionalProperties": {"type": "object", "additionalProperties": false, "properties": step}}
        }
    })
}
