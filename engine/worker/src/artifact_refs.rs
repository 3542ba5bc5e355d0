//! Pointing a job at the artifacts its worker fetched: every
//! `{{ steps.<id>.artifacts.<name> }}` in its action (each kind's strings
//! that reach a process: a command, a container's argv and env, a kernel's
//! buffer files) and env becomes the local path, and `$WEFT_INPUTS` lists
//! them under `artifacts`.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};
use weft_core::artifacts::fill_artifacts;
use weft_core::run::Job;
use weft_core::spec::{Command, StepAction};

/// `paths`: where each `(step, name)` is, as the step sees it.
pub(crate) fn point_at(job: &mut Job, paths: &BTreeMap<(String, String), String>) {
    let fill = |text: &str| {
        fill_artifacts(text, |step, name| {
            paths.get(&(step.to_string(), name.to_string())).cloned()
        })
    };
    match &mut job.action {
        StepAction::Run { command } => match command {
            Command::Shell(script) => *script = fill(script),
            Command::Argv(argv) => argv.iter_mut().for_each(|a| *a = fill(a)),
        },
        StepAction::Container { spec } => {
            for argv in [&mut spec.command, &mut spec.args].into_iter().flatten() {
                argv.iter_mut().for_each(|a| *a = fill(a));
            }
            spec.env.values_mut().for_each(|v| *v = fill(v));
        }
        StepAction::Cuda { spec } => {
            for arg in &mut spec.args {
                if let weft_core::kernel::KernelArg::Buffer(b) = arg {
                    if let weft_core::kernel::BufferInit::File(path) = &mut b.init {
                        *path = fill(path);
                    }
                }
            }
        }
        _ => {}
    }
    job.env.values_mut().for_each(|v| *v = fill(v));
    let mut listed = serde_json::Map::new();
    for ((step, name), path) in paths {
        let entry = listed
            .entry(step.clone())
            .or_insert_with(|| Json::Object(Default::default()));
        entry[name] = json!(path);
    }
    if let Json::Object(inputs) = &mut job.inputs {
        inputs.insert("artifacts".into(), Json::Object(listed));
    }
}
