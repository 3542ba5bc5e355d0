//! Reading what a step wrote to `$WEFT_OUTPUTS`, and handing it its inputs.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

use serde_json::Value as Json;
use weft_core::run::Job;

/// Largest `$WEFT_INPUTS` put in a step's environment. Linux refuses to
/// start a program with one variable over 128 KiB, and all of them with its
/// arguments over a quarter of its stack limit; a join of thousands of steps
/// passes that. Bigger inputs are only in `$WEFT_INPUTS_FILE`.
pub const MAX_INPUTS_ENV: usize = 64 << 10;

/// The steps recently run here whose log said why `$WEFT_INPUTS` is unset.
const NOTED_STEPS: usize = 64;

/// Says once per step on this worker, in the log of its first attempt
/// whose inputs are too big for the environment, that `$WEFT_INPUTS` is
/// unset. Once, not per attempt: a `for-each` over a big params list has
/// every task over the limit, and a line in each of 10,000 logs is 10,000
/// more log writes (each a store commit) that say the same thing.
#[derive(Default)]
pub(crate) struct InputsNotes {
    said: Mutex<VecDeque<(String, String)>>,
}

impl InputsNotes {
    /// The line for `job`'s log, if its inputs (`inputs_len` bytes) are
    /// too big for the environment and its step has not been told here.
    pub(crate) fn note(&self, job: &Job, inputs_len: usize) -> Option<String> {
        if inputs_len <= MAX_INPUTS_ENV {
            return None;
        }
        let mut said = self.said.lock().expect("inputs notes lock");
        let step = (&job.run_id, &job.task.step);
        if said.iter().any(|(run, name)| (run, name) == step) {
            return None;
        }
        if said.len() == NOTED_STEPS {
            said.pop_front();
        }
        said.push_back((job.run_id.clone(), job.task.step.clone()));
        Some(format!(
            "[weft] $WEFT_INPUTS is not set: the inputs are {} KiB, more than the {} KiB the \
             environment takes; they are in $WEFT_INPUTS_FILE (said once per step on each worker)\n",
            inputs_len.div_ceil(1024),
            MAX_INPUTS_ENV >> 10
        ))
    }
}

/// The outputs object, `{}` if the file is missing or empty, or why it cannot be used.
pub fn read(path: &Path, max_bytes: u64) -> Result<Json, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => return Ok(Json::Object(Default::default())),
    };
    if meta.len() > max_bytes {
        return Err(format!(
            "outputs file is {} bytes; the limit is {} bytes",
            meta.len(),
            max_bytes
        ));
    }
    let text = std::fs::read(path).map_err(|e| format!("reading outputs file: {e}"))?;
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(Json::Object(Default::default()));
    }
    match serde_json::from_slice::<Json>(&text) {
        Ok(v @ Json::Object(_)) => Ok(v),
        Ok(other) => Err(format!(
            "outputs must be a JSON object, got {}",
            kind(&other)
        )),
        Err(e) => Err(format!("outputs file is not valid JSON: {e}")),
    }
}

fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_must_be_a_small_json_object() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("o.json");
        assert_eq!(read(&p, 10).unwrap(), serde_json::json!({}));
        std::fs::write(&p, r#"{"a": 1}"#).unwrap();
        assert_eq!(read(&p, 100).unwrap()["a"], 1);
        assert!(read(&p, 3).unwrap_err().contains("limit"));
        std::fs::write(&p, "[1]").unwrap();
        assert!(read(&p, 100).unwrap_err().contains("JSON object"));
        std::fs::write(&p, "{nope").unwrap();
        assert!(read(&p, 100).unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn a_step_is_told_once_that_its_inputs_are_not_in_the_environment() {
        let notes = InputsNotes::default();
        let mut job = weft_testkit::job("r", "each", "default");
        assert_eq!(notes.note(&job, MAX_INPUTS_ENV), None, "they fit");
        let note = notes
            .note(&job, MAX_INPUTS_ENV + 1)
            .expect("the first is told");
        assert!(
            note.contains("$WEFT_INPUTS is not set") && note.contains("65 KiB"),
            "{note}"
        );
        assert_eq!(notes.note(&job, MAX_INPUTS_ENV + 1), None, "once per step");
        job.task.step = "other".into();
        assert!(
            notes.note(&job, MAX_INPUTS_ENV + 1).is_some(),
            "another step"
        );
        job.run_id = "r2".into();
        assert!(
            notes.note(&job, MAX_INPUTS_ENV + 1).is_some(),
            "another run"
        );
    }
}
