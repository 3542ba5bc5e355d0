//! Artifacts as the rest of weft sees them: files (or directories) a step
//! declares (`artifacts = { model = "out/model.pt" }`), collected by the
//! worker when an attempt succeeds and kept by content (SHA-256) in an
//! [`ArtifactStore`](crate::ports::ArtifactStore); a downstream step names
//! one as `{{ steps.<id>.artifacts.<name> }}` and finds it, materialised by
//! its worker, at the local path that reference renders to. Like a secret,
//! the reference stays in the job as written: only the worker knows where
//! its scratch directory is.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::template::{Part, Template};

/// The most artifacts one step may declare.
pub const MAX_ARTIFACTS_PER_STEP: usize = 64;
/// The longest path of a declared artifact.
pub const MAX_ARTIFACT_PATH: usize = 1024;
/// The largest piece [`read_range`](crate::ports::ArtifactStore::read_range)
/// returns: downloads are streamed in pieces of this size.
pub const MAX_READ_BYTES: u64 = 4 << 20;

/// The field of a step's view that holds its artifacts:
/// `steps.<id>.artifacts.<name>`.
pub const ARTIFACTS_FIELD: &str = "artifacts";

/// The SHA-256 of an artifact's bytes (of its tar stream, for a directory),
/// as 64 lowercase hexadecimal digits: its name in a store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// A digest from its hexadecimal text; refused unless it is 64
    /// lowercase hexadecimal digits (so it is safe in a path or a key).
    pub fn parse(hex: &str) -> Result<Self, String> {
        if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(hex.to_string()))
        } else {
            Err(format!(
                "`{}` is not a SHA-256 digest (64 lowercase hexadecimal digits)",
                crate::run::bounded_text(hex, 80)
            ))
        }
    }

    /// A digest from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        use std::fmt::Write;
        let mut hex = String::with_capacity(64);
        for b in bytes {
            let _ = write!(hex, "{b:02x}");
        }
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, as people are shown it.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Digest {
    type Error = String;
    fn try_from(hex: String) -> Result<Self, String> {
        Self::parse(&hex)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> Self {
        d.0
    }
}

/// A stored artifact: what a succeeded attempt recorded of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    pub digest: Digest,
    /// Bytes stored (for a directory, of its tar stream).
    pub size: u64,
    /// A directory, stored as a tar stream and unpacked where it is used.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dir: bool,
}

/// An attempt's or a step's artifacts, by name.
pub type Artifacts = BTreeMap<String, ArtifactRef>;

/// An artifact a step declares: a name, the path in its scratch
/// directory, and whether it may be missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredArtifact {
    pub name: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// An artifact of an upstream step that a job uses: where it came from
/// and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputArtifact {
    pub step: String,
    pub name: String,
    #[serde(flatten)]
    pub artifact: ArtifactRef,
}

/// Why a declared path cannot be an artifact's: it must stay inside the
/// step's scratch directory.
pub fn check_artifact_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("an artifact's path is empty".into());
    }
    if path.len() > MAX_ARTIFACT_PATH {
        return Err(format!(
            "an artifact's path is at most {MAX_ARTIFACT_PATH} bytes"
        ));
    }
    if path.starts_with('/') {
        return Err(format!(
            "artifact path `{path}` is absolute: give a path inside the step's scratch directory"
        ));
    }
    if path.contains('\0') {
        return Err("an artifact's path holds a NUL byte".into());
    }
    if path.split('/').any(|part| part == "..") {
        return Err(format!(
            "artifact path `{path}` leaves the step's scratch directory (`..`)"
        ));
    }
    if path.split('/').all(|part| part.is_empty() || part == ".") {
        return Err(format!(
            "artifact path `{path}` is the scratch directory itself: name a file or a directory in it"
        ));
    }
    Ok(())
}

/// The reference a step writes for an upstream artifact; a job carries it
/// as written until its worker fills in the local path.
pub fn artifact_placeholder(step: &str, name: &str) -> String {
    format!("{{{{ steps.{step}.{ARTIFACTS_FIELD}.{name} }}}}")
}

/// The `(step, name)` of each artifact `text` refers to.
pub fn artifact_refs(text: &str) -> impl Iterator<Item = (String, String)> {
    let parts = Template::parse(text).map(|t| t.parts).unwrap_or_default();
    parts.into_iter().filter_map(|p| match p {
        Part::Ref(path, _)
            if path.root() == "steps"
                && path.0.len() == 4
                && path.key(2) == Some(ARTIFACTS_FIELD) =>
        {
            Some((path.key(1)?.to_string(), path.key(3)?.to_string()))
        }
        _ => None,
    })
}

/// Replaces each `{{ steps.S.artifacts.N }}` of `text` that `path` knows
/// with what it gives, leaving every other character as it is. Only the
/// artifacts a job carries are known, so a parameter that renders to a
/// reference reaches no other.
pub fn fill_artifacts(text: &str, path: impl Fn(&str, &str) -> Option<String>) -> String {
    crate::template::fill_references(text, |inner| {
        let mut parts = inner.split('.');
        let (root, step, field, name) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if root != "steps" || field != ARTIFACTS_FIELD || parts.next().is_some() {
            return None;
        }
        path(step, name)
    })
}

/// Where a kernel step leaves output buffer `name`, in its scratch directory.
pub fn kernel_buffer_path(name: &str, dtype: crate::kernel::DType) -> String {
    format!("buffers/{name}.{}", dtype.name())
}

/// The artifacts a `cuda` step leaves: each output buffer, as raw
/// little-endian elements, named after the buffer.
pub fn kernel_artifacts<F: crate::templated::Form>(
    spec: &crate::kernel::KernelSpec<F>,
) -> Vec<DeclaredArtifact> {
    spec.args
        .iter()
        .filter_map(|a| match a {
            crate::kernel::KernelArg::Buffer(b) if b.output => Some(DeclaredArtifact {
                name: b.name.clone(),
                path: kernel_buffer_path(&b.name, b.dtype),
                optional: false,
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_64_lowercase_hex_digits() {
        let hex = "ab".repeat(32);
        assert_eq!(Digest::parse(&hex).unwrap().as_str(), hex);
        assert_eq!(Digest::from_bytes(&[0xab; 32]).as_str(), hex);
        assert!(Digest::parse(&"AB".repeat(32)).is_err());
        assert!(Digest::parse("../../etc/passwd").is_err());
        assert!(Digest::parse(&"a".repeat(63)).is_err());
        let json = serde_json::to_string(&Digest::parse(&hex).unwrap()).unwrap();
        assert!(serde_json::from_str::<Digest>(&json).is_ok());
        assert!(serde_json::from_str::<Digest>("\"x\"").is_err());
    }

    #[test]
    fn a_path_must_stay_in_the_scratch_directory() {
        for good in ["out/model.pt", "report/", "./a", "a/./b", "a..b"] {
            assert!(check_artifact_path(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            ".",
            "./",
            "a\0b",
        ] {
            assert!(check_artifact_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn references_are_found_and_filled_and_nothing_else_is() {
        let text = "cp {{ steps.train.artifacts.model }} {{ steps.train.outputs.x }} \
                    {{steps.a.artifacts.b}} {{ secrets.K }}";
        let refs: Vec<_> = artifact_refs(text).collect();
        assert_eq!(
            refs,
            vec![
                ("train".to_string(), "model".to_string()),
                ("a".to_string(), "b".to_string())
            ]
        );
        let filled = fill_artifacts(text, |s, n| {
            (s == "train" && n == "model").then(|| "/w/in/train/model".to_string())
        });
        assert_eq!(
            filled,
            "cp /w/in/train/model {{ steps.train.outputs.x }} \
             {{steps.a.artifacts.b}} {{ secrets.K }}"
        );
        assert_eq!(
            artifact_placeholder("train", "model"),
            "{{ steps.train.artifacts.model }}"
        );
    }
}
