//! `[artifacts]`: where artifacts are kept.

use std::path::PathBuf;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use serde::Deserialize;
use weft_core::Error;

/// `[artifacts]` of the configuration: `store = "local"` (the default, a
/// directory) or `store = "s3"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "store", rename_all = "kebab-case")]
pub enum ArtifactOptions {
    Local(LocalOptions),
    S3(S3Options),
}

impl Default for ArtifactOptions {
    fn default() -> Self {
        Self::Local(LocalOptions::default())
    }
}

/// A directory: every process that runs steps or serves downloads must
/// see the same one (one machine, or a shared file system).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LocalOptions {
    /// Default: `artifacts` under the data directory.
    pub dir: Option<PathBuf>,
}

/// An S3 bucket (AWS, or any S3-compatible server through `endpoint`).
/// Credentials not given here come from the environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or the
/// instance's role, as AWS tools find them.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct S3Options {
    pub bucket: String,
    /// Keys start with this (`weft/artifacts`). Default: none.
    #[serde(default)]
    pub prefix: String,
    /// Default: `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// An S3-compatible server (`http://127.0.0.1:3900`); addressed by
    /// path (`endpoint/bucket/key`). Default: AWS.
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow `http://` endpoints (a server on a private network).
    #[serde(default)]
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret key, wherever options are printed.
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

impl S3Options {
    pub(crate) fn build(&self) -> Result<AmazonS3, Error> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&self.bucket);
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if let Some(id) = &self.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(key) = &self.secret_access_key {
            builder = builder.with_secret_access_key(key);
        }
        builder
            // Not hashed again to sign each request: weft hashes every
            // byte itself, checks the digest on the way out, and the
            // transport is TLS wherever `allow-http` is off.
            .with_unsigned_payload(true)
            .with_allow_http(self.allow_http)
            .build()
            .map_err(|e| Error::Invalid(format!("`[artifacts]` (s3): {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_both_stores_and_refuse_unknown_keys() {
        let local: ArtifactOptions = toml::from_str("store = \"local\"\ndir = \"/x\"").unwrap();
        assert_eq!(
            local,
            ArtifactOptions::Local(LocalOptions {
                dir: Some("/x".into())
            })
        );
        let s3: ArtifactOptions = toml::from_str(
            "store = \"s3\"\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:3900\"\n\
             secret-access-key = \"hunter2-key\"\nallow-http = true",
        )
        .unwrap();
        let ArtifactOptions::S3(s3) = s3 else {
            panic!("not s3")
        };
        assert!(s3.allow_http);
        assert!(!format!("{s3:?}").contains("hunter2"));
        assert!(
            toml::from_str::<ArtifactOptions>("store = \"s3\"\nbucket = \"b\"\nbukcet = 1")
                .is_err()
        );
        assert!(toml::from_str::<ArtifactOptions>("store = \"ftp\"").is_err());
    }
}
