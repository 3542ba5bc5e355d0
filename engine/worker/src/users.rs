//! Step users: when a worker runs as root, its shell steps do not. By
//! default each running step gets a uid of its own from `[worker]
//! step-uids` (a built-in range unless set), so a step can read neither the
//! worker's files and environment nor another running step's scratch
//! directory (each is 0700, owned by its step's uid). `run-as` names one
//! user for every step instead, or `"worker"` to keep the worker's own.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Deserialize;

/// Where built-in ranges start: past the ranges systemd hands to
/// containers (524288–1879048191), below 2³¹ and systemd's foreign range,
/// where no distribution puts users.
pub const DEFAULT_FIRST_STEP_UID: u32 = 1_880_000_000;
/// How far apart built-in ranges of differently named workers are.
const DEFAULT_RANGE_SPACING: u32 = 4096;
/// How many built-in ranges there are.
const DEFAULT_RANGES: u32 = 60_000;

/// The uids a worker named `worker` uses when `step-uids` is not set:
/// `concurrency` of them in a block chosen by its name, so workers on one
/// machine do not share uids (give each an explicit range to be certain).
pub fn default_step_uids(worker: &str, concurrency: usize) -> StepUids {
    // FNV-1a: stable across builds and platforms, unlike the std hasher.
    let hash = worker.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    StepUids {
        first: DEFAULT_FIRST_STEP_UID
            + (hash % u64::from(DEFAULT_RANGES)) as u32 * DEFAULT_RANGE_SPACING,
        count: (concurrency as u32).clamp(1, DEFAULT_RANGE_SPACING),
    }
}

/// `step-uids = { first = 100000, count = 64 }`: uids (each its own gid)
/// with no other use on the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StepUids {
    pub first: u32,
    pub count: u32,
}

/// Who a root worker's shell steps run as (`[worker] run-as`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(from = "String")]
pub enum RunAs {
    /// `"step-uids"`, the default: each running step a uid of its own.
    #[default]
    StepUids,
    /// `"worker"`: the worker's own user, who can read what the worker can
    /// (its configuration, its key file): for a machine with one user.
    Worker,
    /// A user's name or number: every step as that user (and its primary
    /// group), so steps running at once can read each other's files.
    User(String),
}

impl From<String> for RunAs {
    fn from(name: String) -> Self {
        match name.as_str() {
            "step-uids" => Self::StepUids,
            "worker" => Self::Worker,
            _ => Self::User(name),
        }
    }
}

/// Whose uids the steps run as.
#[derive(Debug)]
enum Pool {
    /// One uid a running step, given back when it ends.
    Range(StepUids),
    /// The same user for every step.
    One { uid: u32, gid: u32 },
}

/// The uids of the steps running now.
#[derive(Debug)]
pub(crate) struct StepUsers {
    pool: Pool,
    taken: Mutex<BTreeSet<u32>>,
}

/// A uid held by one running step; given back when dropped.
#[derive(Debug)]
pub(crate) struct StepUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    users: Arc<StepUsers>,
}

impl Drop for StepUser {
    fn drop(&mut self) {
        if matches!(self.users.pool, Pool::Range(_)) {
            self.users
                .taken
                .lock()
                .expect("step users lock")
                .remove(&self.uid);
        }
    }
}

/// What a worker's settings make of its shell steps' users.
#[derive(Debug, Default)]
pub(crate) struct Setup {
    /// None: steps run as the worker's user.
    pub(crate) users: Option<Arc<StepUsers>>,
    /// Where attempts' scratch directories go when the work directory is
    /// out of the step users' reach; removed when the worker stops.
    pub(crate) scratch: Option<tempfile::TempDir>,
}

impl StepUsers {
    /// The step users of the worker named `worker`, with `concurrency`
    /// slots, as many as `holders` attempts holding a uid at once (more
    /// than its slots where jobs are prepared ahead of a slot: see
    /// [`StepUsers::uids`]) and scratch directories under `work_dir`; why
    /// they cannot be had, if not.
    pub(crate) fn set_up(
        worker: &str,
        run_as: &RunAs,
        uids: Option<StepUids>,
        concurrency: usize,
        holders: usize,
        work_dir: &Path,
    ) -> Result<Setup, String> {
        let root = nix::unistd::geteuid().is_root();
        let pool = match (run_as, uids) {
            (RunAs::Worker, Some(_)) => {
                return Err("`[worker] step-uids` is for `run-as = \"step-uids\"`, not \
                            `run-as = \"worker\"`: remove one of them"
                    .into())
            }
            (RunAs::Worker, None) => {
                if root {
                    tracing::info!(
                        "`run-as = \"worker\"`: shell steps run as root, and can read this \
                         worker's configuration, key file and other steps' files"
                    );
                }
                return Ok(Setup::default());
            }
            (RunAs::StepUids, None) if !root => return Ok(Setup::default()),
            (_, Some(_)) | (RunAs::User(_), _) if !root => {
                return Err(
                    "`[worker] run-as` and `step-uids` need a worker that runs as root".into(),
                )
            }
            (RunAs::StepUids, uids) => {
                let uids = uids.unwrap_or_else(|| default_step_uids(worker, holders));
                check_range(uids, concurrency)?;
                Pool::Range(uids)
            }
            (RunAs::User(name), None) => {
                let (uid, gid) = lookup(name)?;
                Pool::One { uid, gid }
            }
            (RunAs::User(_), Some(_)) => {
                return Err(
                    "`[worker] step-uids` is for `run-as = \"step-uids\"`, not for \
                            one named user: remove one of them"
                        .into(),
                )
            }
        };
        let scratch = scratch_root(work_dir, worker)?;
        Ok(Setup {
            users: Some(Arc::new(Self {
                pool,
                taken: Mutex::new(BTreeSet::new()),
            })),
            scratch,
        })
    }

    /// How many uids there are to take, for a pool of them (`None`: one
    /// user for every step). An attempt holds its uid from when it
    /// prepares its directory (owned by that uid) until its step has
    /// ended, so the worker lets no more attempts than this prepare at
    /// once.
    pub(crate) fn uids(&self) -> Option<usize> {
        match self.pool {
            Pool::Range(uids) => Some(uids.count as usize),
            Pool::One { .. } => None,
        }
    }

    /// A uid no running step has (or the one user's).
    pub(crate) fn take(self: &Arc<Self>) -> Option<StepUser> {
        let (uid, gid) = match self.pool {
            Pool::One { uid, gid } => (uid, gid),
            Pool::Range(uids) => {
                let mut taken = self.taken.lock().expect("step users lock");
                let uid = (uids.first..uids.first.saturating_add(uids.count))
                    .find(|uid| !taken.contains(uid))?;
                taken.insert(uid);
                (uid, uid)
            }
        };
        Some(StepUser {
            uid,
            gid,
            users: self.clone(),
        })
    }
}

/// A range is wide enough and used by no one else.
fn check_range(uids: StepUids, concurrency: usize) -> Result<(), String> {
    if uids.first == 0 || (uids.count as usize) < concurrency {
        return Err(format!(
            "`[worker] step-uids` must be at least `concurrency` ({concurrency}) uids, none of them 0"
        ));
    }
    if uids.first.checked_add(uids.count).is_none() {
        return Err("`[worker] step-uids` runs past the last uid".into());
    }
    for uid in uids.first..uids.first + uids.count {
        if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
            return Err(format!(
                "`[worker] step-uids` holds uid {uid}, which is the user `{}` of this machine: \
                 choose uids nothing else uses",
                user.name
            ));
        }
    }
    Ok(())
}

/// The uid and primary gid of a user named by name or number; not root.
fn lookup(name: &str) -> Result<(u32, u32), String> {
    let user = match name.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .map_err(|e| format!("`[worker] run-as`: looking up uid {uid}: {e}"))?
            .map(|u| (u.uid.as_raw(), u.gid.as_raw()))
            // A bare number need not be in the user database.
            .or(Some((uid, uid))),
        Err(_) => nix::unistd::User::from_name(name)
            .map_err(|e| format!("`[worker] run-as`: looking up `{name}`: {e}"))?
            .map(|u| (u.uid.as_raw(), u.gid.as_raw())),
    };
    match user {
        None => Err(format!(
            "`[worker] run-as`: there is no user `{name}` on this machine \
             (create it as the operations guide says, e.g. `useradd --system weft-step`)"
        )),
        Some((0, _)) => Err(format!(
            "`[worker] run-as = \"{name}\"` is root: use `\"worker\"` to mean the worker's user"
        )),
        Some(ids) => Ok(ids),
    }
}

/// Whether `dir` can be reached by users other than its owner: it and
/// every directory above it passable by others.
fn reachable(dir: &Path) -> bool {
    dir.ancestors().skip(1).all(|d| {
        std::fs::metadata(d)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    })
}

/// Makes `work_dir` passable (not listable) by step users; when a
/// directory above it is closed to them (a home directory, a private
/// temporary one), a fresh directory in the system's temp directory holds
/// the scratch directories instead, rather than opening the path up.
fn scratch_root(work_dir: &Path, worker: &str) -> Result<Option<tempfile::TempDir>, String> {
    std::fs::create_dir_all(work_dir)
        .and_then(|()| std::fs::set_permissions(work_dir, PermissionsExt::from_mode(0o711)))
        .map_err(|e| format!("work-dir {}: {e}", work_dir.display()))?;
    if reachable(work_dir) {
        return Ok(None);
    }
    let prefix = format!(
        "weft-steps-{}-",
        worker.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
    );
    let temp = std::env::temp_dir();
    for base in [temp.as_path(), Path::new("/tmp")] {
        if !base.is_absolute() || !reachable(&base.join("x")) {
            continue;
        }
        remove_left_behind(base, &prefix);
        // A name no one can guess and a directory made here, never one
        // found: another user of the machine cannot plant it.
        let scratch = tempfile::Builder::new()
            .prefix(&prefix)
            .permissions(PermissionsExt::from_mode(0o711))
            .tempdir_in(base)
            .map_err(|e| format!("making a scratch directory in {}: {e}", base.display()))?;
        tracing::info!(
            "step users cannot reach work-dir {} (a directory above it is closed to others); \
             attempts' scratch directories are under {}",
            work_dir.display(),
            scratch.path().display()
        );
        return Ok(Some(scratch));
    }
    Err(format!(
        "step users cannot reach work-dir {}, nor the temp directory: \
         chmod o+x the directories above it, or choose another work-dir",
        work_dir.display()
    ))
}

/// Removes the scratch roots an earlier life of this worker (killed, so
/// it could not) left in `base`: directories of its prefix owned by this
/// process's user, never a link.
fn remove_left_behind(base: &Path, prefix: &str) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let ours = entry.file_name().to_string_lossy().starts_with(prefix)
            && std::fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Gives the attempt's scratch directory to the step's user, readable by
/// it alone.
pub(crate) fn give_dir(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let id = Some(nix::unistd::Uid::from_raw(uid));
    let gid = Some(nix::unistd::Gid::from_raw(gid));
    nix::unistd::chown(dir, id, gid).map_err(std::io::Error::from)?;
    for entry in std::fs::read_dir(dir)? {
        nix::unistd::chown(&entry?.path(), id, gid).map_err(std::io::Error::from)?;
    }
    // The run's directory: passable, not listable.
    if let Some(run_dir) = dir.parent() {
        std::fs::set_permissions(run_dir, PermissionsExt::from_mode(0o711))?;
    }
    std::fs::set_permissions(dir, PermissionsExt::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_running_step_has_a_uid_of_its_own() {
        let users = Arc::new(StepUsers {
            pool: Pool::Range(StepUids {
                first: 100_000,
                count: 2,
            }),
            taken: Mutex::default(),
        });
        let a = users.take().unwrap();
        let b = users.take().unwrap();
        assert_ne!(a.uid, b.uid);
        assert_eq!(a.uid, a.gid);
        assert!(users.take().is_none());
        let freed = a.uid;
        drop(a);
        assert_eq!(users.take().unwrap().uid, freed);
    }

    #[test]
    fn workers_of_other_names_get_other_default_ranges() {
        let a = default_step_uids("gpu-1", 8);
        let b = default_step_uids("gpu-2", 8);
        assert_ne!(a.first, b.first);
        assert_eq!(a, default_step_uids("gpu-1", 8));
        for uids in [a, b, default_step_uids(&"x".repeat(300), 100_000)] {
            assert!(uids.first >= DEFAULT_FIRST_STEP_UID);
            // Below systemd's foreign range (0x7FFE0000) and 2^31.
            assert!(uids.first as u64 + uids.count as u64 <= 0x7FFE_0000);
        }
    }

    #[test]
    fn one_named_user_serves_every_step() {
        let users = Arc::new(StepUsers {
            pool: Pool::One { uid: 999, gid: 998 },
            taken: Mutex::default(),
        });
        let a = users.take().unwrap();
        let b = users.take().unwrap();
        assert_eq!((a.uid, a.gid, b.uid), (999, 998, 999));
    }

    #[test]
    fn run_as_reads_its_keywords_and_names() {
        assert_eq!(RunAs::from("step-uids".to_string()), RunAs::StepUids);
        assert_eq!(RunAs::from("worker".to_string()), RunAs::Worker);
        assert_eq!(
            RunAs::from("weft-step".to_string()),
            RunAs::User("weft-step".into())
        );
        assert!(lookup("root").unwrap_err().contains("is root"));
        assert!(lookup("0").unwrap_err().contains("is root"));
        assert!(lookup("no-such-user-here")
            .unwrap_err()
            .contains("no user `no-such-user-here`"));
        assert_eq!(lookup("3999999").unwrap(), (3_999_999, 3_999_999));
    }

    #[test]
    fn a_range_holding_a_machine_user_is_refused() {
        // uid 1 is a system user (daemon) on every distribution weft runs on.
        let err = check_range(StepUids { first: 1, count: 4 }, 2).unwrap_err();
        assert!(err.contains("uid 1, which is the user"), "{err}");
        assert!(check_range(
            StepUids {
                first: DEFAULT_FIRST_STEP_UID,
                count: 8
            },
            8
        )
        .is_ok());
        assert!(check_range(
            StepUids {
                first: DEFAULT_FIRST_STEP_UID,
                count: 2
            },
            4
        )
        .is_err());
    }

    #[test]
    fn a_work_dir_closed_to_others_moves_scratch_to_the_temp_directory() {
        let closed = tempfile::tempdir().unwrap();
        std::fs::set_permissions(closed.path(), PermissionsExt::from_mode(0o700)).unwrap();
        let work = closed.path().join("work");
        let name = weft_testkit::unique("scratch");
        let scratch = scratch_root(&work, &name).unwrap().expect("moved");
        assert!(reachable(&scratch.path().join("x")));
        let mode = std::fs::metadata(scratch.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o711);
        // A worker killed leaves its root behind; its next life removes it.
        let left = scratch.keep();
        let again = scratch_root(&work, &name).unwrap().expect("moved");
        assert!(!left.exists());
        drop(again);
        std::fs::set_permissions(closed.path(), PermissionsExt::from_mode(0o711)).unwrap();
        assert!(scratch_root(&work, &name).unwrap().is_none());
    }
}
