//! Step users: when a worker runs as root, its shell steps run as
//! unprivileged users of their own, one uid per running step from the range
//! `[worker] step-uids` names, so a step can read neither the worker's
//! files and environment nor another running step's scratch directory
//! (each is 0700, owned by its step's uid).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

/// `step-uids = { first = 100000, count = 64 }`: uids (each its own gid)
/// with no other use on the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StepUids {
    pub first: u32,
    pub count: u32,
}

/// The uids of the steps running now.
#[derive(Debug)]
pub(crate) struct StepUsers {
    uids: StepUids,
    taken: Mutex<BTreeSet<u32>>,
}

/// A uid held by one running step; given back when dropped.
#[derive(Debug)]
pub(crate) struct StepUser {
    pub(crate) uid: u32,
    users: Arc<StepUsers>,
}

impl Drop for StepUser {
    fn drop(&mut self) {
        self.users
            .taken
            .lock()
            .expect("step users lock")
            .remove(&self.uid);
    }
}

impl StepUsers {
    /// The step users of a worker with `concurrency` slots whose scratch
    /// directories are under `work_dir`; why they cannot be had, if not.
    pub(crate) fn new(
        uids: StepUids,
        concurrency: usize,
        work_dir: &Path,
    ) -> Result<Arc<Self>, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("`[worker] step-uids` needs a worker that runs as root".into());
        }
        if uids.first == 0 || (uids.count as usize) < concurrency {
            return Err(format!(
                "`[worker] step-uids` must be at least `concurrency` ({concurrency}) uids, none of them 0"
            ));
        }
        // Steps must reach their own directory, and list no one else's.
        std::fs::create_dir_all(work_dir)
            .and_then(|()| std::fs::set_permissions(work_dir, PermissionsExt::from_mode(0o711)))
            .map_err(|e| format!("work-dir {}: {e}", work_dir.display()))?;
        for dir in work_dir.ancestors().skip(1) {
            let mode = std::fs::metadata(dir)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            if mode & 0o001 == 0 {
                return Err(format!(
                    "step users cannot reach work-dir {}: {} is not traversable by others \
                     (chmod o+x it, or choose another work-dir)",
                    work_dir.display(),
                    dir.display()
                ));
            }
        }
        Ok(Arc::new(Self {
            uids,
            taken: Mutex::new(BTreeSet::new()),
        }))
    }

    /// A uid no running step has.
    pub(crate) fn take(self: &Arc<Self>) -> Option<StepUser> {
        let mut taken = self.taken.lock().expect("step users lock");
        let uid = (self.uids.first..self.uids.first.saturating_add(self.uids.count))
            .find(|uid| !taken.contains(uid))?;
        taken.insert(uid);
        Some(StepUser {
            uid,
            users: self.clone(),
        })
    }
}

/// Gives the attempt's scratch directory to `uid`, readable by it alone.
pub(crate) fn give_dir(dir: &Path, uid: u32) -> std::io::Result<()> {
    let id = Some(nix::unistd::Uid::from_raw(uid));
    let gid = Some(nix::unistd::Gid::from_raw(uid));
    nix::unistd::chown(dir, id, gid).map_err(std::io::Error::from)?;
    for entry in std::fs::read_dir(dir)? {
        nix::unistd::chown(&entry?.path(), id, gid).map_err(std::io::Error::from)?;
    }
    // The run's and the task's directories: passable, not listable.
    for parent in dir.ancestors().skip(1).take(2) {
        std::fs::set_permissions(parent, PermissionsExt::from_mode(0o711))?;
    }
    std::fs::set_permissions(dir, PermissionsExt::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_running_step_has_a_uid_of_its_own() {
        let users = Arc::new(StepUsers {
            uids: StepUids {
                first: 100_000,
                count: 2,
            },
            taken: Mutex::default(),
        });
        let a = users.take().unwrap();
        let b = users.take().unwrap();
        assert_ne!(a.uid, b.uid);
        assert!(users.take().is_none());
        let freed = a.uid;
        drop(a);
        assert_eq!(users.take().unwrap().uid, freed);
    }
}
