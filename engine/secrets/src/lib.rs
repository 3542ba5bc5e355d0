//! Secrets at rest and in output: a [`Keyring`] seals each value with
//! XChaCha20-Poly1305 (bound to its name, so a sealed value cannot be moved
//! to another name) under the newest key and opens it under any key it
//! holds, so keys rotate without downtime; a [`Masker`] replaces a step's
//! secrets, and their base64 and URL-encoded forms, in what the step
//! leaves behind (logs, outputs, failure reasons, hook payloads).

mod keyring;
mod masker;

pub use keyring::{Keyring, KEY_ENV};
pub use masker::{Masker, MASK};

/// What can go wrong sealing or opening a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key in the keyring's source is not a key.
    #[error("secret key {index} of {source_name}: {reason}")]
    BadKey {
        index: usize,
        source_name: String,
        reason: String,
    },
    /// The keyring's source holds no key.
    #[error("{0} holds no secret key: write one per line, as `weft secret keygen` prints them")]
    NoKey(String),
    /// Reading the key file failed.
    #[error("reading the secret key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    /// The secret was sealed under a key this keyring does not hold.
    #[error("secret `{name}` was sealed under key {key_id}, which this keyring does not hold (keys held: {held}); add that key to the keyring")]
    UnknownKey {
        name: String,
        key_id: String,
        held: String,
    },
    /// The sealed bytes do not open: changed, or bound to another name.
    #[error("secret `{0}` does not open: its stored value was altered or belongs to another name")]
    Tampered(String),
    /// The secret store failed.
    #[error("{0}")]
    Store(weft_core::Error),
    /// The system's random source failed.
    #[error("drawing a nonce: {0}")]
    Random(String),
}
