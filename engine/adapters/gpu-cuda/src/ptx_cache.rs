//! Compiled PTX on disk, keyed by what went into it: the source, the GPU
//! architecture and the compiler options. A source compiled once is not
//! compiled again, by this process or the next.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A directory of `<sha256>.ptx` files.
#[derive(Debug, Clone)]
pub struct PtxCache {
    dir: PathBuf,
}

impl PtxCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The content hash a compilation is filed under.
    pub fn key(source: &str, arch: &str, options: &[String]) -> String {
        let mut h = Sha256::new();
        // Each part is length-prefixed, so no two lists of parts collide.
        for part in [source, arch, env!("CARGO_PKG_VERSION")]
            .into_iter()
            .chain(options.iter().map(String::as_str))
        {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    }

    /// The PTX of `source` for `arch`: from the cache (`true`), or from
    /// `compile` (`false`), then stored. A cache that cannot be written
    /// costs a compilation next time, nothing more.
    pub fn get_or_compile(
        &self,
        source: &str,
        arch: &str,
        options: &[String],
        compile: impl FnOnce() -> Result<String, String>,
    ) -> Result<(String, bool), String> {
        let path = self
            .dir
            .join(format!("{}.ptx", Self::key(source, arch, options)));
        if let Ok(ptx) = std::fs::read_to_string(&path) {
            return Ok((ptx, true));
        }
        let ptx = compile()?;
        let _ = self.store(&path, &ptx);
        Ok((ptx, false))
    }

    /// Writes through a temporary file, so a reader never sees half of one.
    fn store(&self, path: &Path, ptx: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, ptx)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_source_is_compiled_once_per_architecture_and_options() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PtxCache::new(dir.path().join("ptx"));
        let compiled = Cell::new(0);
        let compile = |text: &'static str| {
            let compiled = &compiled;
            move || {
                compiled.set(compiled.get() + 1);
                Ok(text.to_string())
            }
        };
        let src = "extern \"C\" __global__ void k() {}";
        assert_eq!(
            cache.get_or_compile(src, "compute_90", &[], compile("ptx-a")),
            Ok(("ptx-a".into(), false))
        );
        assert_eq!(
            cache.get_or_compile(src, "compute_90", &[], compile("other")),
            Ok(("ptx-a".into(), true)),
            "the second time comes from the cache"
        );
        // A new cache on the same directory (the next kernel process) hits too.
        let again = PtxCache::new(dir.path().join("ptx"));
        assert!(
            again
                .get_or_compile(src, "compute_90", &[], compile("x"))
                .unwrap()
                .1
        );
        assert_eq!(compiled.get(), 1);
        // Another architecture, other options or another source compile anew.
        assert!(
            !cache
                .get_or_compile(src, "compute_80", &[], compile("b"))
                .unwrap()
                .1
        );
        assert!(
            !cache
                .get_or_compile(src, "compute_90", &["-G".into()], compile("c"))
                .unwrap()
                .1
        );
        assert!(
            !cache
                .get_or_compile("// changed", "compute_90", &[], compile("d"))
                .unwrap()
                .1
        );
        assert_eq!(compiled.get(), 4);
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(cache.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 4);
        assert!(
            names
                .iter()
                .all(|n| n.ends_with(".ptx") && n.len() == 64 + 4),
            "{names:?}"
        );
    }

    #[test]
    fn a_failed_compilation_is_not_cached_and_an_unwritable_cache_still_compiles() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PtxCache::new(dir.path());
        let err = cache.get_or_compile("bad", "compute_90", &[], || Err("syntax error".into()));
        assert_eq!(err, Err("syntax error".into()));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let cache = PtxCache::new(&file);
        assert_eq!(
            cache.get_or_compile("k", "compute_90", &[], || Ok("ptx".into())),
            Ok(("ptx".into(), false))
        );
    }

    #[test]
    fn keys_keep_their_parts_apart() {
        let k = |s: &str, a: &str, o: &[&str]| {
            PtxCache::key(s, a, &o.iter().map(|x| x.to_string()).collect::<Vec<_>>())
        };
        assert_ne!(k("ab", "c", &[]), k("a", "bc", &[]));
        assert_ne!(k("a", "b", &["c"]), k("a", "b", &[]));
        assert_eq!(k("a", "b", &["c"]), k("a", "b", &["c"]));
    }
}
