//! The worker's settings.

use std::path::PathBuf;

use serde::Deserialize;

/// How a worker runs. Every field has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Options {
    /// Name reported with every attempt. Default: `local`.
    pub name: String,
    /// Pools this worker takes jobs from. Default: `["default"]`.
    pub pools: Vec<String>,
    /// Attempts run at once. Default: the number of CPUs.
    pub concurrency: usize,
    /// Where attempts get their scratch directories (outputs and inputs files).
    /// Default: the system temp directory, under `weft/`.
    pub work_dir: PathBuf,
    /// Directory commands run in. Default: the worker's current directory.
    pub cwd: Option<PathBuf>,
    /// Largest outputs file accepted, in bytes. Default: 1 MiB.
    pub max_output_bytes: u64,
    /// Largest log kept per attempt, in bytes; the rest is dropped with a note. Default: 64 MiB.
    pub max_log_bytes: u64,
    /// How often the worker reports itself and its slots, in milliseconds;
    /// it is listed as gone after three missed beats. Default: 3000.
    pub heartbeat_ms: u64,
    /// The plugin host: default deadlines and memory caps of plugin calls,
    /// and where compiled plugins are cached (default: `plugin-cache` under
    /// `work-dir`).
    pub plugins: weft_wasm_host::Options,
    /// The GPUs this worker offers to steps that ask for `resources.gpus`.
    /// Default: those `nvidia-smi` reports, none without the driver (the
    /// `weft` binary fills this in from the CUDA driver where it can).
    pub gpus: Option<Vec<weft_core::ports::GpuSlot>>,
    /// Host directories a container step may mount: a mount's source must
    /// be one of these or inside one, once symbolic links are resolved.
    /// Default: none, so a container step gets no path of the host.
    pub allowed_mounts: Vec<PathBuf>,
    /// Variables of the worker's own environment a shell step also gets,
    /// beyond the minimal set ([`crate::STEP_ENV`]). Default: none; the
    /// worker's configuration, tokens and service URLs never reach a step.
    pub pass_env: Vec<String>,
    /// Who shell steps run as when the worker runs as root: `"step-uids"`
    /// (default: each running step a uid of its own from `step-uids`), a
    /// user's name or number (every step as that user), or `"worker"` (the
    /// worker's own user). A worker that is not root runs them as itself.
    pub run_as: crate::users::RunAs,
    /// The uids of `run-as = "step-uids"`, one per running step
    /// (`{ first = 100000, count = 64 }`). Default: `concurrency` uids from
    /// [`crate::users::DEFAULT_FIRST_STEP_UID`].
    pub step_uids: Option<crate::users::StepUids>,
    /// The largest artifact a step may leave (a directory's files
    /// together), in bytes. Default: 8 GiB.
    pub max_artifact_bytes: u64,
    /// How much of the artifacts it stored or fetched lately a worker keeps
    /// on disk (`work-dir/artifact-cache`, least recently used out first),
    /// so a chain of steps here downloads nothing. 0: no cache. Default: 4 GiB.
    pub artifact_cache_bytes: u64,
    /// Where attempts' scratch directories go when step users cannot reach
    /// `work-dir`: set by the worker as it starts, never configured.
    #[serde(skip)]
    pub scratch_dir: Option<PathBuf>,
    /// Claim and prepare jobs while every slot is busy, as many again as
    /// slots at most, so a step starts the moment a slot frees instead of
    /// a claim's durable write later (`worker.rs::execute`). Only for a
    /// worker alone on its queues (embedded): a job it claims ahead waits
    /// here even were another worker free. Set by the process that embeds
    /// the worker, never configured. Not for GPU steps.
    #[serde(skip)]
    pub prepare_ahead: bool,
}

impl Options {
    /// The scratch directory of one attempt: `work-dir/<run>/<task>@<attempt>`
    /// (or under the scratch directory step users were given instead).
    /// One directory per attempt, not one per task with the attempts in it:
    /// each directory made and removed is a new inode, and a fan-out makes
    /// thousands a second (see `docs/performance.md`). A container's is in
    /// `<run>/containers/`, which the worker alone may pass: the container's
    /// own directory is open to every user (the image's may be anyone).
    pub fn attempt_dir(&self, job: &weft_core::run::Job) -> PathBuf {
        let run = self.scratch_root().join(&job.run_id);
        let name = format!("{}@{}", job.task, job.attempt);
        match job.action {
            weft_core::spec::StepAction::Container { .. } => run.join("containers").join(name),
            _ => run.join(name),
        }
    }

    /// Where the runs' scratch directories are.
    fn scratch_root(&self) -> &std::path::Path {
        self.scratch_dir.as_ref().unwrap_or(&self.work_dir)
    }

    /// Makes the attempt's scratch directory. Tried again if another
    /// attempt's [`Options::remove_attempt_dir`] took an empty parent away
    /// midway.
    pub fn make_attempt_dir(&self, job: &weft_core::run::Job) -> std::io::Result<PathBuf> {
        let dir = self.attempt_dir(job);
        Self::make_scratch_dir(&dir).map(|()| dir)
    }

    /// Makes scratch directory `dir` and those above it, as
    /// [`Options::make_attempt_dir`] does.
    pub(crate) fn make_scratch_dir(dir: &std::path::Path) -> std::io::Result<()> {
        let mut tries = 0;
        loop {
            match std::fs::create_dir_all(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 5 => tries += 1,
                other => return other,
            }
        }
    }

    /// The run's scratch directory, which holds its attempts'.
    pub fn run_dir(&self, job: &weft_core::run::Job) -> PathBuf {
        self.scratch_root().join(&job.run_id)
    }

    /// Removes the attempt's scratch directory, and the ones above it below
    /// the run's once nothing else is in them. The run's own goes once the
    /// run has been idle here a while (`scratch::ScratchDirs`), so finished
    /// runs leave nothing behind; never the root above the runs: it
    /// carries the mode step users pass through.
    pub fn remove_attempt_dir(&self, job: &weft_core::run::Job) {
        Self::remove_scratch(&self.attempt_dir(job), &self.run_dir(job));
    }

    /// Removes scratch directory `dir`, and the ones above it below `run`
    /// once nothing else is in them.
    pub(crate) fn remove_scratch(dir: &std::path::Path, run: &std::path::Path) {
        let _ = std::fs::remove_dir_all(dir);
        for parent in dir.ancestors().skip(1).take_while(|d| *d != run) {
            if std::fs::remove_dir(parent).is_err() {
                break;
            }
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            name: "local".into(),
            pools: vec![weft_core::spec::DEFAULT_POOL.into()],
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            work_dir: std::env::temp_dir().join("weft"),
            cwd: None,
            max_output_bytes: 1 << 20,
            max_log_bytes: 64 << 20,
            heartbeat_ms: 3000,
            plugins: weft_wasm_host::Options::default(),
            gpus: None,
            allowed_mounts: Vec::new(),
            pass_env: Vec::new(),
            max_artifact_bytes: 8 << 30,
            artifact_cache_bytes: 4 << 30,
            run_as: crate::users::RunAs::default(),
            step_uids: None,
            scratch_dir: None,
            prepare_ahead: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::spec::{Command, StepAction};

    fn options(root: &std::path::Path) -> Options {
        Options {
            work_dir: root.to_path_buf(),
            ..Options::default()
        }
    }

    #[test]
    fn an_attempt_makes_one_directory_and_leaves_its_runs_for_the_sweep() {
        let root = tempfile::tempdir().unwrap();
        let options = options(root.path());
        let mut job = weft_testkit::job("r1", "make", "default");
        job.action = StepAction::Run {
            command: Command::Shell("true".into()),
        };
        let dir = options.make_attempt_dir(&job).unwrap();
        assert_eq!(dir, root.path().join("r1").join("make@1"));
        let mut retry = job.clone();
        retry.attempt = 2;
        options.make_attempt_dir(&retry).unwrap();
        options.remove_attempt_dir(&job);
        assert!(!dir.exists());
        assert!(root.path().join("r1").exists(), "the retry is still in it");
        options.remove_attempt_dir(&retry);
        assert!(!root.path().join("r1/make@2").exists());
        assert_eq!(
            options.run_dir(&job),
            root.path().join("r1"),
            "the run's stays, for its next attempt here (`scratch::ScratchDirs` removes it)"
        );
        assert!(root.path().join("r1").exists());
    }

    #[test]
    fn a_containers_directory_sits_in_one_of_the_runs_and_goes_with_its_last_container() {
        let root = tempfile::tempdir().unwrap();
        let options = options(root.path());
        let mut job = weft_testkit::job("r1", "boxed", "default");
        job.action = StepAction::Container {
            spec: serde_json::from_value(serde_json::json!({"image": "busybox"})).unwrap(),
        };
        let dir = options.make_attempt_dir(&job).unwrap();
        assert_eq!(dir, root.path().join("r1/containers/boxed@1"));
        options.remove_attempt_dir(&job);
        assert!(!root.path().join("r1/containers").exists());
        assert!(root.path().join("r1").exists(), "the run's goes once idle");
    }
}
