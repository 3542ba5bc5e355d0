//! Where the cache meets the machine: a cacheable attempt is looked up
//! before it is dispatched, and a succeeded one is saved for later runs.
//! The driver does the lookups and saves (`Action::TryCache`,
//! `Action::SaveToCache`); a hit comes back as `Event::TaskCached`.

use serde_json::Value as Json;

use super::event::{Action, Job};
use super::machine::Machine;
use crate::cache::{CachePolicy, CacheProbe, CacheSave, MAX_KEY_TEXT_BYTES};
use crate::template::render_str;

impl Machine<'_> {
    /// Hands `job` (of step `si`), an attempt never handed on before, on:
    /// to the cache first where the step is cacheable and the run may reuse
    /// its results, else to a worker. (A resumed run's queued attempts go
    /// to workers only: their jobs may be queued already.)
    pub(super) fn send(&mut self, si: usize, item: Option<&Json>, job: Job) {
        let spec = &self.state.plan.workflow.steps[si];
        let Some(policy) = spec
            .cache
            .as_ref()
            .filter(|_| self.state.cache.may_reuse(&spec.id))
        else {
            return self.actions.push(Action::Dispatch(Box::new(job)));
        };
        match self.key_text(si, item, policy) {
            Ok(extra) => self
                .actions
                .push(Action::TryCache(Box::new(CacheProbe { job, extra }))),
            // A key that does not render is no key: the step runs.
            Err(_) => self.actions.push(Action::Dispatch(Box::new(job))),
        }
    }

    /// Asks the driver to keep task `ti` of step `si`'s result, where the
    /// step is cacheable. Its job is built again, as it was dispatched:
    /// nothing it was built from has changed since.
    pub(super) fn save_to_cache(&mut self, si: usize, ti: usize) {
        let plan = self.state.plan.clone();
        let spec = &plan.workflow.steps[si];
        let Some(policy) = spec.cache.as_ref().filter(|_| {
            // Nothing ran: a join, or a person's decision.
            !matches!(
                spec.action,
                crate::spec::StepAction::Join
                    | crate::spec::StepAction::Approve { .. }
                    | crate::spec::StepAction::Workflow { .. }
            )
        }) else {
            return;
        };
        let task = &self.state.steps[si].tasks[ti];
        let (id, attempt, item) = (task.id.clone(), task.attempt(), task.item.clone());
        let outputs = task.outputs.clone().unwrap_or(Json::Null);
        let artifacts = task.artifacts.clone();
        let (Ok(job), Ok(extra)) = (
            self.job(si, item.as_ref(), id, attempt),
            self.key_text(si, item.as_ref(), policy),
        ) else {
            return;
        };
        self.actions.push(Action::SaveToCache(Box::new(CacheSave {
            job,
            extra,
            ttl: policy.ttl,
            outputs,
            artifacts,
        })));
    }

    /// The step's `key` text, rendered and bounded.
    fn key_text(
        &self,
        si: usize,
        item: Option<&Json>,
        policy: &CachePolicy,
    ) -> Result<Option<String>, String> {
        let Some(key) = &policy.key else {
            return Ok(None);
        };
        let text = render_str(&key.value, &|p| self.lookup(si, item, p))?;
        if text.len() > MAX_KEY_TEXT_BYTES {
            return Err(format!(
                "`cache.key` rendered to {} bytes; at most {MAX_KEY_TEXT_BYTES}",
                text.len()
            ));
        }
        Ok(Some(text))
    }
}
