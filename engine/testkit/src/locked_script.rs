//! Starting shared test services with a shell script under a file lock,
//! so the first test to ask starts them and the rest find them running.

use std::process::{Command, Stdio};

/// Runs `script` with `sh -c` and `args`, holding `lock` (`flock -o`: the
/// lock is flock's while the script runs and not passed to it, so the
/// servers it daemonises do not keep it). Panics with what the script said
/// on its standard error if it fails; `what` names the service.
pub(crate) fn run_locked(lock: &str, script: &str, args: &[String], what: &str) {
    let said = tempfile::NamedTempFile::new().expect("a temporary file");
    let status = Command::new("flock")
        .args(["-o", lock, "sh", "-c", script, "start"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(said.reopen().expect("reopening a temporary file"))
        .status()
        .unwrap_or_else(|e| panic!("running flock and sh to start {what}: {e}"));
    assert!(
        status.success(),
        "starting {what}: {}",
        std::fs::read_to_string(said.path()).unwrap_or_default()
    );
}
