//! A `wasm` step, typed: the plugin it calls, the input it passes (any
//! JSON, templates anywhere inside), and the call's limits.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::spec::PluginRef;
use crate::template::{render_json, Path};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WasmStep {
    pub plugin: PluginRef,
    /// The plugin's input: data for the plugin, rendered at dispatch.
    #[serde(default = "empty_input")]
    pub input: Json,
    /// Deadline of the call; the step's `timeout`, else the worker's default.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Memory cap of the plugin's instance, in bytes.
    #[serde(default)]
    pub memory: Option<u64>,
}

fn empty_input() -> Json {
    Json::Object(Default::default())
}

impl WasmStep {
    pub fn new(plugin: PluginRef) -> Self {
        Self {
            plugin,
            input: empty_input(),
            timeout: None,
            memory: None,
        }
    }

    /// The call as it runs: its input rendered.
    pub fn render(&self, lookup: &dyn Fn(&Path) -> Result<Json, String>) -> Result<Self, String> {
        Ok(Self {
            input: render_json(&self.input, lookup)?,
            ..self.clone()
        })
    }
}
