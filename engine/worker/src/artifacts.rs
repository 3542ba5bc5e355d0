//! Artifacts on the worker: before a step starts, the upstream artifacts it
//! names are fetched into `artifacts/<step>/<name>` of its scratch
//! directory (read-only for it) and its references point there; when it
//! succeeds, what it declared (paths relative to its working directory:
//! the scratch directory, or `[worker] cwd` for a shell step where set, as
//! under `weft run`) is hashed and stored. A directory travels as
//! a deterministic tar (same files, same digest), unpacked where it is
//! used. Paths must stay inside the scratch directory, symbolic links
//! included.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use weft_core::artifacts::{ArtifactRef, Artifacts, DeclaredArtifact, Digest};
use weft_core::ports::ArtifactStore;
use weft_core::run::{FailureKind, Job, Outcome};
use weft_core::spec::StepAction;

use crate::artifact_cache::ArtifactCache;

/// Where a container finds its inputs' artifacts (read-only).
pub(crate) const CONTAINER_ARTIFACTS: &str = "/weft/artifacts";
/// The directory of fetched artifacts in a scratch directory.
pub(crate) const ARTIFACTS_DIR: &str = "artifacts";

fn infrastructure(reason: String) -> Outcome {
    Outcome::Failed {
        reason,
        exit_code: None,
        retryable: true,
        kind: FailureKind::Infrastructure,
    }
}

fn refused(reason: String) -> Outcome {
    Outcome::Failed {
        reason,
        exit_code: None,
        retryable: false,
        kind: FailureKind::Other,
    }
}

/// Fetches `job`'s input artifacts into `dir` and points its references
/// (in the action, its env and `$WEFT_INPUTS`) at them.
pub(crate) async fn fetch(
    store: Option<&Arc<dyn ArtifactStore>>,
    cache: Option<&ArtifactCache>,
    job: &mut Job,
    dir: &Path,
) -> Result<(), Outcome> {
    if job.artifacts.is_empty() {
        return Ok(());
    }
    let Some(store) = store else {
        return Err(infrastructure(
            "this worker has no artifact store, and the step uses artifacts".into(),
        ));
    };
    let root = dir.join(ARTIFACTS_DIR);
    let in_container = matches!(job.action, StepAction::Container { .. });
    let mut paths: BTreeMap<(String, String), String> = BTreeMap::new();
    for input in &job.artifacts {
        let step_dir = root.join(&input.step);
        let dest = step_dir.join(&input.name);
        let fetched = std::fs::create_dir_all(&step_dir).and_then(|()| {
            [&root, &step_dir]
                .iter()
                .try_for_each(|d| std::fs::set_permissions(d, PermissionsExt::from_mode(0o755)))
        });
        let what = format!("artifact `{}` of step `{}`", input.name, input.step);
        fetched.map_err(|e| infrastructure(format!("preparing {what}: {e}")))?;
        if input.artifact.dir {
            let tar = step_dir.join(format!(".{}.tar", input.name));
            get(store.as_ref(), cache, &input.artifact, &tar)
                .await
                .map_err(|e| fetch_failed(&what, e))?;
            let unpacked = tokio::task::spawn_blocking({
                let (tar, dest) = (tar.clone(), dest.clone());
                move || unpack(&tar, &dest)
            })
            .await
            .map_err(|e| infrastructure(format!("unpacking {what}: {e}")))?;
            let _ = std::fs::remove_file(&tar);
            unpacked.map_err(|e| infrastructure(format!("unpacking {what}: {e}")))?;
        } else {
            get(store.as_ref(), cache, &input.artifact, &dest)
                .await
                .map_err(|e| fetch_failed(&what, e))?;
            std::fs::set_permissions(&dest, PermissionsExt::from_mode(0o644))
                .map_err(|e| infrastructure(format!("preparing {what}: {e}")))?;
        }
        let shown = if in_container {
            format!("{CONTAINER_ARTIFACTS}/{}/{}", input.step, input.name)
        } else {
            std::path::absolute(&dest)
                .unwrap_or(dest)
                .display()
                .to_string()
        };
        paths.insert((input.step.clone(), input.name.clone()), shown);
    }
    crate::artifact_refs::point_at(job, &paths);
    Ok(())
}

/// The artifact into `dest`: from this worker's cache when it has it,
/// else from the store (and then kept in the cache).
async fn get(
    store: &dyn ArtifactStore,
    cache: Option<&ArtifactCache>,
    artifact: &ArtifactRef,
    dest: &Path,
) -> Result<(), weft_core::Error> {
    if let Some(cache) = cache {
        if cache.copy_out(artifact, dest).await {
            return Ok(());
        }
    }
    store.get_file(artifact, dest).await?;
    if let Some(cache) = cache {
        cache.keep(artifact, dest).await;
    }
    Ok(())
}

fn fetch_failed(what: &str, e: weft_core::Error) -> Outcome {
    match e {
        // Altered or corrupted bytes: fetching again gives the same.
        weft_core::Error::Invalid(why) => refused(format!("fetching {what}: {why}")),
        e => infrastructure(format!("fetching {what}: {e}")),
    }
}

/// Stores what a succeeded attempt declared; a missing one that is not
/// optional, a path out of the scratch directory or one past `max_bytes`
/// fails the step naming it.
pub(crate) async fn collect(
    store: Option<&Arc<dyn ArtifactStore>>,
    cache: Option<&ArtifactCache>,
    job: &Job,
    base: &Path,
    scratch: &Path,
    max_bytes: u64,
) -> Result<Artifacts, Outcome> {
    let mut out = Artifacts::new();
    if job.produces.is_empty() {
        return Ok(out);
    }
    let Some(store) = store else {
        return Err(infrastructure(
            "this worker has no artifact store, and the step declares artifacts".into(),
        ));
    };
    let step = &job.task.step;
    for declared in &job.produces {
        let what = format!(
            "artifact `{}` (`{}`) of step `{step}`",
            declared.name, declared.path
        );
        // A directory's tar goes beside the scratch directory, out of the
        // step's reach.
        let tar = scratch.with_extension(format!("{}.tar", declared.name));
        let found = tokio::task::spawn_blocking({
            let (base, declared) = (base.to_path_buf(), declared.clone());
            move || prepare(&base, &declared, max_bytes, &tar)
        })
        .await
        .map_err(|e| infrastructure(format!("collecting {what}: {e}")))?;
        let prepared = match found {
            Ok(Some(p)) => p,
            Ok(None) if declared.optional => continue,
            Ok(None) => {
                return Err(refused(format!(
                    "{what} is missing: the step ended without writing it"
                )))
            }
            Err(why) => return Err(refused(format!("{what}: {why}"))),
        };
        let stored = store.put_file(&prepared.artifact, &prepared.file).await;
        if let (Ok(()), Some(cache)) = (&stored, cache) {
            // A later step here finds it without a download.
            cache.keep(&prepared.artifact, &prepared.file).await;
        }
        if let Some(tar) = prepared.temporary() {
            let _ = std::fs::remove_file(tar);
        }
        stored.map_err(|e| infrastructure(format!("storing {what}: {e}")))?;
        out.insert(declared.name.clone(), prepared.artifact);
    }
    Ok(out)
}

/// A declared artifact ready to store: the file that holds its bytes.
struct Prepared {
    artifact: ArtifactRef,
    file: PathBuf,
}

impl Prepared {
    /// The tar made for a directory, to remove once stored.
    fn temporary(&self) -> Option<&Path> {
        self.artifact.dir.then_some(self.file.as_path())
    }
}

/// Finds, checks and hashes one declared artifact, a path under `dir`;
/// `None` if it is not there. A directory is written as a tar at `tar`.
fn prepare(
    dir: &Path,
    declared: &DeclaredArtifact,
    max_bytes: u64,
    tar: &Path,
) -> Result<Option<Prepared>, String> {
    let path = dir.join(&declared.path);
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return Ok(None);
    };
    let root = dir
        .canonicalize()
        .map_err(|e| format!("the scratch directory: {e}"))?;
    let real = inside(&root, &path)?;
    if meta.file_type().is_symlink() && !real.exists() {
        return Ok(None);
    }
    let real_meta = std::fs::metadata(&real).map_err(|e| e.to_string())?;
    if real_meta.is_file() {
        if real_meta.len() > max_bytes {
            return Err(too_big(real_meta.len(), max_bytes));
        }
        let (digest, size) = hash_file(&real).map_err(|e| e.to_string())?;
        return Ok(Some(Prepared {
            artifact: ArtifactRef {
                digest,
                size,
                dir: false,
            },
            file: real,
        }));
    }
    if !real_meta.is_dir() {
        return Err("is neither a file nor a directory".into());
    }
    let written = write_tar(&root, &real, tar, max_bytes)
        .and_then(|()| hash_file(tar).map_err(|e| e.to_string()));
    match written {
        Ok((digest, size)) => Ok(Some(Prepared {
            artifact: ArtifactRef {
                digest,
                size,
                dir: true,
            },
            file: tar.to_path_buf(),
        })),
        Err(e) => {
            let _ = std::fs::remove_file(tar);
            Err(e)
        }
    }
}

fn too_big(size: u64, max: u64) -> String {
    format!(
        "is {} MiB; an artifact is at most {} MiB here (`[worker] max-artifact-bytes`)",
        size >> 20,
        max >> 20
    )
}

/// `path` with its links resolved, refused unless it is inside `root`.
fn inside(root: &Path, path: &Path) -> Result<PathBuf, String> {
    match path.canonicalize() {
        Ok(real) if real.starts_with(root) => Ok(real),
        Ok(real) => Err(format!(
            "leads out of the step's scratch directory (to {})",
            real.display()
        )),
        // A dangling link: refused unless it would point inside.
        Err(_) => match std::fs::read_link(path) {
            Ok(target)
                if target.is_absolute() || target.components().any(|c| c.as_os_str() == "..") =>
            {
                Err(format!(
                    "is a link out of the step's scratch directory (to {})",
                    target.display()
                ))
            }
            _ => Ok(path.to_path_buf()),
        },
    }
}

/// The SHA-256 and size of a file, read in pieces.
fn hash_file(path: &Path) -> std::io::Result<(Digest, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((Digest::from_bytes(&hasher.finalize().into()), size))
}

/// Writes the directory `dir` as a tar at `tar`: entries sorted, times,
/// owners and modes normalised, so the same files give the same bytes.
/// Links are followed when they stay inside `root`, refused otherwise.
fn write_tar(root: &Path, dir: &Path, tar: &Path, max_bytes: u64) -> Result<(), String> {
    let file = std::fs::File::create(tar).map_err(|e| format!("writing {}: {e}", tar.display()))?;
    let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(true);
    let mut total = 0u64;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        let mut entries: Vec<_> = std::fs::read_dir(&here)
            .map_err(|e| format!("reading {}: {e}", here.display()))?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        entries.sort();
        // Pushed in reverse, so directories are walked in order.
        let mut subdirs = Vec::new();
        for name in entries {
            let rel_path = rel.join(&name);
            let full = dir.join(&rel_path);
            let real = inside(root, &full).map_err(|e| format!("{}: {e}", rel_path.display()))?;
            let meta =
                std::fs::metadata(&real).map_err(|e| format!("{}: {e}", rel_path.display()))?;
            if meta.is_dir() {
                builder
                    .append_dir(&rel_path, &real)
                    .map_err(|e| format!("{}: {e}", rel_path.display()))?;
                subdirs.push(rel_path);
            } else if meta.is_file() {
                total += meta.len();
                if total > max_bytes {
                    return Err(too_big(total, max_bytes));
                }
                builder
                    .append_path_with_name(&real, &rel_path)
                    .map_err(|e| format!("{}: {e}", rel_path.display()))?;
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    builder
        .into_inner()
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .map_err(|e| format!("writing {}: {e}", tar.display()))
}

/// Unpacks a tar made by [`write_tar`] into `dest`, readable by all and
/// writable by none but the worker.
fn unpack(tar: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    let mut archive = tar::Archive::new(std::fs::File::open(tar)?);
    archive.set_preserve_permissions(false);
    // `unpack` refuses entries that would land outside `dest`.
    archive.unpack(dest)?;
    let mut stack = vec![dest.to_path_buf()];
    while let Some(d) = stack.pop() {
        std::fs::set_permissions(&d, PermissionsExt::from_mode(0o755))?;
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                let mode = entry.metadata()?.permissions().mode();
                let exec = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
                std::fs::set_permissions(entry.path(), PermissionsExt::from_mode(exec))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::spec::Command;

    fn declared(name: &str, path: &str) -> DeclaredArtifact {
        DeclaredArtifact {
            name: name.into(),
            path: path.into(),
            optional: false,
        }
    }

    #[test]
    fn a_directory_gives_the_same_digest_for_the_same_files() {
        let make = |order: &[&str]| {
            let dir = tempfile::tempdir().unwrap();
            let scratch = dir.path().join("1");
            std::fs::create_dir_all(scratch.join("report/sub")).unwrap();
            for name in order {
                std::fs::write(scratch.join("report").join(name), name.as_bytes()).unwrap();
            }
            std::fs::write(scratch.join("report/sub/x.csv"), "a,b\n").unwrap();
            let p = prepare(
                &scratch,
                &declared("report", "report/"),
                1 << 30,
                &dir.path().join("r.tar"),
            )
            .unwrap()
            .unwrap();
            assert!(p.artifact.dir);
            (dir, p)
        };
        let (_a, first) = make(&["a.txt", "b.txt"]);
        let (_b, second) = make(&["b.txt", "a.txt"]);
        assert_eq!(first.artifact, second.artifact);
        // And it unpacks to the same files.
        let out = tempfile::tempdir().unwrap();
        unpack(&first.file, &out.path().join("r")).unwrap();
        assert_eq!(
            std::fs::read_to_string(out.path().join("r/sub/x.csv")).unwrap(),
            "a,b\n"
        );
        assert_eq!(std::fs::read(out.path().join("r/a.txt")).unwrap(), b"a.txt");
    }

    #[test]
    fn paths_that_leave_the_scratch_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().join("1");
        std::fs::create_dir_all(scratch.join("d")).unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), scratch.join("out")).unwrap();
        std::os::unix::fs::symlink("/etc", scratch.join("d/etc")).unwrap();
        std::fs::write(scratch.join("ok"), "fine").unwrap();
        std::os::unix::fs::symlink("ok", scratch.join("link-in")).unwrap();
        let tar = dir.path().join("t.tar");

        let err = prepare(&scratch, &declared("a", "out"), 1 << 30, &tar)
            .err()
            .unwrap();
        assert!(
            err.contains("leads out of the step's scratch directory"),
            "{err}"
        );
        let err = prepare(&scratch, &declared("a", "d"), 1 << 30, &tar)
            .err()
            .unwrap();
        assert!(err.contains("etc: leads out"), "{err}");
        // A link that stays inside is its target's bytes.
        let p = prepare(&scratch, &declared("a", "link-in"), 1 << 30, &tar)
            .unwrap()
            .unwrap();
        assert_eq!(p.artifact.size, 4);
        assert!(prepare(&scratch, &declared("a", "missing"), 1 << 30, &tar)
            .unwrap()
            .is_none());
        let err = prepare(&scratch, &declared("a", "ok"), 2, &tar)
            .err()
            .unwrap();
        assert!(err.contains("at most"), "{err}");
    }

    /// A store of files in memory that counts its downloads.
    #[derive(Default)]
    struct CountingStore {
        objects: std::sync::Mutex<BTreeMap<String, Vec<u8>>>,
        gets: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl ArtifactStore for CountingStore {
        async fn put_file(&self, a: &ArtifactRef, path: &Path) -> Result<(), weft_core::Error> {
            let bytes = std::fs::read(path).unwrap();
            self.objects
                .lock()
                .unwrap()
                .insert(a.digest.to_string(), bytes);
            Ok(())
        }
        async fn get_file(&self, a: &ArtifactRef, dest: &Path) -> Result<(), weft_core::Error> {
            self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let bytes = self.objects.lock().unwrap()[a.digest.as_str()].clone();
            std::fs::write(dest, bytes).unwrap();
            Ok(())
        }
        async fn stat(&self, _: &Digest) -> Result<Option<u64>, weft_core::Error> {
            Ok(None)
        }
        async fn read_range(
            &self,
            _: &Digest,
            _: u64,
            _: u64,
        ) -> Result<Vec<u8>, weft_core::Error> {
            Ok(Vec::new())
        }
        async fn remove(&self, _: &Digest) -> Result<bool, weft_core::Error> {
            Ok(false)
        }
        async fn list(&self) -> Result<Vec<weft_core::ports::StoredArtifact>, weft_core::Error> {
            Ok(Vec::new())
        }
        async fn remove_stale_uploads(&self, _: u64) -> Result<u64, weft_core::Error> {
            Ok(0)
        }
    }

    fn job_with(produces: Vec<DeclaredArtifact>) -> Job {
        let mut job = weft_testkit::job("r", "make", "default");
        job.action = StepAction::Run {
            command: Command::Shell("x {{ steps.make.artifacts.model }}".into()),
        };
        job.inputs = serde_json::json!({});
        job.produces = produces;
        job
    }

    #[tokio::test]
    async fn a_chain_on_one_worker_downloads_nothing_it_stored() {
        let dir = tempfile::tempdir().unwrap();
        let counting = Arc::new(CountingStore::default());
        let store: Arc<dyn ArtifactStore> = counting.clone();
        let gets = || counting.gets.load(std::sync::atomic::Ordering::SeqCst);
        let cache = ArtifactCache::new(dir.path().join("cache"), 1 << 20);
        let made = dir.path().join("r/make/1");
        std::fs::create_dir_all(&made).unwrap();
        std::fs::write(made.join("model.pt"), b"weights").unwrap();
        let job = job_with(vec![declared("model", "model.pt")]);
        let stored = collect(Some(&store), Some(&cache), &job, &made, &made, 1 << 20)
            .await
            .unwrap();
        let mut next = job_with(Vec::new());
        next.artifacts = vec![weft_core::artifacts::InputArtifact {
            step: "make".into(),
            name: "model".into(),
            artifact: stored["model"].clone(),
        }];
        let scratch = dir.path().join("r/use/1");
        std::fs::create_dir_all(&scratch).unwrap();
        fetch(Some(&store), Some(&cache), &mut next, &scratch)
            .await
            .unwrap();
        let fetched = scratch.join("artifacts/make/model");
        assert_eq!(std::fs::read(&fetched).unwrap(), b"weights");
        let StepAction::Run {
            command: Command::Shell(script),
        } = &next.action
        else {
            panic!()
        };
        assert_eq!(script, &format!("x {}", fetched.display()));
        assert_eq!(gets(), 0, "fetched from the cache");
        // Without the cache, the same fetch asks the store.
        let mut again = next.clone();
        again.action = job_with(Vec::new()).action;
        let other = dir.path().join("r/use/2");
        std::fs::create_dir_all(&other).unwrap();
        fetch(Some(&store), None, &mut again, &other).await.unwrap();
        assert_eq!(
            std::fs::read(other.join("artifacts/make/model")).unwrap(),
            b"weights"
        );
        assert_eq!(gets(), 1);
    }
}
