//! A shell step's memory limit: a control group of its own under the
//! worker's (cgroup v2, or v1's memory controller), which the step's
//! process joins before it execs, with `resources.memory` as its limit and
//! no swap beyond it. Going over it, the kernel kills the step, and the
//! group's count of OOM kills says so (`oom-killed`, as for containers).
//! Where the worker may not create groups, the step runs without a limit
//! and its log says why.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// The control group of one running step.
#[derive(Debug)]
pub(crate) struct StepCgroup {
    dir: PathBuf,
    v2: bool,
    /// `cgroup.procs`, ready for the child to open without allocating.
    procs: CString,
}

/// The directory of this process's own group and whether it is v2.
fn own_group() -> Option<(PathBuf, bool)> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if unified && controllers.is_empty() {
            return Some((Path::new("/sys/fs/cgroup").join(path), true));
        }
        if !unified && controllers.split(',').any(|c| c == "memory") {
            return Some((Path::new("/sys/fs/cgroup/memory").join(path), false));
        }
    }
    None
}

impl StepCgroup {
    /// A group named `name` limited to `memory` bytes, its `cgroup.procs`
    /// writable by `uid` (a step user moves itself in).
    pub(crate) fn create(name: &str, memory: u64, uid: Option<u32>) -> Result<Self, String> {
        let (parent, v2) =
            own_group().ok_or("no memory control group found in /proc/self/cgroup")?;
        let dir = parent.join(name);
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let group = Self {
            procs: CString::new(
                dir.join("cgroup.procs")
                    .into_os_string()
                    .into_encoded_bytes(),
            )
            .map_err(|e| e.to_string())?,
            dir,
            v2,
        };
        let write = |file: &str, value: &str| {
            std::fs::write(group.dir.join(file), value)
                .map_err(|e| format!("setting {file} of {}: {e}", group.dir.display()))
        };
        if v2 {
            write("memory.max", &memory.to_string())?;
            // Best effort: without swap accounting there is no swap to limit.
            let _ = write("memory.swap.max", "0");
        } else {
            write("memory.limit_in_bytes", &memory.to_string())?;
            let _ = write("memory.memsw.limit_in_bytes", &memory.to_string());
        }
        if let Some(uid) = uid {
            let id = Some(nix::unistd::Uid::from_raw(uid));
            nix::unistd::chown(group.dir.join("cgroup.procs").as_path(), id, None)
                .map_err(|e| format!("giving {} to the step's user: {e}", group.dir.display()))?;
        }
        Ok(group)
    }

    /// What moves the calling process into the group, for the child
    /// between fork and exec: made here, it allocates nothing there and
    /// makes only async-signal-safe system calls (open, write, close).
    pub(crate) fn joiner(&self) -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
        let procs = self.procs.clone();
        move || {
            use nix::fcntl::{open, OFlag};
            use nix::sys::stat::Mode;
            let fd = open(procs.as_c_str(), OFlag::O_WRONLY, Mode::empty())?;
            nix::unistd::write(&fd, b"0")?;
            Ok(())
        }
    }

    /// Whether the kernel killed a process of the group for going over
    /// its limit.
    pub(crate) fn oom_killed(&self) -> bool {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse::<u64>().ok())
            })
            .is_some_and(|n| n > 0)
    }
}

impl Drop for StepCgroup {
    fn drop(&mut self) {
        // Empty once the step's process group is dead; a straggler still
        // exiting gets a few tries.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        tracing::warn!("could not remove control group {}", self.dir.display());
    }
}
