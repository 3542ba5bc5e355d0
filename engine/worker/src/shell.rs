//! Runs a shell step: its own process group, captured output, timeout and
//! abort that kill the whole group, outputs read from `$WEFT_OUTPUTS`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use weft_core::run::{FailureKind, Job, Outcome};
use weft_core::spec::{units::format_duration, Command};

use crate::attempt::{bounded, Attempt, Ended};
use crate::gate::not_started;
use crate::params::InputsText;
use crate::spare::SpareDirs;
use crate::steplog::StepLog;
use crate::Options;
use crate::{launch, outputs};

/// Runs `command`; as `user` (a uid and a gid, no other groups) when given,
/// in its scratch directory, which is then that user's alone.
pub(crate) async fn run(
    attempt: Attempt<'_>,
    command: &Command,
    user: Option<(u32, u32)>,
) -> Outcome {
    let uid = user.map(|(uid, _)| uid);
    let log = attempt.log();
    let Attempt {
        job,
        options,
        inputs,
        mut gate,
        spares,
        note,
        ..
    } = attempt;
    let dir = options.attempt_dir(job);
    let outputs_path = dir.join("outputs.json");
    let inputs_path = dir.join("inputs.json");
    let (program, args): (&str, Vec<&OsStr>) = match command {
        Command::Shell(script) => ("sh", vec![OsStr::new("-c"), OsStr::new(script)]),
        Command::Argv(argv) => (&argv[0], argv[1..].iter().map(OsStr::new).collect()),
    };
    let prepared = if gate.is_closed() {
        // Prepared while the claim is asked (see `gate`), in a directory of
        // this execution's own, put in place once the claim is held.
        let early = prepare_aside(&dir, &inputs, user, spares);
        let found = find(program, job);
        if !gate.pass().await {
            if let Ok(aside) = early {
                let _ = std::fs::remove_dir_all(aside);
            }
            return not_started();
        }
        match early {
            Ok(aside) => put_in_place(&aside, &dir, &inputs, user),
            Err(outcome) => Err(outcome),
        }
        .and(found)
    } else {
        prepare(&dir, &inputs, user).and_then(|()| find(program, job))
    };
    let path = match prepared {
        Ok(path) => path,
        Err(outcome) => return outcome,
    };
    // The gate is open: this is the attempt's own.
    if let Some(note) = note {
        log.push(note.as_bytes()).await;
    }
    let mut abort = gate.abort();
    // `resources.memory` and `.cpus`, enforced by control groups the step
    // joins before it execs (and so before it can allocate anything).
    let (memory, cpus) = (job.resources.memory, job.resources.cpus);
    let (group, group_note) = if memory.is_some() || cpus.is_some() {
        let name = format!(
            "weft-{}-{}",
            std::process::id(),
            weft_core::ports::AttemptId::of(job)
                .to_string()
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        );
        match crate::cgroup::StepCgroup::create(&name, memory, cpus, uid) {
            Ok(group) => (Some(group), None),
            Err(e) => (
                None,
                Some(format!("[weft] resources are not enforced here: {e}\n")),
            ),
        }
    } else {
        (None, None)
    };
    // Not the worker's environment: what it was started with (a token,
    // service URLs, its configuration) is none of a step's business.
    let mut env: Vec<(OsString, OsString)> = step_env(&options.pass_env);
    let mut set = |k: &str, v: &OsStr| env.push((k.into(), v.to_os_string()));
    for (k, v) in &job.env {
        set(k, OsStr::new(v));
    }
    set("WEFT_OUTPUTS", outputs_path.as_os_str());
    set("WEFT_INPUTS_FILE", inputs_path.as_os_str());
    set("WEFT_SCRATCH", dir.as_os_str());
    set("WEFT_RUN_ID", OsStr::new(&job.run_id));
    set("WEFT_STEP", OsStr::new(&job.task.step));
    set("WEFT_ATTEMPT", OsStr::new(&job.attempt.to_string()));
    if let Some(inputs) = inputs.for_env() {
        set("WEFT_INPUTS", OsStr::new(&inputs));
    }
    if let Some(item) = job.inputs.get("item") {
        let item = item
            .as_str()
            .map_or_else(|| item.to_string(), str::to_string);
        set("WEFT_ITEM", OsStr::new(&item));
    }
    if user.is_some() {
        // The step's user has no home but its scratch directory.
        set("HOME", dir.as_os_str());
    }
    let launch = launch::Launch {
        program: path,
        args: args.iter().map(|a| a.to_os_string()).collect(),
        env,
        // Where its artifacts' paths start, unless told to run elsewhere.
        cwd: options.cwd.clone().unwrap_or_else(|| dir.clone()),
        user,
        cgroups: group.as_ref().map(|g| g.procs_files()).unwrap_or_default(),
    };
    let mut child = match launch::spawn(&launch) {
        Ok(c) => c,
        Err(e) => {
            let reason = match e.doing {
                "starting" => format!("starting `{program}`: {}", e.source),
                _ => format!("starting `{program}`: {e}"),
            };
            return failed(FailureKind::Infrastructure, reason, None, false);
        }
    };
    let pgid = Some(Pid::from_raw(child.id() as i32));
    if let Some(note) = group_note {
        log.push(note.as_bytes()).await;
    }
    let readers = [
        child
            .stdout
            .take()
            .map(|s| tokio::spawn(pump(s, log.clone()))),
        child
            .stderr
            .take()
            .map(|s| tokio::spawn(pump_err(s, log.clone()))),
    ];
    let flusher = log.spawn_flusher();

    let ended = bounded(child.wait(), job.timeout, &mut abort).await;
    if !matches!(ended, Ended::Finished(_)) {
        if let Some(pgid) = pgid {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        let _ = child.wait().await;
    } else if let Some(pgid) = pgid {
        // Background children of the step die with it.
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    for r in readers.into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
    }
    flusher.abort();
    log.finish().await;

    let oom_killed = group.as_ref().is_some_and(|g| g.oom_killed());
    if let Some(group) = group {
        // Removing it may wait for the last killed process to exit.
        tokio::task::spawn_blocking(move || drop(group));
    }
    let outcome = match ended {
        Ended::Finished(Ok(_)) if oom_killed => failed(
            FailureKind::OutOfMemory,
            format!(
                "oom-killed: the step went over its memory limit of {} MiB",
                job.resources.memory.unwrap_or_default() >> 20
            ),
            None,
            true,
        ),
        Ended::TimedOut(after) => failed(
            FailureKind::Timeout,
            format!("timed out after {}", format_duration(after)),
            None,
            true,
        ),
        Ended::Aborted => failed(FailureKind::Cancelled, "aborted".into(), None, false),
        Ended::Finished(Err(e)) => failed(
            FailureKind::Infrastructure,
            format!("waiting for `{program}`: {e}"),
            None,
            true,
        ),
        Ended::Finished(Ok(status)) => match status.code() {
            Some(0) => match outputs::read(&outputs_path, options.max_output_bytes) {
                Ok(outputs) => Outcome::Succeeded {
                    outputs,
                    artifacts: Default::default(),
                },
                Err(e) => failed(FailureKind::Other, e, Some(0), false),
            },
            Some(code) => failed(
                FailureKind::ExitCode,
                format!("exited with code {code}"),
                Some(code),
                true,
            ),
            None => {
                use std::os::unix::process::ExitStatusExt;
                failed(
                    FailureKind::ExitCode,
                    format!("killed by signal {}", status.signal().unwrap_or(0)),
                    None,
                    true,
                )
            }
        },
    };
    // The worker removes the scratch directory once it has collected
    // the step's artifacts from it.
    outcome
}

/// The attempt's scratch directory `dir` made (or kept, from an earlier
/// execution here), with its `inputs.json`, and given to the step's user.
fn prepare(dir: &Path, inputs: &InputsText, user: Option<(u32, u32)>) -> Result<(), Outcome> {
    Options::make_scratch_dir(dir).map_err(|e| unprepared(dir, e))?;
    let _ = std::fs::remove_file(dir.join("outputs.json"));
    fill(dir, inputs, user)
}

/// Writes `inputs.json` into `dir` and gives it to the step's user.
fn fill(dir: &Path, inputs: &InputsText, user: Option<(u32, u32)>) -> Result<(), Outcome> {
    inputs.write_file(&dir.join("inputs.json")).map_err(|e| {
        failed(
            FailureKind::Infrastructure,
            format!("writing inputs file: {e}"),
            None,
            true,
        )
    })?;
    if let Some((uid, gid)) = user {
        crate::users::give_dir(dir, uid, gid).map_err(|e| {
            failed(
                FailureKind::Infrastructure,
                format!("giving {} to the step's user: {e}", dir.display()),
                None,
                true,
            )
        })?;
    }
    Ok(())
}

/// As [`prepare`], before the claim is held: in a new directory beside
/// `dir` that no other execution can know of, so nothing another copy of
/// this attempt made or uses is touched. A spare directory of the step
/// user's, where one waits, rather than a new one.
fn prepare_aside(
    dir: &Path,
    inputs: &InputsText,
    user: Option<(u32, u32)>,
    spares: &SpareDirs,
) -> Result<PathBuf, Outcome> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let aside = dir.with_file_name(format!(
        ".{name}.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let owner = user.map_or_else(|| nix::unistd::geteuid().as_raw(), |(uid, _)| uid);
    if !spares.take(owner, &aside) {
        Options::make_scratch_dir(&aside).map_err(|e| unprepared(&aside, e))?;
    }
    fill(&aside, inputs, user)
        .inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&aside);
        })
        .map(|()| aside)
}

/// Moves the directory [`prepare_aside`] made to `dir`, the claim now
/// held. Where `dir` is there already, left by an earlier execution of
/// this attempt on this worker, it is used as [`prepare`] would.
fn put_in_place(
    aside: &Path,
    dir: &Path,
    inputs: &InputsText,
    user: Option<(u32, u32)>,
) -> Result<(), Outcome> {
    if std::fs::rename(aside, dir).is_ok() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(aside);
    prepare(dir, inputs, user)
}

/// A scratch directory that could not be made (a worker's fault: tried again).
fn unprepared(dir: &Path, e: std::io::Error) -> Outcome {
    failed(
        FailureKind::Infrastructure,
        format!("preparing the work directory {}: {e}", dir.display()),
        None,
        true,
    )
}

/// The program's path in the step's `PATH`: the process starts by path
/// (see `launch`).
fn find(program: &str, job: &Job) -> Result<PathBuf, Outcome> {
    launch::resolve(program, &launch::step_path(&job.env)).ok_or_else(|| {
        let missing = std::io::Error::from(nix::errno::Errno::ENOENT);
        failed(
            FailureKind::Infrastructure,
            format!("starting `{program}`: {missing}"),
            None,
            false,
        )
    })
}

/// The variables of this process's environment a step gets: the minimal
/// set a program expects ([`crate::STEP_ENV`], and `LC_*`) and those the
/// worker's configuration passes on.
fn step_env(pass: &[String]) -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            crate::STEP_ENV.contains(&k.as_ref())
                || k.starts_with("LC_")
                || pass.iter().any(|p| *p == k)
        })
        .collect()
}

fn failed(kind: FailureKind, reason: String, exit_code: Option<i32>, retryable: bool) -> Outcome {
    Outcome::Failed {
        reason,
        exit_code,
        retryable,
        kind,
    }
}

/// The step's stderr, its lines marked (`weft_core::log_format`).
async fn pump_err(mut pipe: impl AsyncRead + Unpin, log: Arc<StepLog>) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        log.push_err(&buf[..n]).await;
    }
}

async fn pump(mut pipe: impl AsyncRead + Unpin, log: Arc<StepLog>) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        log.push(&buf[..n]).await;
    }
}

#[cfg(test)]
mod tests;
