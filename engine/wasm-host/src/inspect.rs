//! What a component is: which weft world it implements, what it exports
//! and imports, and why it is refused when it implements none.

use serde::Serialize;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, InstancePre};
use wasmtime::Engine;

use crate::bindings::{admission, hook, step};
use crate::state::State;
use crate::Error;

/// The interfaces a plugin exports for each world.
const HOOK_EXPORT: &str = "weft:plugin/hook@0.1.1";
const STEP_EXPORT: &str = "weft:plugin/step@0.1.1";
const ADMISSION_EXPORT: &str = "weft:plugin/admission@0.1.1";

/// Which of weft's worlds a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `hook-plugin`: pre and post hooks.
    Hook,
    /// `step-plugin`: a whole step.
    Step,
    /// `admission-plugin`: asked by the server before it accepts a run.
    Admission,
}

impl World {
    pub fn as_str(self) -> &'static str {
        match self {
            World::Hook => "hook",
            World::Step => "step",
            World::Admission => "admission",
        }
    }
}

/// What was found in a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub world: World,
    /// Exported functions, as `interface#function`.
    pub exports: Vec<String>,
    /// Imported interfaces.
    pub imports: Vec<String>,
}

/// Refuses a core module or anything else that is not a component, with
/// what to do about it.
pub(crate) fn check_header(wasm: &[u8]) -> Result<(), Error> {
    const MAGIC: &[u8] = b"\0asm";
    if wasm.len() < 8 || &wasm[..4] != MAGIC {
        return Err(Error::NotComponent(
            "this is not a WebAssembly file (no `\\0asm` header)".into(),
        ));
    }
    // Bytes 4..8: version and layer; a component has layer 1.
    if wasm[6..8] == [0, 0] {
        return Err(Error::NotComponent(
            "this is a core WebAssembly module, not a component: turn it into one with \
             `wasm-tools component new` (see docs/plugins.md)"
                .into(),
        ));
    }
    Ok(())
}

type Classified = (
    Inspection,
    Option<hook::HookPluginPre<State>>,
    Option<step::StepPluginPre<State>>,
    Option<admission::AdmissionPluginPre<State>>,
);

pub(crate) fn classify(
    engine: &Engine,
    component: &Component,
    pre: InstancePre<State>,
) -> Result<Classified, Error> {
    let ty = component.component_type();
    let mut exports = Vec::new();
    for (name, item) in ty.exports(engine) {
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                for (f, _) in instance.exports(engine) {
                    exports.push(format!("{name}#{f}"));
                }
            }
            _ => exports.push(name.to_string()),
        }
    }
    let imports = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let hook = hook::HookPluginPre::new(pre.clone());
    let step = step::StepPluginPre::new(pre.clone());
    let admission = admission::AdmissionPluginPre::new(pre);
    let world = match (&hook, &step, &admission) {
        (Ok(_), _, _) => World::Hook,
        (_, Ok(_), _) => World::Step,
        (_, _, Ok(_)) => World::Admission,
        (Err(h), Err(s), Err(a)) => {
            let listed = if exports.is_empty() {
                "nothing".to_string()
            } else {
                exports.join(", ")
            };
            return Err(Error::NoWorld(format!(
                "a hook plugin exports `{HOOK_EXPORT}` (pre-process, post-process, filter-log): \
                 {h:#}; a step plugin exports `{STEP_EXPORT}` (run): {s:#}; an admission plugin \
                 exports `{ADMISSION_EXPORT}` (review): {a:#}; this one exports {listed}"
            )));
        }
    };
    Ok((
        Inspection {
            world,
            exports,
            imports,
        },
        hook.ok(),
        step.ok(),
        admission.ok(),
    ))
}
