//! `read-artifact`: what a plugin may read of a step's artifacts, without a
//! file system. The worker says which artifacts a call may see and how to
//! read them (an [`ArtifactReader`]); the host bounds every read.

use std::sync::Arc;

/// Most bytes one `read-artifact` call returns.
pub const MAX_ARTIFACT_READ_BYTES: u64 = 1 << 20;

/// Reads the artifacts a plugin call may see, by name.
pub trait ArtifactReader: Send + Sync {
    /// At most `length` bytes of artifact `name` from `offset` (fewer only
    /// at its end); an error in words for the plugin.
    fn read(&self, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, String>;
}

/// The artifacts of a call: none unless the caller gives a reader.
#[derive(Clone, Default)]
pub struct CallArtifacts(pub Option<Arc<dyn ArtifactReader>>);

impl std::fmt::Debug for CallArtifacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "CallArtifacts(readable)"
        } else {
            "CallArtifacts(none)"
        })
    }
}

impl PartialEq for CallArtifacts {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl CallArtifacts {
    /// One bounded read for a plugin.
    pub(crate) fn read(&self, name: &str, offset: u64, length: u32) -> Result<Vec<u8>, String> {
        let Some(reader) = &self.0 else {
            return Err("no artifacts can be read here (this call has none)".into());
        };
        let wanted = u64::from(length).min(MAX_ARTIFACT_READ_BYTES);
        let mut bytes = reader.read(name, offset, wanted)?;
        // Whatever the reader did, never more than asked.
        bytes.truncate(wanted as usize);
        Ok(bytes)
    }
}
