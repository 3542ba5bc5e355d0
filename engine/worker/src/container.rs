//! Runs a container step through the worker's [`ContainerRuntime`]: the
//! step's scratch directory is mounted at `/weft`, so `$WEFT_OUTPUTS` and
//! the inputs file work as for shell steps; a timeout or an abort kills
//! the container.

use std::collections::BTreeMap;
use std::sync::Arc;

use weft_core::ports::{ContainerExit, ContainerRun, ContainerRuntime, WORKER_LABEL};
use weft_core::run::{FailureKind, Job, Outcome};
use weft_core::spec::units::format_duration;
use weft_core::spec::ContainerSpec;

use crate::attempt::{bounded, Attempt, Ended};
use crate::outputs;

/// Labels on every container a worker starts, besides `WORKER_LABEL`.
const LABEL_RUN: &str = "dev.weft.run";
const LABEL_TASK: &str = "dev.weft.task";
const LABEL_ATTEMPT: &str = "dev.weft.attempt";

/// Processes a container may run at once.
const PIDS_LIMIT: i64 = 1024;

fn failed(kind: FailureKind, reason: String, exit_code: Option<i32>, retryable: bool) -> Outcome {
    Outcome::Failed {
        reason,
        exit_code,
        retryable,
        kind,
    }
}

/// A name Docker accepts, unique per attempt.
fn container_name(job: &Job) -> String {
    let task: String = job
        .task
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "weft-{}-{}-{}",
        job.run_id,
        task.trim_end_matches('-'),
        job.attempt
    )
}

/// Whether this worker lets a container mount host path `source`: it must
/// exist and, with its symbolic links resolved, be one of `allowed` or
/// inside one (so neither `..` nor a link leads out of them).
/// Returns the path to mount: `source` with its links resolved, so what
/// was checked is what is mounted, even if a link changes meanwhile.
fn mount_allowed(source: &str, allowed: &[std::path::PathBuf]) -> Result<String, String> {
    if allowed.is_empty() {
        return Err(format!(
            "mounting host path `{source}` is refused: this worker allows container steps no \
             host paths (an administrator may list some in `[worker] allowed-mounts`)"
        ));
    }
    let real =
        std::fs::canonicalize(source).map_err(|e| format!("mounting host path `{source}`: {e}"))?;
    let real_text = real.display().to_string();
    if weft_core::spec::is_docker_socket(&real_text) {
        return Err(format!(
            "mounting `{source}` is refused: it leads to `{real_text}`, and a container with the \
             Docker socket controls the host"
        ));
    }
    let inside = allowed
        .iter()
        .any(|dir| std::fs::canonicalize(dir).is_ok_and(|dir| real.starts_with(dir)));
    if inside {
        Ok(real_text)
    } else {
        let list: Vec<String> = allowed.iter().map(|d| d.display().to_string()).collect();
        Err(format!(
            "mounting host path `{source}` is refused: this worker allows only paths inside {}",
            list.join(", ")
        ))
    }
}

/// What the runtime gets for this attempt; `inputs` for `$WEFT_INPUTS`
/// (none when too big for the environment).
fn request(
    job: &Job,
    spec: &ContainerSpec,
    inputs: Option<&str>,
    scratch: &str,
    worker: &str,
) -> ContainerRun {
    let mut env: BTreeMap<String, String> = job.env.clone();
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.insert("WEFT_OUTPUTS".into(), "/weft/outputs.json".into());
    env.insert("WEFT_INPUTS_FILE".into(), "/weft/inputs.json".into());
    env.insert("WEFT_SCRATCH".into(), "/weft".into());
    if let Some(inputs) = inputs {
        env.insert("WEFT_INPUTS".into(), inputs.into());
    }
    env.insert("WEFT_RUN_ID".into(), job.run_id.clone());
    env.insert("WEFT_STEP".into(), job.task.step.clone());
    env.insert("WEFT_ATTEMPT".into(), job.attempt.to_string());
    let labels = BTreeMap::from([
        (WORKER_LABEL.to_string(), worker.to_string()),
        (LABEL_RUN.to_string(), job.run_id.clone()),
        (LABEL_TASK.to_string(), job.task.to_string()),
        (LABEL_ATTEMPT.to_string(), job.attempt.to_string()),
    ]);
    ContainerRun {
        name: container_name(job),
        labels,
        image: spec.image.clone(),
        command: spec.command.clone(),
        args: spec.args.clone(),
        env,
        workdir: spec.workdir.clone(),
        user: spec.user.clone(),
        mounts: spec.mounts.clone(),
        scratch: scratch.to_string(),
        cpus: job.resources.cpus,
        memory_bytes: job.resources.memory,
        pids_limit: PIDS_LIMIT,
        network: spec.network,
        gpus: Vec::new(),
    }
}

pub(crate) async fn run(
    attempt: Attempt<'_>,
    spec: &ContainerSpec,
    runtime: &Arc<dyn ContainerRuntime>,
) -> Outcome {
    let log = attempt.log();
    let Attempt {
        job,
        options,
        gate,
        gpus,
        inputs,
        ..
    } = attempt;
    // Passed already (`Executors::run`): the attempt's own.
    let mut abort = gate.abort();
    let dir = options.attempt_dir(job);
    let prepared = (|| {
        options.make_attempt_dir(job)?;
        // The container's user may be anyone, so the directory is open to
        // all; its parent (the run's `containers`) is the worker's alone, so
        // no other step on this machine can reach it (the container gets
        // it by its bind mount, made by the engine as root).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        if let Some(private) = dir.parent() {
            std::fs::set_permissions(private, std::fs::Permissions::from_mode(0o700))?;
        }
        let _ = std::fs::remove_file(dir.join("outputs.json"));
        inputs.write_file(&dir.join("inputs.json"))
    })();
    // Inputs too big for the environment are only in the file.
    let inputs_env = inputs.for_env();
    if let Err(e) = prepared {
        return failed(
            FailureKind::Infrastructure,
            format!("preparing {}: {e}", dir.display()),
            None,
            true,
        );
    }
    let scratch = match std::path::absolute(&dir) {
        Ok(p) => p.display().to_string(),
        Err(e) => {
            return failed(
                FailureKind::Infrastructure,
                format!("preparing {}: {e}", dir.display()),
                None,
                true,
            )
        }
    };
    let mut request = ContainerRun {
        gpus: gpus.to_vec(),
        ..request(job, spec, inputs_env.as_deref(), &scratch, &options.name)
    };
    for mount in &mut request.mounts {
        match mount_allowed(&mount.source, &options.allowed_mounts) {
            Ok(real) => mount.source = real,
            Err(e) => return failed(FailureKind::Policy, e, None, false),
        }
    }
    // Upstream artifacts, fetched by the worker: read-only in the container.
    let fetched = dir.join(crate::artifacts::ARTIFACTS_DIR);
    if fetched.is_dir() {
        request.mounts.push(weft_core::ports::ContainerMount {
            source: format!("{scratch}/{}", crate::artifacts::ARTIFACTS_DIR),
            target: crate::artifacts::CONTAINER_ARTIFACTS.into(),
            read_only: true,
        });
    }
    let flusher = log.spawn_flusher();
    let ended = bounded(runtime.run(&request, log.as_ref()), job.timeout, &mut abort).await;
    if !matches!(ended, Ended::Finished(_)) {
        if let Err(e) = runtime.kill(&request.name).await {
            log.push(format!("\n[weft: stopping the container: {e}]\n").as_bytes())
                .await;
        }
    }
    flusher.abort();
    log.finish().await;
    let outcome = match ended {
        Ended::TimedOut(after) => failed(
            FailureKind::Timeout,
            format!(
                "timed out after {}; the container was killed",
                format_duration(after)
            ),
            None,
            true,
        ),
        Ended::Aborted => failed(FailureKind::Cancelled, "aborted".into(), None, false),
        Ended::Finished(Err(weft_core::Error::Invalid(e))) => {
            failed(FailureKind::Policy, e, None, false)
        }
        Ended::Finished(Err(e)) => failed(
            FailureKind::Infrastructure,
            format!("container runtime: {e}"),
            None,
            true,
        ),
        Ended::Finished(Ok(ContainerExit::OomKilled)) => failed(
            FailureKind::OutOfMemory,
            format!(
                "oom-killed: the container went over its memory limit{}",
                job.resources
                    .memory
                    .map(|m| format!(" of {} MiB", m >> 20))
                    .unwrap_or_default()
            ),
            None,
            true,
        ),
        Ended::Finished(Ok(ContainerExit::Exited(0))) => {
            match outputs::read(&dir.join("outputs.json"), options.max_output_bytes) {
                Ok(outputs) => Outcome::Succeeded {
                    outputs,
                    artifacts: Default::default(),
                },
                Err(e) => failed(FailureKind::Other, e, Some(0), false),
            }
        }
        Ended::Finished(Ok(ContainerExit::Exited(code))) => failed(
            FailureKind::ExitCode,
            format!("exited with code {code}"),
            Some(code as i32),
            true,
        ),
    };
    // The worker removes the scratch directory once it has collected
    // the step's artifacts from it.
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weft_core::run::TaskId;

    #[test]
    fn host_paths_are_mounted_only_inside_the_allowed_directories() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let secret = root.path().join("secret");
        std::fs::create_dir_all(data.join("set")).unwrap();
        std::fs::create_dir_all(&secret).unwrap();
        std::os::unix::fs::symlink(&secret, data.join("escape")).unwrap();
        let path = |p: &std::path::Path| p.display().to_string();
        // None allowed by default.
        let e = mount_allowed(&path(&data), &[]).unwrap_err();
        assert!(e.contains("allows container steps no host paths"), "{e}");
        let allowed = [data.clone()];
        assert_eq!(
            mount_allowed(&path(&data), &allowed).unwrap(),
            path(&std::fs::canonicalize(&data).unwrap())
        );
        assert!(mount_allowed(&path(&data.join("set")), &allowed).is_ok());
        for outside in [
            secret.clone(),
            data.join("escape"),
            data.join("../secret"),
            std::path::PathBuf::from("/"),
        ] {
            let e = mount_allowed(&path(&outside), &allowed).unwrap_err();
            assert!(
                e.contains("allows only paths inside") || e.contains("Docker socket"),
                "{outside:?}: {e}"
            );
        }
        // A link inside an allowed directory to the Docker socket (or a
        // directory holding it) is refused as where it leads, even where
        // an administrator allowed that directory.
        std::os::unix::fs::symlink("/run", data.join("run")).unwrap();
        let e =
            mount_allowed(&path(&data.join("run")), &[data.clone(), "/run".into()]).unwrap_err();
        assert!(
            e.contains("leads to `/run`") && e.contains("Docker socket"),
            "{e}"
        );
        // A sibling whose name starts the same is not inside.
        std::fs::create_dir_all(root.path().join("data2")).unwrap();
        assert!(mount_allowed(&path(&root.path().join("data2")), &allowed).is_err());
        // A path that does not exist is not mounted (Docker would make it).
        assert!(mount_allowed(&path(&data.join("nope")), &allowed)
            .unwrap_err()
            .contains("No such file"));
    }

    #[test]
    fn requests_are_built_from_the_typed_step() {
        let mut job = weft_testkit_job();
        job.task = TaskId::new("prep", Some(2));
        job.resources.memory = Some(64 << 20);
        job.env.insert("A".into(), "step".into());
        job.env.insert("B".into(), "step".into());
        let spec = json!({"image": "busybox", "command": "echo hi", "env": {"A": 1},
            "mounts": ["/data:/data:ro", {"source": "/x", "target": "/y"}], "network": true});
        let spec = ContainerSpec::parse(spec.as_object().unwrap()).unwrap();
        let r = request(&job, &spec, Some("{}"), "/tmp/s", "w1");
        assert_eq!(r.name, "weft-r1-prep-2-1");
        assert_eq!(r.command.unwrap(), ["sh", "-c", "echo hi"]);
        assert_eq!((r.env["A"].as_str(), r.env["B"].as_str()), ("1", "step"));
        assert_eq!(r.env["WEFT_OUTPUTS"], "/weft/outputs.json");
        assert!(r.mounts[0].read_only);
        assert!(!r.mounts[1].read_only);
        assert_eq!(r.labels[WORKER_LABEL], "w1");
        assert_eq!((r.memory_bytes, r.network), (Some(64 << 20), true));
    }

    fn weft_testkit_job() -> Job {
        Job {
            run_id: "r1".into(),
            workflow: "w".into(),
            task: TaskId::new("s", None),
            attempt: 1,
            action: weft_core::spec::StepAction::Join,
            env: Default::default(),
            secrets: Default::default(),
            inputs: json!({}),
            shared_params: None,
            timeout: None,
            pool: "default".into(),
            resources: Default::default(),
            pre_hooks: vec![],
            post_hooks: vec![],
            step_plugin: None,
            artifacts: Vec::new(),
            produces: Vec::new(),
            priority: 0,
            reply_to: None,
            requeued: 0,
        }
    }
}
