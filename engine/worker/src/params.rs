//! A run's params when its jobs carry them by reference (params bigger
//! than [`INLINE_PARAMS_BYTES`]): fetched from the run's record once and
//! kept for its next tasks, as the JSON text each task's `$WEFT_INPUTS`
//! has spliced in, so a task costs the size of its own inputs, not of the
//! run's params.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value as Json;
use tokio::sync::OnceCell;
use weft_core::artifacts::Digest;
use weft_core::ports::RunStore;
use weft_core::run::{params_digest, FailureKind, Job, Outcome};

#[cfg(doc)]
use weft_core::run::INLINE_PARAMS_BYTES;

/// Runs whose params this worker keeps: tasks of one run come together.
const KEPT_RUNS: usize = 8;

/// The params of the runs this worker ran tasks of lately.
pub(crate) struct SharedParams {
    store: Arc<dyn RunStore>,
    /// Each run's params, once read: the first tasks of a run, prepared at
    /// once, wait on one read of its record rather than each decoding it
    /// (a record with 10,000 params items is a few MB while decoded).
    kept: Mutex<VecDeque<(String, KeptParams)>>,
}

/// One run's params text, once read.
type KeptParams = Arc<OnceCell<Arc<str>>>;

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
        self.kept_or(&job.run_id, self.read(job, digest))
            .await
            .map(Some)
    }

    /// Run `run_id`'s params as kept, or as `read` gives them, read once
    /// however many tasks ask meanwhile. A failed read leaves the run's
    /// place empty: the next task reads again.
    async fn kept_or(
        &self,
        run_id: &str,
        read: impl std::future::Future<Output = Result<String, Outcome>>,
    ) -> Result<Arc<str>, Outcome> {
        let cell = {
            let mut kept = self.kept.lock().expect("params lock");
            match kept.iter().find(|(run, _)| run == run_id) {
                Some((_, cell)) => cell.clone(),
                None => {
                    if kept.len() == KEPT_RUNS {
                        kept.pop_front();
                    }
                    let cell = Arc::new(OnceCell::new());
                    kept.push_back((run_id.to_string(), cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_try_init(|| async { read.await.map(Arc::from) })
            .await
            .cloned()
    }

    /// Reads `job`'s run's params from its record, checked against the
    /// digest its job names.
    async fn read(&self, job: &Job, digest: &Digest) -> Result<String, Outcome> {
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
        Ok(text)
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

    #[tokio::test]
    async fn a_run_s_params_are_read_once_however_many_of_its_tasks_ask_at_once() {
        let shared = SharedParams::new(Arc::new(weft_testkit::MemoryRunStore::new()));
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let read = || async {
            reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok::<_, Outcome>(r#"{"n":1}"#.to_string())
        };
        let asked = tokio::join!(
            shared.kept_or("r", read()),
            shared.kept_or("r", read()),
            shared.kept_or("r", read()),
            shared.kept_or("r", read()),
        );
        let asked = [asked.0, asked.1, asked.2, asked.3];
        assert_eq!(
            reads.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one read"
        );
        let first = asked[0].as_ref().unwrap();
        assert!(
            asked
                .iter()
                .all(|t| Arc::ptr_eq(t.as_ref().unwrap(), first)),
            "one copy for the run"
        );

        // A failed read keeps no text; the next one is tried.
        let failed = shared
            .kept_or("s", async {
                Err(Outcome::Failed {
                    reason: "store down".into(),
                    exit_code: None,
                    retryable: true,
                    kind: FailureKind::Infrastructure,
                })
            })
            .await;
        assert!(failed.is_err());
        let again = shared.kept_or("s", read()).await.unwrap();
        assert_eq!(&*again, r#"{"n":1}"#);

        for run in 0..KEPT_RUNS - 2 {
            shared
                .kept_or(&format!("other-{run}"), read())
                .await
                .unwrap();
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
