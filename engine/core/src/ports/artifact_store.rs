//! Where artifacts are kept: whole files by their SHA-256, written from and
//! read into files on the caller's disk so no adapter holds one in memory.

use std::path::Path;

use async_trait::async_trait;

use crate::artifacts::{ArtifactRef, Digest};
use crate::Error;

/// The artifact store port.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Stores the file at `path` as `artifact` (its digest and size, as the
    /// caller computed them).
    ///
    /// # Contract
    /// Streams the file (memory bounded whatever its size). The object is
    /// visible under its digest only once whole: a reader never sees part
    /// of one. A file whose bytes do not have `artifact.digest` and
    /// `artifact.size` is refused with [`Error::Invalid`] and nothing is
    /// stored. Storing a digest already there succeeds (contents are the
    /// same by construction).
    async fn put_file(&self, artifact: &ArtifactRef, path: &Path) -> Result<(), Error>;

    /// Writes the object `artifact` names to the file `dest` (replacing
    /// it), streaming.
    ///
    /// # Contract
    /// `dest` appears only when whole and checked: bytes whose digest or
    /// size differs from `artifact`'s fail with [`Error::Invalid`] naming
    /// the digest, and leave no `dest`. A missing object is
    /// [`Error::NotFound`].
    async fn get_file(&self, artifact: &ArtifactRef, dest: &Path) -> Result<(), Error>;

    /// The size of the object `digest` names, if it is stored.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>, Error>;

    /// At most `len` bytes (and at most
    /// [`MAX_READ_BYTES`](crate::artifacts::MAX_READ_BYTES)) of the object
    /// from `offset`: fewer only at its end, none past it.
    async fn read_range(&self, digest: &Digest, offset: u64, len: u64) -> Result<Vec<u8>, Error>;

    /// Removes the object; false if it was not stored.
    async fn remove(&self, digest: &Digest) -> Result<bool, Error>;

    /// Every object stored whole (never one being written), with its size
    /// and when it was stored: what retention sweeps.
    async fn list(&self) -> Result<Vec<StoredArtifact>, Error>;

    /// Removes what uploads that never finished left (a process killed
    /// mid-upload) last written before `before`; how many pieces. A store
    /// whose server cleans them up itself removes none.
    async fn remove_stale_uploads(&self, before: crate::run::Millis) -> Result<u64, Error>;
}

/// An object as [`ArtifactStore::list`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    pub digest: Digest,
    pub size: u64,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub stored_at: crate::run::Millis,
}
