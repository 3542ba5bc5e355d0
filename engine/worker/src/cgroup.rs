//! A shell step's resources: control groups of its own under the worker's
//! (one with cgroup v2; v1's memory and cpu controllers each have their
//! own), which the step's process joins before it execs. `resources.memory`
//! is a hard limit with no swap beyond it: going over it, the kernel kills
//! the step and the group's count of OOM kills says so (`oom-killed`, as
//! for containers). `resources.cpus` is a CPU quota (`cpus` × 100 ms per
//! 100 ms). Where the worker may not create groups, the step runs without
//! them and its log says why.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Period of the CPU quota, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// One control group directory of a step.
#[derive(Debug)]
struct Group {
    dir: PathBuf,
    /// `cgroup.procs`, ready for the child to open without allocating.
    procs: CString,
}

/// The control groups of one running step.
#[derive(Debug)]
pub(crate) struct StepCgroup {
    v2: bool,
    /// v2: the one group; v1: the memory group (if any), then the cpu one.
    groups: Vec<Group>,
    memory: bool,
}

/// The directory of this process's group for `controller` (v1), or its
/// one group (v2), and whether it is v2.
fn own_group(controller: &str) -> Option<(PathBuf, bool)> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if unified && controllers.is_empty() {
            return Some((Path::new("/sys/fs/cgroup").join(path), true));
        }
        if !unified && controllers.split(',').any(|c| c == controller) {
            return Some((
                Path::new("/sys/fs/cgroup").join(controller).join(path),
                false,
            ));
        }
    }
    None
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), String> {
    std::fs::write(dir.join(file), value)
        .map_err(|e| format!("setting {file} of {}: {e}", dir.display()))
}

impl Group {
    /// A new group `name` under this process's group for `controller`.
    fn create(controller: &str, name: &str, uid: Option<u32>) -> Result<(Self, bool), String> {
        let (parent, v2) = own_group(controller)
            .ok_or_else(|| format!("no {controller} control group found in /proc/self/cgroup"))?;
        let dir = parent.join(name);
        std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let procs_path = dir.join("cgroup.procs");
        if let Some(uid) = uid {
            // A step user moves itself in.
            let id = Some(nix::unistd::Uid::from_raw(uid));
            nix::unistd::chown(procs_path.as_path(), id, None)
                .map_err(|e| format!("giving {} to the step's user: {e}", dir.display()))?;
        }
        let procs = CString::new(procs_path.into_os_string().into_encoded_bytes())
            .map_err(|e| e.to_string())?;
        Ok((Self { dir, procs }, v2))
    }
}

impl StepCgroup {
    /// Groups named `name` holding the step to `memory` bytes and `cpus`,
    /// their `cgroup.procs` writable by `uid`.
    pub(crate) fn create(
        name: &str,
        memory: Option<u64>,
        cpus: Option<f64>,
        uid: Option<u32>,
    ) -> Result<Self, String> {
        let quota = cpus.map(|c| format!("{}", ((c * CPU_PERIOD_US as f64) as u64).max(1000)));
        let mut step = Self {
            v2: false,
            groups: Vec::new(),
            memory: memory.is_some(),
        };
        if let Some(memory) = memory {
            let (group, v2) = Group::create("memory", name, uid)?;
            step.v2 = v2;
            let limit = memory.to_string();
            step.groups.push(group);
            let dir = &step.groups[0].dir;
            if v2 {
                write(dir, "memory.max", &limit)?;
                // Best effort: without swap accounting there is no swap to limit.
                let _ = write(dir, "memory.swap.max", "0");
            } else {
                write(dir, "memory.limit_in_bytes", &limit)?;
                let _ = write(dir, "memory.memsw.limit_in_bytes", &limit);
            }
        }
        if let Some(quota) = quota {
            if step.v2 {
                write(
                    &step.groups[0].dir,
                    "cpu.max",
                    &format!("{quota} {CPU_PERIOD_US}"),
                )?;
            } else {
                let (group, v2) = Group::create("cpu", name, uid)?;
                step.v2 = v2;
                step.groups.push(group);
                let dir = &step.groups.last().expect("just pushed").dir;
                if v2 {
                    write(dir, "cpu.max", &format!("{quota} {CPU_PERIOD_US}"))?;
                } else {
                    write(dir, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                    write(dir, "cpu.cfs_quota_us", &quota)?;
                }
            }
        }
        Ok(step)
    }

    /// The `cgroup.procs` files a process writes itself into to join the
    /// step's groups (see `launch`).
    pub(crate) fn procs_files(&self) -> Vec<CString> {
        self.groups.iter().map(|g| g.procs.clone()).collect()
    }

    /// Whether the kernel killed a process of the step for going over its
    /// memory limit.
    pub(crate) fn oom_killed(&self) -> bool {
        if !self.memory {
            return false;
        }
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        std::fs::read_to_string(self.groups[0].dir.join(file))
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
        for group in &self.groups {
            let gone = (0..50).any(|_| {
                let gone = std::fs::remove_dir(&group.dir).is_ok() || !group.dir.exists();
                if !gone {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                gone
            });
            if !gone {
                tracing::warn!("could not remove control group {}", group.dir.display());
            }
        }
    }
}
