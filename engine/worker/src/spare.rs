//! Emptied scratch directories, kept for the next shell step of the same
//! user. A step's directory and its `inputs.json` are two new inodes, and
//! a fan-out makes and frees thousands a second; on ext4 without a journal
//! each new inode is a scan past every one freed in the last seconds (see
//! `docs/performance.md`). A directory whose attempt has ended is emptied
//! but for its `inputs.json` and waits here, out of every step's reach, to
//! be moved into place for a later attempt.
//!
//! Only for a step of the same uid: a process of the step that got away
//! from its group could keep the directory (or its `inputs.json`) open and
//! read what the next step is given, which it could read anyway only as
//! that step's own user. While it is emptied and while it waits, the
//! directory is the worker's, mode 0700, so no step can add to it; the
//! `inputs.json` kept is a regular file with one link, or it goes too.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The spare directories of one worker.
#[derive(Default)]
pub(crate) struct SpareDirs {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Where they wait: made in the scratch root when the first is kept,
    /// removed with the worker.
    home: Option<tempfile::TempDir>,
    /// The waiting directories of each step user.
    by_owner: HashMap<u32, Vec<PathBuf>>,
    /// How many were kept, for their names.
    kept: u64,
}

/// An `inputs.json` larger than this goes rather than waiting. Inputs of
/// a run with big params are that big for each of its tasks (130 KB each
/// in a `for-each` over 10,000 params items): kept, each task writes over
/// the blocks of the last instead of freeing them and taking new ones. So
/// the spares of a worker hold at most this for each of their number
/// (the worker's concurrency per step user).
const KEEP_INPUTS_UP_TO: u64 = 1 << 20;

impl SpareDirs {
    /// Moves a spare directory of `owner`'s to `to`, whose parent is made
    /// if missing; `false` if none waits or none could be moved.
    pub(crate) fn take(&self, owner: u32, to: &Path) -> bool {
        loop {
            let Some(spare) = self.lock().by_owner.get_mut(&owner).and_then(Vec::pop) else {
                return false;
            };
            let moved = std::fs::rename(&spare, to).or_else(|e| {
                if e.kind() != std::io::ErrorKind::NotFound || !spare.exists() {
                    return Err(e);
                }
                // The run's directory is not there (yet, or any more).
                let parent = to.parent().unwrap_or(to);
                crate::Options::make_scratch_dir(parent)?;
                std::fs::rename(&spare, to)
            });
            match moved {
                Ok(()) => return true,
                Err(e) => {
                    tracing::debug!(spare = %spare.display(), "a spare directory could not be used: {e}");
                    let _ = std::fs::remove_dir_all(&spare);
                }
            }
        }
    }

    /// Empties `dir`, a shell attempt's that has ended, and keeps it for
    /// the next step of its owner, at most `per_owner` of them; removes it
    /// where it cannot be kept. `root` is where the runs' directories are.
    pub(crate) fn keep(&self, dir: &Path, root: &Path, per_owner: usize) {
        if let Err(e) = self.try_keep(dir, root, per_owner) {
            tracing::debug!(dir = %dir.display(), "not kept: {e}");
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    fn try_keep(&self, dir: &Path, root: &Path, per_owner: usize) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(dir)?;
        if !meta.is_dir() {
            return Err(std::io::Error::other("not a directory"));
        }
        let owner = meta.uid();
        if self.lock().by_owner.get(&owner).map_or(0, Vec::len) >= per_owner {
            return Err(std::io::Error::other("enough are kept"));
        }
        // The worker's from here: no step adds to it while it is emptied.
        let me = nix::unistd::geteuid().as_raw();
        if owner != me {
            std::os::unix::fs::lchown(dir, Some(me), Some(nix::unistd::getegid().as_raw()))?;
        }
        std::fs::set_permissions(dir, PermissionsExt::from_mode(0o700))?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.metadata()?; // the entry's own (not followed)
            let keep = entry.file_name() == "inputs.json"
                && meta.is_file()
                && meta.nlink() == 1
                && meta.len() <= KEEP_INPUTS_UP_TO;
            if keep {
                continue;
            }
            if meta.is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        }
        let mut inner = self.lock();
        if inner.by_owner.get(&owner).map_or(0, Vec::len) >= per_owner {
            return Err(std::io::Error::other("enough are kept"));
        }
        if inner.home.is_none() {
            inner.home = Some(
                tempfile::Builder::new()
                    .prefix(".spare-")
                    .permissions(PermissionsExt::from_mode(0o700))
                    .tempdir_in(root)?,
            );
        }
        inner.kept += 1;
        let to = inner
            .home
            .as_ref()
            .map(|home| home.path().join(inner.kept.to_string()))
            .expect("made above");
        std::fs::rename(dir, &to)?;
        inner.by_owner.entry(owner).or_default().push(to);
        Ok(())
    }

    /// Removes every spare directory (the worker stops).
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.by_owner.clear();
        inner.home = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// An attempt's directory under `root`, with what a step leaves.
    fn ended(root: &Path, name: &str) -> PathBuf {
        let dir = root.join("r1").join(name);
        std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        std::fs::write(dir.join("inputs.json"), r#"{"a": "the step before's"}"#).unwrap();
        std::fs::write(dir.join("outputs.json"), "{}").unwrap();
        std::fs::write(dir.join(".hidden"), "x").unwrap();
        std::fs::write(dir.join("sub/deeper/f"), "x").unwrap();
        dir
    }

    #[test]
    fn an_ended_directory_waits_emptied_for_a_step_of_its_user() {
        let root = tempfile::tempdir().unwrap();
        let dir = ended(root.path(), "a@1");
        let inode = std::fs::metadata(&dir).unwrap().ino();
        let me = nix::unistd::geteuid().as_raw();
        let spares = SpareDirs::default();
        spares.keep(&dir, root.path(), 4);
        assert!(!dir.exists(), "it left the run's directory");

        let to = root.path().join("r2").join(".b@1.aside");
        assert!(!spares.take(me + 1, &to), "not for another user");
        assert!(spares.take(me, &to), "for its own, the run's made for it");
        assert_eq!(std::fs::metadata(&to).unwrap().ino(), inode, "the same");
        assert_eq!(
            names(&to),
            ["inputs.json"],
            "nothing else of the step before"
        );
        let mode = std::fs::metadata(&to).unwrap().mode();
        assert_eq!(mode & 0o7777, 0o700);
        assert!(!spares.take(me, &root.path().join("r2/c")), "taken once");

        // Written over in place, cut to the new text's length.
        let job = weft_testkit::job("r2", "b", "default");
        crate::params::InputsText::of(&job, None)
            .write_file(&to.join("inputs.json"))
            .unwrap();
        let text = std::fs::read_to_string(to.join("inputs.json")).unwrap();
        let _: serde_json::Value = serde_json::from_str(&text).expect(&text);
        assert!(!text.contains("the step before's"), "{text}");
    }

    #[test]
    fn an_inputs_file_up_to_its_bound_waits_and_a_bigger_one_goes() {
        let root = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let spares = SpareDirs::default();
        for (name, len) in [("a@1", KEEP_INPUTS_UP_TO), ("b@1", KEEP_INPUTS_UP_TO + 1)] {
            let dir = ended(root.path(), name);
            std::fs::write(dir.join("inputs.json"), vec![b' '; len as usize]).unwrap();
            spares.keep(&dir, root.path(), 2);
        }
        // The last kept is taken first.
        let to = root.path().join("r1/taken");
        assert!(spares.take(me, &to));
        assert!(names(&to).is_empty(), "{:?}", names(&to));
        let to = root.path().join("r1/taken-too");
        assert!(spares.take(me, &to));
        assert_eq!(names(&to), ["inputs.json"]);
    }

    #[test]
    fn an_inputs_file_that_is_a_link_goes_and_so_do_directories_past_the_bound() {
        let root = tempfile::tempdir().unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let outside = root.path().join("outside");
        std::fs::write(&outside, "not the step's").unwrap();
        let linked = ended(root.path(), "a@1");
        std::fs::remove_file(linked.join("inputs.json")).unwrap();
        std::os::unix::fs::symlink(&outside, linked.join("inputs.json")).unwrap();
        let hard = ended(root.path(), "b@1");
        std::fs::remove_file(hard.join("inputs.json")).unwrap();
        std::fs::hard_link(&outside, hard.join("inputs.json")).unwrap();
        let third = ended(root.path(), "c@1");

        let spares = SpareDirs::default();
        for dir in [&linked, &hard, &third] {
            spares.keep(dir, root.path(), 2);
            assert!(!dir.exists());
        }
        for n in 0..2 {
            let to = root.path().join(format!("r1/taken{n}"));
            assert!(spares.take(me, &to));
            assert!(names(&to).is_empty(), "{:?}", names(&to));
        }
        assert!(
            !spares.take(me, &root.path().join("r1/x")),
            "two were kept, the third removed"
        );
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "not the step's");

        // The worker stops: what waits goes.
        spares.keep(&ended(root.path(), "d@1"), root.path(), 2);
        spares.clear();
        assert_eq!(names(root.path()), ["outside", "r1"]);
    }

    #[test]
    fn a_step_users_directory_is_the_workers_while_it_waits() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test gives a directory to another user, which needs root"
        );
        let root = tempfile::tempdir().unwrap();
        let dir = ended(root.path(), "a@1");
        let user = 1_880_123_456;
        crate::users::give_dir(&dir, user, user).unwrap();
        let spares = SpareDirs::default();
        spares.keep(&dir, root.path(), 2);
        let waiting: Vec<PathBuf> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".spare-")
            })
            .flat_map(|home| std::fs::read_dir(home).unwrap().map(|e| e.unwrap().path()))
            .collect();
        assert_eq!(waiting.len(), 1, "{waiting:?}");
        let meta = std::fs::metadata(&waiting[0]).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o700));
        assert!(
            !spares.take(0, &root.path().join("r1/x")),
            "not the worker's"
        );
        assert!(spares.take(user, &root.path().join("r1/y")));
    }
}
