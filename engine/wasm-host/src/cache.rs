//! Compiled plugins on disk, keyed by content hash and engine, so a worker
//! that restarts does not compile again.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

use crate::Error;

pub(crate) struct DiskCache {
    dir: PathBuf,
    engine_key: String,
}

impl DiskCache {
    pub(crate) fn new(dir: &Path, engine: &Engine) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Cache {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The compiled component, if this engine compiled it before. A file
    /// that does not load is removed and compiled again.
    #[allow(unsafe_code)]
    pub(crate) fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        if !path.exists() {
            return None;
        }
        // SAFETY: only `put` writes this directory, with the output of
        // `Component::serialize` of this engine configuration (the file name
        // holds its compatibility hash), renamed into place whole; wasmtime
        // checks the header and engine settings again when loading.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => Some(c),
            Err(_) => {
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled component; a failure only costs a compile later.
    pub(crate) fn put(&self, sha256: &str, component: &Component) {
        let Ok(bytes) = component.serialize() else {
            return;
        };
        let path = self.path(sha256);
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&temp, bytes).is_ok() && std::fs::rename(&temp, &path).is_err() {
            let _ = std::fs::remove_file(&temp);
        }
    }
}
