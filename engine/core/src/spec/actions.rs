//! The tables of the step actions that carry one: `container`, `cuda` and
//! `wasm`. Each is checked here (refused container settings, kernel
//! arguments, plugin references) and kept as JSON for its executor.

use serde_json::Value as Json;
use toml::de::DeValue;

use super::model::PluginRef;
use super::parse::{Parser, Value};
use crate::diagnostic::Diagnostic;
use crate::ports::ContainerMount;

const CONTAINER_KEYS: &[&str] = &[
    "image", "command", "args", "env", "workdir", "user", "mounts", "network",
];
/// Container settings weft refuses: they would give a step the host.
const CONTAINER_REFUSED: &[&str] = &[
    "privileged",
    "cap-add",
    "capabilities",
    "pid",
    "ipc",
    "uts",
    "userns",
    "network-mode",
    "host-network",
    "devices",
    "security-opt",
];
/// Mount sources that hand a container the Docker engine, i.e. the host.
const DOCKER_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/var/run",
    "/run",
    "/var",
    "/",
];

/// `path` with `.`, `..` and repeated slashes taken out, as the kernel
/// would resolve it (symbolic links aside).
fn lexically_normal(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if path.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Whether mounting `source` would hand a container the Docker engine.
fn is_docker_socket(source: &str) -> bool {
    DOCKER_SOCKETS.contains(&lexically_normal(source.trim()).as_str())
}

/// The `mounts` of a `container` table: `"src:dst[:ro|:rw]"` or
/// `{ source, target, read-only }`, both paths absolute. The one reading
/// of mounts, for the dispatcher's checks and for the worker.
pub fn container_mounts(v: Option<&Json>) -> Result<Vec<ContainerMount>, String> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let Json::Array(items) = v else {
        return Err("`container.mounts` must be a list".into());
    };
    items
        .iter()
        .map(|m| match m {
            Json::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                match parts.as_slice() {
                    [source, target] => Ok((source.to_string(), target.to_string(), false)),
                    [source, target, "ro"] => Ok((source.to_string(), target.to_string(), true)),
                    [source, target, "rw"] => Ok((source.to_string(), target.to_string(), false)),
                    _ => Err(format!(
                        "mount `{s}`: write `/host/path:/container/path[:ro]`"
                    )),
                }
            }
            Json::Object(t) => {
                let get = |k: &str| t.get(k).and_then(Json::as_str).map(str::to_string);
                match (get("source"), get("target")) {
                    (Some(s), Some(d)) => Ok((
                        s,
                        d,
                        t.get("read-only").and_then(Json::as_bool).unwrap_or(false),
                    )),
                    _ => Err("a mount table needs `source` and `target`".into()),
                }
            }
            _ => Err("each mount is `src:dst[:ro]` or `{ source, target, read-only }`".into()),
        })
        .map(|r| {
            r.and_then(|(source, target, read_only)| {
                if !source.starts_with('/') || !target.starts_with('/') {
                    return Err(format!(
                        "mount {source}:{target}: both paths must be absolute"
                    ));
                }
                Ok(ContainerMount {
                    source,
                    target,
                    read_only,
                })
            })
        })
        .collect()
}

/// Checks a `container` table as its templates rendered, with the rules
/// `weft check` applies to the values written in the file: a mount of the
/// Docker socket (or a directory holding it) is refused, an image is named.
pub fn check_rendered_container(spec: &Json) -> Result<(), String> {
    match spec.get("image") {
        Some(Json::String(image)) if !image.trim().is_empty() => {}
        Some(other) => {
            return Err(format!(
                "`container.image` rendered to {}, not an image name",
                crate::run::bounded_text(&other.to_string(), 200)
            ))
        }
        None => return Err("`container` needs an `image`".into()),
    }
    for mount in container_mounts(spec.get("mounts"))? {
        if is_docker_socket(&mount.source) {
            return Err(format!(
                "mounting `{}` is refused: a container with the Docker socket controls the host",
                crate::run::bounded_text(&mount.source, 200)
            ));
        }
    }
    Ok(())
}
const CUDA_KEYS: &[&str] = &[
    "source",
    "ptx",
    "entry",
    "grid",
    "block",
    "shared-mem",
    "args",
];
const WASM_KEYS: &[&str] = &["plugin", "input", "timeout", "memory"];

impl Parser {
    pub(super) fn container(&mut self, v: &Value) -> Option<Json> {
        let t = self.table(v, "`container`")?;
        let mut refused = false;
        for (key, _) in t.iter() {
            if CONTAINER_REFUSED.contains(&key.get_ref().as_ref()) {
                refused = true;
                self.diags.push(
                    Diagnostic::at(
                        key.span(),
                        format!("`container.{}` is refused", key.get_ref()),
                    )
                    .with_label("not allowed")
                    .with_note(
                        "weft runs containers unprivileged: no privileged mode, host namespaces, \
                         added capabilities or devices (GPUs come from `resources.gpus`)",
                    ),
                );
            }
        }
        let allowed: Vec<&str> = CONTAINER_KEYS
            .iter()
            .chain(CONTAINER_REFUSED)
            .copied()
            .collect();
        self.check_keys(t, &allowed, "`container`");
        if let Some(DeValue::Array(mounts)) = t.get("mounts").map(|m| m.get_ref()) {
            for m in mounts {
                let source = match m.get_ref() {
                    DeValue::String(s) => s.split(':').next().map(str::to_string),
                    DeValue::Table(mt) => mt.get("source").and_then(|s| match s.get_ref() {
                        DeValue::String(s) => Some(s.to_string()),
                        _ => None,
                    }),
                    _ => None,
                };
                let Some(source) = source else { continue };
                if is_docker_socket(&source) {
                    refused = true;
                    self.diags.push(
                        Diagnostic::at(m.span(), format!("mounting `{source}` is refused"))
                            .with_label("the Docker socket")
                            .with_note("a container with the Docker socket controls the host"),
                    );
                }
            }
        }
        if refused {
            return None;
        }
        match t.get("image") {
            Some(i) => {
                if self.string(i, "`container.image`")?.value.trim().is_empty() {
                    self.error(
                        i.span(),
                        "`container.image` is empty",
                        "name an image, such as `python:3.12`",
                    );
                    return None;
                }
            }
            None => {
                self.error(v.span(), "`container` needs an `image`", "no `image`");
                return None;
            }
        }
        self.json(v, "`container`")
    }

    pub(super) fn cuda(&mut self, v: &Value) -> Option<Json> {
        let t = self.table(v, "`cuda`")?;
        self.check_keys(t, CUDA_KEYS, "`cuda`");
        match (t.get("source"), t.get("ptx")) {
            (Some(_), Some(p)) => self.error(
                p.span(),
                "`cuda` takes `source` or `ptx`, not both",
                "second kernel",
            ),
            (None, None) => self.error(
                v.span(),
                "`cuda` needs `source` (a .cu file) or `ptx`",
                "no kernel",
            ),
            _ => {}
        }
        if t.get("entry").is_none() {
            self.error(
                v.span(),
                "`cuda` needs an `entry` (the kernel's name)",
                "no `entry`",
            );
        }
        for dim in ["grid", "block"] {
            if let Some(d) = t.get(dim) {
                let ok = matches!(d.get_ref(), DeValue::Array(a) if (1..=3).contains(&a.len()) && a.iter().all(|x| x.get_ref().is_integer()));
                if !ok {
                    self.wrong_type(d, &format!("`cuda.{dim}`"), "a list of 1 to 3 integers");
                }
            }
        }
        if let Some(args) = t.get("args") {
            match args.get_ref() {
                DeValue::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let Some(arg) = self.json(item, "a kernel argument") else {
                            continue;
                        };
                        if let Err(e) = crate::kernel::KernelArg::from_json(&arg, false) {
                            self.error(
                                item.span(),
                                format!("kernel argument {i}: {e}"),
                                "bad argument",
                            );
                        }
                    }
                }
                _ => self.wrong_type(args, "`cuda.args`", "a list of argument tables"),
            }
        }
        self.json(v, "`cuda`")
    }

    pub(super) fn wasm(&mut self, v: &Value) -> Option<Json> {
        let t = self.table(v, "`wasm`")?;
        self.check_keys(t, WASM_KEYS, "`wasm`");
        match t.get("plugin") {
            Some(p) => {
                let r = self.string(p, "`wasm.plugin`")?;
                if let Err(e) = PluginRef::parse(&r.value) {
                    self.diags
                        .push(Diagnostic::at(r.span, e).with_label("bad plugin reference"));
                }
            }
            None => self.error(v.span(), "`wasm` needs a `plugin`", "no `plugin`"),
        }
        if let Some(d) = t.get("timeout") {
            self.duration(d, "`wasm.timeout`");
        }
        if let Some(m) = t.get("memory") {
            self.bytes(m, "`wasm.memory`");
        }
        self.json(v, "`wasm`")
    }
}
