//! The worker's cache of artifacts by digest: what it stored or fetched
//! lately stays on its disk (up to `[worker] artifact-cache-bytes`, least
//! recently used out first), so a chain of steps on one worker does not
//! download what it just uploaded. A cached copy is hashed as it is copied
//! out; one that does not match is dropped and the store asked instead.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use weft_core::artifacts::{ArtifactRef, Digest};

#[derive(Debug)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    max_bytes: u64,
    /// One change at a time: keeping and evicting list the directory.
    lock: tokio::sync::Mutex<()>,
}

impl ArtifactCache {
    /// A cache in `dir` (made, the worker's alone, when first used) of at
    /// most `max_bytes`.
    pub(crate) fn new(dir: PathBuf, max_bytes: u64) -> Self {
        Self {
            dir,
            max_bytes,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.as_str())
    }

    /// Copies the cached `artifact` to `dest`, checked; false when it is
    /// not cached (or the copy was not right, and is gone now).
    pub(crate) async fn copy_out(&self, artifact: &ArtifactRef, dest: &Path) -> bool {
        let _held = self.lock.lock().await;
        let cached = self.path(&artifact.digest);
        let (artifact, dest) = (artifact.clone(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || {
            if !cached.exists() {
                return false;
            }
            match copy_checked(&cached, &dest, &artifact) {
                Ok(true) => {
                    // Used now: the last to go.
                    let _ = std::fs::File::options()
                        .append(true)
                        .open(&cached)
                        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                    true
                }
                _ => {
                    let _ = std::fs::remove_file(&cached);
                    let _ = std::fs::remove_file(&dest);
                    false
                }
            }
        })
        .await
        .unwrap_or(false)
    }

    /// Keeps a copy of `src` (whose bytes are `artifact`), then makes room.
    pub(crate) async fn keep(&self, artifact: &ArtifactRef, src: &Path) {
        if artifact.size > self.max_bytes {
            return;
        }
        let _held = self.lock.lock().await;
        let (dir, max) = (self.dir.clone(), self.max_bytes);
        let (cached, src) = (self.path(&artifact.digest), src.to_path_buf());
        let kept = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o700))?;
            if !cached.exists() {
                let temp = dir.join(format!(".{}.part", std::process::id()));
                std::fs::copy(&src, &temp)?;
                std::fs::rename(&temp, &cached)?;
            }
            evict(&dir, max)
        })
        .await;
        if let Ok(Err(e)) = kept {
            tracing::debug!("keeping an artifact in the cache: {e}");
        }
    }
}

/// Copies `from` to `to` while hashing; true when the bytes are `artifact`.
fn copy_checked(from: &Path, to: &Path, artifact: &ArtifactRef) -> std::io::Result<bool> {
    let mut input = std::fs::File::open(from)?;
    let mut output = std::fs::File::create(to)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n])?;
        size += n as u64;
    }
    output.flush()?;
    Ok(size == artifact.size && Digest::from_bytes(&hasher.finalize().into()) == artifact.digest)
}

/// Removes the least recently used entries until the rest fit in `max`.
fn evict(dir: &Path, max: u64) -> std::io::Result<()> {
    let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = entries.iter().map(|e| e.1).sum();
    entries.sort();
    for (_, size, path) in entries {
        if total <= max {
            break;
        }
        std::fs::remove_file(&path)?;
        total -= size;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(bytes: &[u8]) -> ArtifactRef {
        ArtifactRef {
            digest: Digest::from_bytes(&Sha256::digest(bytes).into()),
            size: bytes.len() as u64,
            dir: false,
        }
    }

    #[tokio::test]
    async fn kept_artifacts_come_back_checked_and_the_oldest_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::new(dir.path().join("cache"), 25);
        let (a, b, c) = (b"aaaaaaaaaa", b"bbbbbbbbbb", b"cccccccccc");
        for (name, bytes) in [("a", a), ("b", b), ("c", c)] {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        cache.keep(&artifact(a), &dir.path().join("a")).await;
        cache.keep(&artifact(b), &dir.path().join("b")).await;
        let out = dir.path().join("out");
        // `a` used last, so `b` goes when `c` comes (30 bytes > 25).
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(cache.copy_out(&artifact(a), &out).await);
        assert_eq!(std::fs::read(&out).unwrap(), a);
        cache.keep(&artifact(c), &dir.path().join("c")).await;
        assert!(!cache.copy_out(&artifact(b), &out).await);
        assert!(cache.copy_out(&artifact(a), &out).await);
        assert!(cache.copy_out(&artifact(c), &out).await);
        // A cached copy that was altered is dropped, not handed out.
        std::fs::write(cache.path(&artifact(c).digest), b"xxxxxxxxxx").unwrap();
        assert!(!cache.copy_out(&artifact(c), &out).await);
        assert!(!cache.path(&artifact(c).digest).exists());
    }
}
