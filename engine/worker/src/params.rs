//! A run's params when its jobs carry them by reference (params bigger
//! than [`INLINE_PARAMS_BYTES`]): fetched from the run's record once and
//! kept for its next tasks, as the JSON text each task's `$WEFT_INPUTS`
//! has spliced in, so a task costs the size of its own inputs, not of the
//! run's params.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value as Json;
use weft_core::ports::RunStore;
use weft_core::run::{params_digest, FailureKind, Job, Outcome};

#[cfg(doc)]
use weft_core::run::INLINE_PARAMS_BYTES;

/// Runs whose params this worker keeps: tasks of one run come together.
const KEPT_RUNS: usize = 8;

/// The params of the runs this worker ran tasks of lately.
pub(crate) struct SharedParams {
    store: Arc<dyn RunStore>,
    kept: Mutex<VecDeque<(String, Arc<str>)>>,
}

impl SharedParams {
    pub(crate) fn new(store: Arc<dyn RunStore>) -> Self {
        Self {
            store,
            kept: Mutex::new(VecDeque::with_capacity(KEPT_RUNS)),
        }
    }

    /// The JSON text of `job`'s run's params when the job carries them by
    /// reference (`None` when they are in its inputs), or the attempt's
    /// failure.
    pub(crate) async fn of(&self, job: &Job) -> Result<Option<Arc<str>>, Outcome> {
        let Some(digest) = &job.shared_params else {
            return Ok(None);
        };
        let kept = self
            .kept
            .lock()
            .expect("params lock")
            .iter()
            .find_map(|(run, text)| (run == &job.run_id).then(|| text.clone()));
        if let Some(text) = kept {
            return Ok(Some(text));
        }
        let failed = |reason: String, retryable: bool| Outcome::Failed {
            reason,
            exit_code: None,
            retryable,
            kind: FailureKind::Infrastructure,
        };
        let record = match self.store.get_run(&job.run_id).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                return Err(failed(
                    format!("reading the params of run {}: the run is gone", job.run_id),
                    false,
                ))
            }
            Err(e) => {
                return Err(failed(
                    format!("reading the params of run {}: {e}", job.run_id),
                    true,
                ))
            }
        };
        let text = serde_json::to_string(&record.params).unwrap_or_default();
        if params_digest(text.as_bytes()) != *digest {
            return Err(failed(
                format!(
                    "the params of run {} are not those its job names (SHA-256 {})",
                    job.run_id,
                    digest.short()
                ),
                false,
            ));
        }
        let text: Arc<str> = text.into();
        let mut kept = self.kept.lock().expect("params lock");
        if kept.len() == KEPT_RUNS {
            kept.pop_front();
        }
        kept.push_back((job.run_id.clone(), text.clone()));
        Ok(Some(text))
    }
}

/// Puts `params` into `job`'s inputs, for what reads them as JSON values
/// (plugins); steps get them spliced into their inputs' text instead.
pub(crate) fn fill(job: &mut Job, params: &str) {
    if let (Json::Object(inputs), Ok(params)) = (&mut job.inputs, serde_json::from_str(params)) {
        inputs.insert("params".into(), params);
    }
}

/// The text of `job`'s `$WEFT_INPUTS`: its inputs, with its run's shared
/// `params` spliced in unless they are there already.
pub(crate) fn inputs_text(job: &Job, params: Option<&str>) -> String {
    let own = job.inputs.to_string();
    match (params, &job.inputs) {
        (Some(params), Json::Object(inputs)) if !inputs.contains_key("params") => {
            let rest = &own[1..];
            let mut text = String::with_capacity(own.len() + params.len() + 12);
            text.push_str("{\"params\":");
            text.push_str(params);
            if rest != "}" {
                text.push(',');
            }
            text.push_str(rest);
            text
        }
        _ => own,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shared_params_are_spliced_into_the_inputs_text_once() {
        let mut job = weft_testkit::job("r", "s", "default");
        job.inputs = json!({"item": "a", "run": {"id": "r"}});
        let text = inputs_text(&job, Some(r#"{"items":["a","b"]}"#));
        let back: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back,
            json!({"params": {"items": ["a", "b"]}, "item": "a", "run": {"id": "r"}})
        );
        job.inputs = json!({});
        let text = inputs_text(&job, Some(r#"{"n":1}"#));
        assert_eq!(
            serde_json::from_str::<Json>(&text).unwrap(),
            json!({"params": {"n": 1}})
        );
        fill(&mut job, r#"{"n":2}"#);
        assert_eq!(
            inputs_text(&job, Some(r#"{"n":1}"#)),
            r#"{"params":{"n":2}}"#
        );
        assert_eq!(inputs_text(&job, None), r#"{"params":{"n":2}}"#);
    }
}
