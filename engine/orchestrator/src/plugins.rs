//! Resolving a workflow's plugin references at submit, so a run records the
//! exact versions and hashes it uses and stays reproducible after newer
//! versions are pushed.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};
use weft_core::plugins::{self, ResolvedPlugin};
use weft_core::ports::PluginStore;
use weft_core::spec::Workflow;

use crate::Error;

/// The plugin each reference of `workflow` names, by reference text.
///
/// Registry references pick a version from `store`. Local paths (`*.wasm`)
/// are read relative to `local_dir` and stored by hash; without a
/// `local_dir` (a server cannot read a client's files) they are refused.
pub async fn resolve_plugins(
    workflow: &Workflow,
    store: &dyn PluginStore,
    local_dir: Option<&Path>,
) -> Result<BTreeMap<String, ResolvedPlugin>, Error> {
    let mut out = BTreeMap::new();
    for (reference, need) in plugins::references(workflow) {
        let key = reference.value.to_string();
        if out.contains_key(&key) {
            continue;
        }
        let resolved = if plugins::is_local(&reference.value) {
            let Some(dir) = local_dir else {
                return Err(Error::Invalid(format!(
                    "`{key}` is a local plugin path, which only `weft run` can read; \
                     push the plugin with `weft plugin push` and name it instead"
                )));
            };
            let path = dir.join(&reference.value.name);
            let wasm = std::fs::read(&path)
                .map_err(|e| Error::Invalid(format!("reading plugin {}: {e}", path.display())))?;
            let sha256: String = Sha256::digest(&wasm)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            store.put_wasm(&sha256, &wasm).await?;
            ResolvedPlugin {
                name: reference.value.name.clone(),
                version: "local".into(),
                sha256,
            }
        } else {
            let versions = store.plugin_versions(&reference.value.name).await?;
            if versions.is_empty() {
                return Err(Error::Invalid(format!(
                    "unknown plugin `{}`: push it with `weft plugin push`",
                    reference.value.name
                )));
            }
            let Some(found) = plugins::pick(&reference.value, &versions) else {
                let have: Vec<&str> = versions.iter().map(|v| v.version.as_str()).collect();
                return Err(Error::Invalid(format!(
                    "no version of `{}` matches `{key}`; the registry has {}",
                    reference.value.name,
                    have.join(", ")
                )));
            };
            if found.world != need {
                return Err(Error::Invalid(format!(
                    "`{}@{}` is a {} plugin; `{key}` is used as a {} plugin",
                    found.name,
                    found.version,
                    found.world.as_str(),
                    need.as_str()
                )));
            }
            ResolvedPlugin {
                name: found.name.clone(),
                version: found.version.clone(),
                sha256: found.sha256.clone(),
            }
        };
        out.insert(key, resolved);
    }
    Ok(out)
}
