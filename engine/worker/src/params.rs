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
        Ok(Some(self.keep(&job.run_id, text)))
    }

    /// Keeps `text` as run `run_id`'s params, or gives the text kept for
    /// it already: the first tasks of a run, prepared at once, each read
    /// its params, and the first read kept is the one they all share, not
    /// a copy each (which would also push other runs' out).
    fn keep(&self, run_id: &str, text: String) -> Arc<str> {
        let mut kept = self.kept.lock().expect("params lock");
        if let Some((_, text)) = kept.iter().find(|(run, _)| run == run_id) {
            return text.clone();
        }
        let text: Arc<str> = text.into();
        if kept.len() == KEPT_RUNS {
            kept.pop_front();
        }
        kept.push_back((run_id.to_string(), text.clone()));
        text
    }
}

/// Puts `params` into `job`'s inputs, for what reads them as JSON values
/// (plugins); steps get them spliced into their inputs' text instead.
pub(crate) fn fill(job: &mut Job, params: &str) {
    if let (Json::Object(inputs), Ok(params)) = (&mut job.inputs, serde_json::from_str(params)) {
        inputs.insert("params".into(), params);
    }
}

/// The text of an attempt's `$WEFT_INPUTS`: its job's own inputs, with its
/// run's shared `params` spliced in unless they are there already. Kept as
/// its parts, the params shared with the run's other tasks here, and
/// written to the inputs file part by part: a task of a run whose params
/// are big costs its own inputs, not another copy of the params (a
/// `for-each` over 10,000 params items made a 130 KiB string per task).
#[derive(Debug, Clone)]
pub(crate) struct InputsText {
    /// The run's params' JSON text, when spliced in.
    params: Option<Arc<str>>,
    /// The job's own inputs as JSON; with `params`, without its `{`.
    own: String,
}

impl InputsText {
    pub(crate) fn of(job: &Job, params: Option<Arc<str>>) -> Self {
        let own = job.inputs.to_string();
        match (params, &job.inputs) {
            (Some(params), Json::Object(inputs)) if !inputs.contains_key("params") => Self {
                params: Some(params),
                own: own[1..].to_string(),
            },
            _ => Self { params: None, own },
        }
    }

    /// The text's pieces, in order.
    fn parts(&self) -> impl Iterator<Item = &str> {
        let (head, params, comma) = match &self.params {
            Some(params) => (
                "{\"params\":",
                &**params,
                if self.own == "}" { "" } else { "," },
            ),
            None => ("", "", ""),
        };
        [head, params, comma, self.own.as_str()].into_iter()
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.parts().map(str::len).sum()
    }

    /// The whole text, for `$WEFT_INPUTS`, when it fits in a process's
    /// environment ([`crate::outputs::MAX_INPUTS_ENV`]); bigger inputs are
    /// only in the file.
    pub(crate) fn for_env(&self) -> Option<String> {
        (self.len() <= crate::outputs::MAX_INPUTS_ENV).then(|| self.parts().collect())
    }

    /// Writes it to the file at `path`, made if missing, never through a
    /// symbolic link. An existing file (a spare directory's, see
    /// `crate::spare`) is written over in place and cut to length, so
    /// the blocks it has are kept.
    pub(crate) fn write_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let mut written = 0;
        for part in self.parts().filter(|p| !p.is_empty()) {
            file.write_all(part.as_bytes())?;
            written += part.len() as u64;
        }
        // A new file is as long as what was written; only an older,
        // longer one needs cutting (a truncate is an inode update).
        if file.metadata()?.len() != written {
            file.set_len(written)?;
        }
        Ok(())
    }

    #[cfg(test)]
    fn text(&self) -> String {
        self.parts().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_run_s_params_are_kept_once_however_many_of_its_tasks_read_them() {
        let shared = SharedParams::new(Arc::new(weft_testkit::MemoryRunStore::new()));
        let first = shared.keep("r", r#"{"n":1}"#.into());
        let again = shared.keep("r", r#"{"n":1}"#.into());
        assert!(Arc::ptr_eq(&first, &again), "one copy for the run");
        for run in 0..KEPT_RUNS - 1 {
            shared.keep(&format!("other-{run}"), "{}".into());
        }
        let kept = shared.kept.lock().unwrap();
        assert_eq!(kept.len(), KEPT_RUNS);
        assert_eq!(
            kept.front().map(|(run, _)| run.as_str()),
            Some("r"),
            "still kept"
        );
    }

    #[test]
    fn shared_params_are_spliced_into_the_inputs_text_once() {
        let mut job = weft_testkit::job("r", "s", "default");
        job.inputs = json!({"item": "a", "run": {"id": "r"}});
        let text = InputsText::of(&job, Some(r#"{"items":["a","b"]}"#.into())).text();
        let back: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back,
            json!({"params": {"items": ["a", "b"]}, "item": "a", "run": {"id": "r"}})
        );
        job.inputs = json!({});
        let text = InputsText::of(&job, Some(r#"{"n":1}"#.into())).text();
        assert_eq!(
            serde_json::from_str::<Json>(&text).unwrap(),
            json!({"params": {"n": 1}})
        );
        fill(&mut job, r#"{"n":2}"#);
        assert_eq!(
            InputsText::of(&job, Some(r#"{"n":1}"#.into())).text(),
            r#"{"params":{"n":2}}"#
        );
        assert_eq!(InputsText::of(&job, None).text(), r#"{"params":{"n":2}}"#);
    }

    #[test]
    fn the_file_holds_the_whole_text_and_the_environment_what_fits() {
        let mut job = weft_testkit::job("r", "s", "default");
        job.inputs = json!({"item": "a"});
        // `{"params":"xx…"}` spliced before `"item":"a"}`.
        let overhead = r#"{"params":"","item":"a"}"#.len();
        let fits = format!(
            r#""{}""#,
            "x".repeat(crate::outputs::MAX_INPUTS_ENV - overhead)
        );
        let inputs = InputsText::of(&job, Some(fits.into()));
        assert_eq!(inputs.len(), crate::outputs::MAX_INPUTS_ENV);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inputs.json");
        inputs.write_file(&path).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written, inputs.text());
        assert_eq!(serde_json::from_str::<Json>(&written).unwrap()["item"], "a");
        assert_eq!(inputs.for_env().as_deref(), Some(written.as_str()));

        let over = format!(r#""{}""#, "x".repeat(crate::outputs::MAX_INPUTS_ENV));
        let inputs = InputsText::of(&job, Some(over.into()));
        assert!(inputs.len() > crate::outputs::MAX_INPUTS_ENV);
        assert_eq!(inputs.for_env(), None);
        // Its own inputs alone, when the job carries its params.
        job.inputs = json!({"params": {"n": 1}});
        let inputs = InputsText::of(&job, None);
        inputs.write_file(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            r#"{"params":{"n":1}}"#
        );
    }
}
