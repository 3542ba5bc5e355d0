//! The tables of the step actions that carry one: `container`, `cuda` and
//! `wasm`. Each is read here, once, into its typed form (with spans for
//! every problem); [`StepAction::render`] makes the form a worker runs, and
//! [`StepAction::check`] holds what runs to the rules `weft check` applies.

mod container;
mod wasm;

use toml::de::DeValue;

pub use container::{check_mount, is_docker_socket, lexically_normal, ContainerSpec};
pub use wasm::WasmStep;

use super::model::{PluginRef, StepAction};
use super::parse::{Parser, Value};
use crate::diagnostic::Diagnostic;
use crate::kernel::{KernelArg, KernelSpec};
use crate::template::{render_str, Path};
use crate::templated::{Rendered, Written};

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

type Lookup<'a> = &'a dyn Fn(&Path) -> Result<serde_json::Value, String>;

impl Parser {
    /// The settings a step of `action`'s kind cannot have, refused where
    /// they are written: an approval (a person decides once) has no
    /// instances, retries, cache, files, hooks or `timeout`; a sub-workflow
    /// (a child run) no worker's files, hooks or cache.
    pub(in crate::spec) fn refuse_for_action(
        &mut self,
        t: &toml::de::DeTable,
        action: &StepAction<Written>,
    ) {
        let (what, refused): (&str, &[&str]) = match action {
            StepAction::Approve { .. } => (
                "an approval step",
                &[
                    "for-each",
                    "retries",
                    "cache",
                    "artifacts",
                    "hooks",
                    "timeout",
                ],
            ),
            StepAction::Workflow { .. } => {
                ("a sub-workflow step", &["cache", "artifacts", "hooks"])
            }
            _ => return,
        };
        for key in refused.iter().copied() {
            if let Some(v) = t.get(key) {
                let note = match key {
                    "timeout" => " (its wait's limit is `approve.timeout`)",
                    _ => "",
                };
                self.error(v.span(), format!("{what} has no `{key}`{note}"), "not here");
            }
        }
    }
}

impl StepAction<Written> {
    /// The action as it runs: every template rendered, every value typed
    /// and checked. Its error names the table and what was refused.
    pub fn render(&self, lookup: Lookup) -> Result<StepAction<Rendered>, String> {
        use crate::spec::Command;
        Ok(match self {
            StepAction::Run {
                command: Command::Shell(s),
            } => StepAction::Run {
                command: Command::Shell(render_str(s, lookup)?),
            },
            StepAction::Run {
                command: Command::Argv(v),
            } => StepAction::Run {
                command: Command::Argv(
                    v.iter()
                        .map(|a| render_str(a, lookup))
                        .collect::<Result<_, _>>()?,
                ),
            },
            StepAction::Container { spec } => StepAction::Container {
                spec: spec
                    .render(lookup)
                    .map_err(|e| format!("the `container` table as rendered: {e}"))?,
            },
            StepAction::Cuda { spec } => StepAction::Cuda {
                spec: spec
                    .render(lookup)
                    .map_err(|e| format!("the `cuda` table as rendered: {e}"))?,
            },
            StepAction::Wasm { spec } => StepAction::Wasm {
                spec: spec.render(lookup)?,
            },
            StepAction::Approve { spec } => StepAction::Approve { spec: spec.clone() },
            StepAction::Workflow { spec } => StepAction::Workflow {
                spec: crate::spec::sub_workflow::SubWorkflow {
                    name: render_str(&spec.name, lookup)?,
                    version: spec.version,
                    params: spec
                        .params
                        .iter()
                        .map(|(k, v)| Ok((k.clone(), render_str(v, lookup)?)))
                        .collect::<Result<_, String>>()?,
                },
            },
            StepAction::Join => StepAction::Join,
        })
    }
}

impl StepAction<Rendered> {
    /// Checks an action as it will run (a pre hook may have changed it)
    /// with the rules `weft check` applies to values written in the file.
    pub fn check(&self) -> Result<(), String> {
        match self {
            StepAction::Container { spec } => spec
                .check()
                .map_err(|e| format!("the `container` table: {e}")),
            StepAction::Cuda { spec } => spec.check().map_err(|e| format!("the `cuda` table: {e}")),
            _ => Ok(()),
        }
    }
}

impl Parser {
    pub(in crate::spec) fn container(&mut self, v: &Value) -> Option<ContainerSpec> {
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
                let Some(json) = self.json(m, "a mount") else {
                    refused = true;
                    continue;
                };
                let checked = container::mount(&json).and_then(|mount| {
                    let written = !mount.source.contains("{{") && !mount.target.contains("{{");
                    if written {
                        check_mount(&mount)?;
                    }
                    Ok(mount)
                });
                if let Err(e) = checked {
                    refused = true;
                    let d = Diagnostic::at(m.span(), e);
                    self.diags.push(
                        if is_docker_socket(
                            container::mount(&json)
                                .map(|m| m.source)
                                .unwrap_or_default()
                                .as_str(),
                        ) {
                            d.with_label("the Docker socket")
                                .with_note("a container with the Docker socket controls the host")
                        } else {
                            d.with_label("bad mount")
                        },
                    );
                }
            }
        }
        if refused {
            return None;
        }
        let json = self.json(v, "`container`")?;
        let table = json.as_object()?;
        match ContainerSpec::parse(table) {
            Ok(spec) => Some(spec),
            Err(e) => {
                // Point at the key the message names, else the table.
                let span = t
                    .iter()
                    .find(|(k, _)| e.contains(&format!("`container.{}`", k.get_ref())))
                    .map_or_else(|| v.span(), |(_, value)| value.span());
                self.error(span, e, "here");
                None
            }
        }
    }

    pub(in crate::spec) fn cuda(&mut self, v: &Value) -> Option<KernelSpec<Written>> {
        let errors = self.diags.len();
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
                        if let Err(e) = KernelArg::parse(&arg) {
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
        let json = self.json(v, "`cuda`")?;
        match KernelSpec::parse(&json) {
            Ok(spec) => Some(spec),
            Err(e) => {
                // The problems above were reported with their spans.
                if self.diags.len() == errors {
                    self.error(v.span(), e, "here");
                }
                None
            }
        }
    }

    pub(in crate::spec) fn wasm(&mut self, v: &Value) -> Option<WasmStep> {
        let t = self.table(v, "`wasm`")?;
        self.check_keys(t, WASM_KEYS, "`wasm`");
        let plugin = match t.get("plugin") {
            Some(p) => {
                let r = self.string(p, "`wasm.plugin`")?;
                match PluginRef::parse(&r.value) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        self.diags
                            .push(Diagnostic::at(r.span, e).with_label("bad plugin reference"));
                        None
                    }
                }
            }
            None => {
                self.error(v.span(), "`wasm` needs a `plugin`", "no `plugin`");
                None
            }
        };
        let timeout = t.get("timeout").map(|d| self.duration(d, "`wasm.timeout`"));
        let memory = t.get("memory").map(|m| self.bytes(m, "`wasm.memory`"));
        let input = match t.get("input") {
            Some(i) => Some(self.json(i, "`wasm.input`")?),
            None => None,
        };
        let mut step = WasmStep::new(plugin?);
        if let Some(input) = input {
            step.input = input;
        }
        step.timeout = timeout.map(|d| d.ok_or(())).transpose().ok()?;
        step.memory = memory.map(|m| m.ok_or(())).transpose().ok()?;
        Some(step)
    }
}
