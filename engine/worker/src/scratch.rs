//! An attempt in its scratch directory: the upstream artifacts it names
//! fetched into it first, what it declares collected from it when it
//! succeeds, and the directory removed (a shell step's emptied and kept
//! for the next step of its user, `crate::spare`) once the attempt's end
//! is reported, whatever happened (its run's once the run is idle here).

use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_core::ports::{ArtifactStore, AttemptId};
use weft_core::run::{FailureKind, Job, Outcome};
use weft_core::spec::StepAction;

use crate::artifact_cache::ArtifactCache;
use crate::attempt::Attempt;
use crate::executor::Executors;
use crate::gate::StartGate;
use crate::spare::SpareDirs;
use crate::steplog::StepLog;
use crate::Options;

/// What is left to remove of attempts' scratch directories.
///
/// - An attempt's own directory is removed once its end is recorded and
///   reported ([`ScratchDirs::remove_ended`]), not before: removing it (two
///   inodes freed) would otherwise sit on a chain's way between one step's
///   process and the next step's start.
/// - A run's directory, once an attempt leaves it empty, waits until no
///   attempt of its run has ended here for [`ScratchDirs::IDLE`], rather
///   than going at each attempt's end: a chain's steps would otherwise make
///   and remove it at every step, one inode more each (on ext4 without a
///   journal, a scan past every recently freed one).
/// - A shell step's own directory is emptied and kept for a later step of
///   its user rather than removed ([`SpareDirs`]), for the same reason.
#[derive(Default)]
pub(crate) struct ScratchDirs {
    runs: Mutex<HashMap<PathBuf, Instant>>,
    /// Attempts whose step has ended: their directory and their run's.
    ended: Mutex<HashMap<AttemptId, Ended>>,
    pub(crate) spares: SpareDirs,
}

/// An ended attempt's directories.
struct Ended {
    dir: PathBuf,
    run: PathBuf,
    at: Instant,
    /// A shell step's, which may wait emptied for another of its user's,
    /// this many at most: the worker's concurrency.
    spares: Option<usize>,
}

impl ScratchDirs {
    /// How long a run's directory waits, idle, before it goes.
    pub(crate) const IDLE: Duration = Duration::from_secs(5);

    /// `job`'s step has ended: its directory goes once its end is
    /// reported ([`remove_ended`](Self::remove_ended)), or at the latest
    /// with the next sweep after [`IDLE`](Self::IDLE).
    fn ended(&self, options: &Options, job: &Job) {
        let shell = matches!(job.action, StepAction::Run { .. });
        let ended = Ended {
            dir: options.attempt_dir(job),
            run: options.run_dir(job),
            at: Instant::now(),
            spares: shell.then_some(options.concurrency.max(1)),
        };
        lock(&self.ended).insert(AttemptId::of(job), ended);
    }

    /// Removes the directory of `attempt`, whose end is now reported.
    pub(crate) fn remove_ended(&self, attempt: &AttemptId) {
        let ended = lock(&self.ended).remove(attempt);
        if let Some(ended) = ended {
            self.remove(ended);
        }
    }

    fn remove(&self, ended: Ended) {
        match (ended.spares, ended.run.parent()) {
            (Some(most), Some(root)) => self.spares.keep(&ended.dir, root, most),
            _ => Options::remove_scratch(&ended.dir, &ended.run),
        }
        lock(&self.runs).insert(ended.run, Instant::now());
    }

    /// Removes every directory left, the spare ones last: the worker stops.
    pub(crate) fn remove_all(&self) {
        self.sweep(Duration::ZERO);
        self.spares.clear();
    }

    /// Removes the ended attempts' directories older than `idle` and the
    /// runs' directories idle for `idle` or more that are empty. A run's
    /// that is not holds an attempt still running, whose end notes it
    /// again; one removed as an attempt starts in it is made again
    /// (`Options::make_attempt_dir`).
    pub(crate) fn sweep(&self, idle: Duration) {
        for (_, ended) in take_older(&self.ended, idle, |e| e.at) {
            self.remove(ended);
        }
        for (dir, _) in take_older(&self.runs, idle, |at| *at) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Takes out of `map` the entries noted `idle` or more ago (`at`).
fn take_older<K: Clone + Eq + Hash, V>(
    map: &Mutex<HashMap<K, V>>,
    idle: Duration,
    at: impl Fn(&V) -> Instant,
) -> Vec<(K, V)> {
    let mut map = lock(map);
    let older: Vec<K> = map
        .iter()
        .filter(|(_, v)| at(v).elapsed() >= idle)
        .map(|(k, _)| k.clone())
        .collect();
    older
        .into_iter()
        .filter_map(|k| map.remove_entry(&k))
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where this worker keeps artifacts: the store (none: a step that uses or
/// declares artifacts fails here) and its local cache; and what is left to
/// remove of its attempts' scratch directories.
#[derive(Default)]
pub(crate) struct ArtifactsHere {
    pub(crate) store: Option<Arc<dyn ArtifactStore>>,
    pub(crate) cache: Option<ArtifactCache>,
    pub(crate) scratch: ScratchDirs,
}

impl ArtifactsHere {
    /// Runs `job`'s action with `executors`, its artifacts around it.
    // The attempt's parts, each from another owner (the worker, the job,
    // its hooks): a struct for them would be built for this one call.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run_in_scratch(
        &self,
        options: &Options,
        executors: &Executors,
        job: &mut Job,
        params: Option<Arc<str>>,
        gpus: &[String],
        log: &Arc<StepLog>,
        mut gate: StartGate,
    ) -> Outcome {
        let dir = options.attempt_dir(job);
        let (store, cache) = (self.store.as_ref(), self.cache.as_ref());
        // Without a store a kernel's large outputs stay files on this
        // worker, read by later steps here, as before artifacts.
        let kernel_keeps_files = matches!(job.action, StepAction::Cuda { .. }) && store.is_none();
        if kernel_keeps_files {
            job.produces.clear();
        }
        let refused = gate.refused();
        if !job.artifacts.is_empty() {
            // Fetched once the claim is held.
            if !gate.pass().await {
                return crate::gate::not_started();
            }
            if let Err(e) = options.make_attempt_dir(job) {
                return Outcome::Failed {
                    reason: format!("preparing {}: {e}", dir.display()),
                    exit_code: None,
                    retryable: true,
                    kind: FailureKind::Infrastructure,
                };
            }
            if let Err(outcome) = crate::artifacts::fetch(store, cache, job, &dir).await {
                options.remove_attempt_dir(job);
                return outcome;
            }
        }
        let attempt = Attempt {
            inputs: crate::params::InputsText::of(job, params),
            job,
            options,
            log: log.clone(),
            gpus,
            gate,
            spares: &self.scratch.spares,
            note: None,
        };
        let mut outcome = executors.run(attempt, &job.action).await;
        if refused.happened() {
            // Its claim was not held: the directory is another execution's
            // to remove, if anyone's.
            return outcome;
        }
        if let Outcome::Succeeded { artifacts, .. } = &mut outcome {
            // Declared paths are the step's working directory's.
            let base = match (&job.action, &options.cwd) {
                (StepAction::Run { .. }, Some(cwd)) => cwd.clone(),
                _ => dir.clone(),
            };
            let max = options.max_artifact_bytes;
            match crate::artifacts::collect(store, cache, job, &base, &dir, max).await {
                Ok(collected) => *artifacts = collected,
                Err(failed) => outcome = failed,
            }
        }
        if !kernel_keeps_files {
            self.scratch.ended(options, job);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempts_directory_goes_when_told_and_its_runs_once_idle_and_empty() {
        let root = tempfile::tempdir().unwrap();
        let options = Options {
            work_dir: root.path().to_path_buf(),
            ..Options::default()
        };
        let (a, b) = (
            weft_testkit::job("r1", "a", "default"),
            weft_testkit::job("r1", "b", "default"),
        );
        let dirs = ScratchDirs::default();
        for job in [&a, &b] {
            options.make_attempt_dir(job).unwrap();
            dirs.ended(&options, job);
        }
        dirs.remove_ended(&AttemptId::of(&a));
        assert!(!options.attempt_dir(&a).exists(), "removed once reported");
        assert!(
            options.attempt_dir(&b).exists(),
            "b's end is not reported yet"
        );
        dirs.sweep(ScratchDirs::IDLE);
        assert!(options.attempt_dir(&b).exists(), "nor old enough to sweep");
        let run = options.run_dir(&a);
        assert!(run.exists(), "the run's waits until idle");
        dirs.sweep(Duration::ZERO);
        assert!(
            !options.attempt_dir(&b).exists(),
            "a sweep takes what is left"
        );
        assert!(!run.exists(), "and the run's, idle and empty");

        // A run's directory that holds a running attempt stays.
        let c = weft_testkit::job("r2", "c", "default");
        let d = weft_testkit::job("r2", "d", "default");
        options.make_attempt_dir(&c).unwrap();
        options.make_attempt_dir(&d).unwrap();
        dirs.ended(&options, &c);
        dirs.remove_ended(&AttemptId::of(&c));
        dirs.sweep(Duration::ZERO);
        assert!(options.run_dir(&c).exists(), "d is running in it");
    }
}
