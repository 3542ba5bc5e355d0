//! Which saved workflow a webhook name belongs to: the `[[triggers.webhook]]`
//! of each saved workflow's latest version, parsed once per version.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use weft_core::ports::{SavedWorkflow, WorkflowStore};
use weft_core::spec::triggers::WebhookSpec;
use weft_core::Error;

/// A webhook, with the saved workflow version it starts.
#[derive(Debug, Clone)]
pub struct Hook {
    pub saved: Arc<SavedWorkflow>,
    pub spec: WebhookSpec,
}

/// Each saved workflow's latest version read, with its webhooks.
type Known = BTreeMap<String, (Arc<SavedWorkflow>, Vec<WebhookSpec>)>;

/// The webhooks of saved workflows, kept per version read.
#[derive(Default)]
pub struct HookIndex {
    by_workflow: Mutex<Known>,
}

impl HookIndex {
    /// The webhooks of every saved workflow's latest version, read again
    /// only for versions not seen before.
    async fn current(&self, store: &dyn WorkflowStore) -> Result<Vec<Hook>, Error> {
        let versions = store.latest_versions().await?;
        let stale: Vec<(String, u32)> = {
            let known = self.by_workflow.lock().expect("hook index lock");
            versions
                .iter()
                .filter(|(name, version)| {
                    known
                        .get(name)
                        .is_none_or(|(saved, _)| saved.version != *version)
                })
                .cloned()
                .collect()
        };
        for (name, version) in stale {
            let Some(saved) = store.workflow(&name, Some(version)).await? else {
                continue;
            };
            let hooks = weft_core::spec::load(&saved.source)
                .map(|w| w.webhooks)
                .unwrap_or_default();
            self.by_workflow
                .lock()
                .expect("hook index lock")
                .insert(name, (Arc::new(saved), hooks));
        }
        let known = self.by_workflow.lock().expect("hook index lock");
        Ok(versions
            .iter()
            .filter_map(|(name, _)| known.get(name))
            .flat_map(|(saved, hooks)| {
                hooks.iter().map(|spec| Hook {
                    saved: saved.clone(),
                    spec: spec.clone(),
                })
            })
            .collect())
    }

    /// The webhooks named `name` (one, unless saves raced).
    pub async fn named(&self, store: &dyn WorkflowStore, name: &str) -> Result<Vec<Hook>, Error> {
        Ok(self
            .current(store)
            .await?
            .into_iter()
            .filter(|h| h.spec.name.value == name)
            .collect())
    }
}
