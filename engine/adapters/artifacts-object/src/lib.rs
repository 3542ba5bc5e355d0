//! weft's artifact store over `object_store`: a directory on this machine
//! (the embedded default, or a shared file system) or an S3 bucket (AWS,
//! MinIO, Garage, GCS's S3 interface). Objects live at
//! `<prefix>/sha256/<first two digits>/<digest>`; an upload is one request
//! up to [`SINGLE_PUT_BYTES`], else a multipart upload of
//! [`PART_BYTES`] parts, a few in flight, so memory stays bounded whatever
//! the size; both become visible only when complete. Every byte is hashed
//! on the way in and on the way out.

mod options;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_core::artifacts::{ArtifactRef, Digest, MAX_READ_BYTES};
use weft_core::ports::ArtifactStore;
use weft_core::Error;

pub use options::{ArtifactOptions, LocalOptions, S3Options};

/// Files up to this size go up in one request.
pub const SINGLE_PUT_BYTES: u64 = 8 << 20;
/// The size of each part of a multipart upload (S3's least is 5 MiB).
pub const PART_BYTES: usize = 8 << 20;
/// Parts uploading at once.
const PARTS_IN_FLIGHT: usize = 3;
/// What is read from a file at a time.
const READ_BYTES: usize = 1 << 20;

/// An [`ArtifactStore`] on an object store.
#[derive(Clone)]
pub struct ObjectArtifactStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// What it is, for messages: `directory /x`, `s3://bucket/prefix`.
    what: String,
    /// The directory of a local store: where a killed upload leaves its
    /// staging file (`<digest>#<n>`).
    local_dir: Option<PathBuf>,
}

impl std::fmt::Debug for ObjectArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.what)
    }
}

impl ObjectArtifactStore {
    /// Artifacts in the directory `dir` (made if missing).
    pub fn local(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::backend(format!("artifact directory {}", dir.display()), e))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| Error::backend(format!("artifact directory {}", dir.display()), e))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: String::new(),
            what: format!("directory {}", dir.display()),
            local_dir: Some(dir.to_path_buf()),
        })
    }

    /// Artifacts in memory, for tests.
    pub fn in_memory() -> Self {
        Self {
            store: Arc::new(InMemory::new()),
            prefix: String::new(),
            what: "memory".into(),
            local_dir: None,
        }
    }

    /// Artifacts in an S3 bucket.
    pub fn s3(options: &S3Options) -> Result<Self, Error> {
        let store = options.build()?;
        Ok(Self {
            store: Arc::new(store),
            prefix: options.prefix.trim_matches('/').to_string(),
            what: format!(
                "s3://{}/{}",
                options.bucket,
                options.prefix.trim_matches('/')
            ),
            // S3 keeps an unfinished multipart upload's parts until it is
            // aborted: a bucket lifecycle rule does that (operations.md).
            local_dir: None,
        })
    }

    /// The store `options` name; `default_dir` when they name none.
    pub fn open(options: &ArtifactOptions, default_dir: &Path) -> Result<Self, Error> {
        match options {
            ArtifactOptions::Local(local) => {
                Self::local(local.dir.as_deref().unwrap_or(default_dir))
            }
            ArtifactOptions::S3(s3) => Self::s3(s3),
        }
    }

    fn key(&self, digest: &Digest) -> Key {
        let hex = digest.as_str();
        let rel = format!("sha256/{}/{hex}", &hex[..2]);
        if self.prefix.is_empty() {
            Key::from(rel)
        } else {
            Key::from(format!("{}/{rel}", self.prefix))
        }
    }

    fn failed(&self, doing: &str, digest: &Digest, e: object_store::Error) -> Error {
        match e {
            object_store::Error::NotFound { .. } => Error::NotFound(format!(
                "artifact {} is not in {}",
                digest.short(),
                self.what
            )),
            e => Error::backend(
                format!("{doing} artifact {} in {}", digest.short(), self.what),
                e,
            ),
        }
    }

    async fn head(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        match self.store.head(&self.key(digest)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed("looking up", digest, e)),
        }
    }
}

/// Removes the staging files (`<name>#<n>`) a local upload writes before
/// it renames the whole file into place, last written before `before`.
fn remove_staging_files(dir: &Path, before: u64) -> std::io::Result<u64> {
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let meta = entry.metadata()?;
        if meta.is_dir() {
            removed += remove_staging_files(&path, before)?;
            continue;
        }
        let staging = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit_once('#'))
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let written = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if staging && written < before {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Why a file's bytes are not the artifact they claim to be.
fn mismatch(artifact: &ArtifactRef, digest: &Digest, size: u64) -> Option<String> {
    if size != artifact.size {
        Some(format!(
            "artifact {}: {size} bytes where {} were expected",
            artifact.digest.short(),
            artifact.size
        ))
    } else if *digest != artifact.digest {
        Some(format!(
            "artifact {}: the bytes have digest {} (corrupted or altered)",
            artifact.digest.short(),
            digest.short()
        ))
    } else {
        None
    }
}

fn finish(hasher: Sha256) -> Digest {
    Digest::from_bytes(&hasher.finalize().into())
}

/// A path beside `dest` for a download in progress.
fn partial(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    dest.with_file_name(format!(".{name}.part-{}-{nanos}", std::process::id()))
}

#[async_trait]
impl ArtifactStore for ObjectArtifactStore {
    async fn put_file(&self, artifact: &ArtifactRef, path: &Path) -> Result<(), Error> {
        let io = |e: std::io::Error| Error::backend(format!("reading {}", path.display()), e);
        if self.head(&artifact.digest).await? == Some(artifact.size) {
            // Content-addressed: what is there is these bytes.
            return Ok(());
        }
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let key = self.key(&artifact.digest);
        let mut hasher = Sha256::new();
        if artifact.size <= SINGLE_PUT_BYTES {
            let mut bytes = Vec::with_capacity(artifact.size as usize);
            // One more byte than claimed at most: a longer file is refused.
            (&mut file)
                .take(SINGLE_PUT_BYTES + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(io)?;
            hasher.update(&bytes);
            if let Some(why) = mismatch(artifact, &finish(hasher), bytes.len() as u64) {
                return Err(Error::Invalid(why));
            }
            self.store
                .put(&key, PutPayload::from(bytes))
                .await
                .map_err(|e| self.failed("storing", &artifact.digest, e))?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(|e| self.failed("storing", &artifact.digest, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buf = vec![0u8; READ_BYTES];
        let mut size = 0u64;
        let read = loop {
            let n = match file.read(&mut buf).await {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(io(e)),
            };
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                break Err(self.failed("storing", &artifact.digest, e));
            }
            hasher.update(&buf[..n]);
            writer.write(&buf[..n]);
            size += n as u64;
        };
        let checked = read.and_then(|()| match mismatch(artifact, &finish(hasher), size) {
            Some(why) => Err(Error::Invalid(why)),
            None => Ok(()),
        });
        match checked {
            Ok(()) => writer
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| self.failed("storing", &artifact.digest, e)),
            Err(e) => {
                // Never completed, so never visible; the parts are dropped.
                if let Err(abort) = writer.abort().await {
                    tracing::debug!("aborting an upload: {abort}");
                }
                Err(e)
            }
        }
    }

    async fn get_file(&self, artifact: &ArtifactRef, dest: &Path) -> Result<(), Error> {
        let got = self
            .store
            .get(&self.key(&artifact.digest))
            .await
            .map_err(|e| self.failed("fetching", &artifact.digest, e))?;
        let temp = partial(dest);
        let io = |e: std::io::Error| Error::backend(format!("writing {}", temp.display()), e);
        let written = async {
            let mut file = tokio::fs::File::create(&temp).await.map_err(io)?;
            let mut stream = got.into_stream();
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.failed("fetching", &artifact.digest, e))?;
                size += chunk.len() as u64;
                if size > artifact.size {
                    break;
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(io)?;
            }
            file.flush().await.map_err(io)?;
            if let Some(why) = mismatch(artifact, &finish(hasher), size) {
                return Err(Error::Invalid(why));
            }
            tokio::fs::rename(&temp, dest).await.map_err(io)
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        written
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        self.head(digest).await
    }

    async fn read_range(&self, digest: &Digest, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let Some(size) = self.head(digest).await? else {
            return Err(Error::NotFound(format!(
                "artifact {} is not in {}",
                digest.short(),
                self.what
            )));
        };
        if offset >= size || len == 0 {
            return Ok(Vec::new());
        }
        let end = size.min(offset.saturating_add(len.min(MAX_READ_BYTES)));
        let bytes = self
            .store
            .get_range(&self.key(digest), offset..end)
            .await
            .map_err(|e| self.failed("reading", digest, e))?;
        Ok(bytes.to_vec())
    }

    async fn list(&self) -> Result<Vec<weft_core::ports::StoredArtifact>, Error> {
        let root = if self.prefix.is_empty() {
            Key::from("sha256")
        } else {
            Key::from(format!("{}/sha256", self.prefix))
        };
        let mut listing = self.store.list(Some(&root));
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| Error::backend("listing artifacts", e))?;
            // Only objects named as this store names them.
            let Some(digest) = meta
                .location
                .filename()
                .and_then(|name| Digest::parse(name).ok())
            else {
                continue;
            };
            found.push(weft_core::ports::StoredArtifact {
                digest,
                size: meta.size,
                stored_at: meta.last_modified.timestamp_millis().max(0) as u64,
            });
        }
        Ok(found)
    }

    async fn remove_stale_uploads(&self, before: u64) -> Result<u64, Error> {
        let Some(dir) = self.local_dir.clone() else {
            return Ok(0);
        };
        tokio::task::spawn_blocking(move || remove_staging_files(&dir.join("sha256"), before))
            .await
            .map_err(|e| Error::backend("removing stale uploads", e))?
            .map_err(|e| Error::backend("removing stale uploads", e))
    }

    async fn remove(&self, digest: &Digest) -> Result<bool, Error> {
        if self.head(digest).await?.is_none() {
            return Ok(false);
        }
        match self.store.delete(&self.key(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
            Err(e) => Err(self.failed("removing", digest, e)),
        }
    }
}
