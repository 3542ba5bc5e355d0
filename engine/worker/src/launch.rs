//! How a shell step's process starts. Forking the worker (a big,
//! multi-threaded process) copies its page tables and takes copy-on-write
//! faults on both sides until the child execs: most of what a short step
//! costs beyond its own program. The standard library starts a process
//! with `posix_spawn` instead (the child borrows the parent's memory until
//! it execs, nothing is copied) unless a `pre_exec` hook, a change of user,
//! or a `PATH` search in a changed environment needs a fork. So a step's
//! program is named by its absolute path, found here in the step's `PATH`
//! (one search, not the 8 failed `execve` of the C library's), and what
//! must happen in the child before the program runs — the parent-death
//! signal, and the step's user — is done by `setpriv(1)` from util-linux,
//! which then execs the program. A step that joins control groups
//! (`resources.memory`, `.cpus`), and every step on a machine without
//! `setpriv`, forks as before.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command as StdProcess;
use std::sync::OnceLock;

use nix::sys::signal::Signal;
use tokio::process::Command as Process;

/// `setpriv`, when this machine has one that sets a parent-death signal.
fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
            let found = resolve("setpriv", &path)?;
            let help = StdProcess::new(&found).arg("--help").output().ok()?;
            let text = String::from_utf8_lossy(&help.stdout);
            let usable = text.contains("--pdeathsig") && text.contains("--clear-groups");
            if !usable {
                tracing::info!(
                    setpriv = %found.display(),
                    "setpriv has no --pdeathsig: shell steps are started by fork"
                );
            }
            usable.then_some(found)
        })
        .as_deref()
}

/// `name` as the step would find it: itself if it names a path, else the
/// first executable file of that name in `path` (a `PATH` value).
pub(crate) fn resolve(name: &str, path: &OsStr) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    if name.is_empty() {
        return None;
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A step's process: `program` (absolute, or a path) with `args`, as `user`
/// (a uid and a gid, no other groups) when given, killed if the worker
/// dies. Started without a fork unless `forks` (the step joins control
/// groups in a `pre_exec` hook) or this machine has no usable `setpriv`.
pub(crate) fn command(
    program: &Path,
    args: &[&OsStr],
    user: Option<(u32, u32)>,
    forks: bool,
) -> Process {
    match setpriv().filter(|_| !forks) {
        Some(setpriv) => {
            let mut p = Process::new(setpriv);
            if let Some((uid, gid)) = user {
                p.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups");
            }
            // After the change of user, which would clear it.
            p.args(["--pdeathsig", "KILL", "--"])
                .arg(program)
                .args(args);
            p
        }
        None => {
            let mut p = Process::new(program);
            p.args(args);
            if let Some((uid, gid)) = user {
                p.uid(uid).gid(gid);
            }
            die_with_worker(&mut p);
            p
        }
    }
}

/// The step's process gets SIGKILL if the worker dies (even by `kill -9`),
/// so a job the broker redelivers never runs beside an orphan of itself.
#[allow(unsafe_code)]
fn die_with_worker(process: &mut Process) {
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls prctl(2), which is async-signal-safe; it allocates nothing.
    unsafe {
        process.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

/// The `PATH` a step gets: its own `env`'s, else the worker's.
pub(crate) fn step_path(env: &std::collections::BTreeMap<String, String>) -> OsString {
    env.get("PATH")
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_is_found_in_the_path_given_and_a_path_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).unwrap();
        assert_eq!(resolve("tool", &path), None, "not executable");
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(resolve("tool", &path), Some(tool));
        assert_eq!(resolve("./x/y", &path), Some(PathBuf::from("./x/y")));
        assert_eq!(resolve("missing", &path), None);
        assert_eq!(resolve("", &path), None);
    }
}
