//! The keyring: the keys secrets are sealed under, newest first. The first
//! key seals; every key opens what it sealed, so rotating is: put a new key
//! first, re-seal (`weft secret rotate`), then drop the old one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use weft_core::run::Millis;
use weft_core::secrets::{SecretScope, StoredSecret};

use crate::Error;

/// The environment variable a keyring may come from instead of a file.
pub const KEY_ENV: &str = "WEFT_SECRET_KEY";

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

struct SealingKey {
    /// A fingerprint: the first 8 hex digits of the key's SHA-256.
    id: String,
    cipher: XChaCha20Poly1305,
}

/// Keys to seal and open secrets with; the first seals.
pub struct Keyring {
    keys: Vec<SealingKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.ids())
            .finish()
    }
}

impl Keyring {
    /// Reads keys from `text`: base64 of 32 bytes each, one per line or
    /// separated by commas, the sealing key first; `#` starts a comment.
    /// `source_name` names where they came from in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, Error> {
        let mut keys = Vec::new();
        let entries = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default())
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|k| !k.is_empty());
        for (i, entry) in entries.enumerate() {
            let bad = |reason: String| Error::BadKey {
                index: i + 1,
                source_name: source_name.to_string(),
                reason,
            };
            let bytes = STANDARD
                .decode(entry)
                .map_err(|e| bad(format!("not base64 ({e})")))?;
            if bytes.len() != KEY_BYTES {
                return Err(bad(format!(
                    "{} bytes; a key is {KEY_BYTES} bytes (`weft secret keygen` makes one)",
                    bytes.len()
                )));
            }
            let id = hex(&Sha256::digest(&bytes)[..4]);
            keys.push(SealingKey {
                id,
                cipher: XChaCha20Poly1305::new(Key::from_slice(&bytes)),
            });
        }
        if keys.is_empty() {
            return Err(Error::NoKey(source_name.to_string()));
        }
        Ok(Self { keys })
    }

    /// The keyring from `$WEFT_SECRET_KEY` if set, else from `file`, else
    /// none.
    pub fn load(file: Option<&std::path::Path>) -> Result<Option<Self>, Error> {
        if let Ok(text) = std::env::var(KEY_ENV) {
            return Self::parse(&text, KEY_ENV).map(Some);
        }
        let Some(path) = file else { return Ok(None) };
        let text = std::fs::read_to_string(path).map_err(|e| Error::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string()).map(Some)
    }

    /// A new random key, as a keyring's source holds it.
    pub fn generate_key() -> Result<String, Error> {
        let mut key = [0u8; KEY_BYTES];
        getrandom::fill(&mut key).map_err(|e| Error::Random(e.to_string()))?;
        Ok(STANDARD.encode(key))
    }

    /// The fingerprints of the keys held, the sealing key first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// Seals `value` as secret `name` under the first key.
    pub fn seal(
        &self,
        name: &str,
        value: &[u8],
        scope: SecretScope,
        set_by: Option<String>,
        set_at: Millis,
    ) -> Result<StoredSecret, Error> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| Error::Random(e.to_string()))?;
        let sealed = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| Error::Tampered(name.to_string()))?;
        Ok(StoredSecret {
            name: name.to_string(),
            key_id: key.id.clone(),
            nonce: STANDARD.encode(nonce),
            sealed: STANDARD.encode(sealed),
            scope,
            set_by,
            set_at,
        })
    }

    /// The value of `secret`, opened with the key that sealed it.
    pub fn open(&self, secret: &StoredSecret) -> Result<Vec<u8>, Error> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == secret.key_id)
            .ok_or_else(|| Error::UnknownKey {
                name: secret.name.clone(),
                key_id: secret.key_id.clone(),
                held: self.ids().join(", "),
            })?;
        let tampered = || Error::Tampered(secret.name.clone());
        let nonce = STANDARD.decode(&secret.nonce).map_err(|_| tampered())?;
        let sealed = STANDARD.decode(&secret.sealed).map_err(|_| tampered())?;
        if nonce.len() != NONCE_BYTES {
            return Err(tampered());
        }
        key.cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: secret.name.as_bytes(),
                },
            )
            .map_err(|_| tampered())
    }

    /// `secret` sealed again under the first key, or `None` if it already is.
    pub fn reseal(&self, secret: &StoredSecret) -> Result<Option<StoredSecret>, Error> {
        if secret.key_id == self.keys[0].id {
            return Ok(None);
        }
        let value = self.open(secret)?;
        let mut resealed = self.seal(
            &secret.name,
            &value,
            secret.scope.clone(),
            secret.set_by.clone(),
            secret.set_at,
        )?;
        resealed.set_at = secret.set_at;
        Ok(Some(resealed))
    }
}

impl Keyring {
    /// Seals every secret of `store` that is not under the first key again
    /// under it; how many it re-sealed, of how many.
    pub async fn reseal_all(
        &self,
        store: &dyn weft_core::ports::SecretStore,
    ) -> Result<(usize, usize), Error> {
        let all = store.secrets().await.map_err(Error::Store)?;
        let mut resealed = 0;
        for secret in &all {
            if let Some(new) = self.reseal(secret)? {
                store.put_secret(&new).await.map_err(Error::Store)?;
                resealed += 1;
            }
        }
        Ok((resealed, all.len()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[&str]) -> Keyring {
        Keyring::parse(&keys.join("\n"), "test").unwrap()
    }

    #[test]
    fn a_value_seals_opens_and_is_bound_to_its_name() {
        let k = Keyring::generate_key().unwrap();
        let r = ring(&[&k]);
        let s = r
            .seal("DB", b"hunter2-db", SecretScope::default(), None, 5)
            .unwrap();
        assert!(!s.sealed.contains("hunter2"));
        assert_eq!(r.open(&s).unwrap(), b"hunter2-db");
        // The same value seals differently each time (a fresh nonce).
        let again = r
            .seal("DB", b"hunter2-db", SecretScope::default(), None, 5)
            .unwrap();
        assert_ne!(s.sealed, again.sealed);
        // Moved to another name, or altered: refused.
        let moved = StoredSecret {
            name: "OTHER".into(),
            ..s.clone()
        };
        assert!(matches!(r.open(&moved), Err(Error::Tampered(_))));
        let mut altered = s.clone();
        altered.sealed.replace_range(0..2, "AA");
        assert!(matches!(r.open(&altered), Err(Error::Tampered(_))));
    }

    #[test]
    fn keys_rotate_new_first_then_the_old_one_goes() {
        let (old, new) = (
            Keyring::generate_key().unwrap(),
            Keyring::generate_key().unwrap(),
        );
        let before = ring(&[&old]);
        let s = before
            .seal(
                "T",
                b"value-1",
                SecretScope::default(),
                Some("ann".into()),
                7,
            )
            .unwrap();
        // Both keys: the old seal opens; re-sealing moves it to the new key.
        let during = Keyring::parse(&format!("{new}, {old}"), "test").unwrap();
        assert_eq!(during.open(&s).unwrap(), b"value-1");
        let moved = during.reseal(&s).unwrap().unwrap();
        assert_eq!(moved.key_id, during.ids()[0]);
        assert_eq!((moved.set_by.as_deref(), moved.set_at), (Some("ann"), 7));
        assert!(during.reseal(&moved).unwrap().is_none());
        // The old key gone: the re-sealed value opens, the old seal names its key.
        let after = ring(&[&new]);
        assert_eq!(after.open(&moved).unwrap(), b"value-1");
        let e = after.open(&s).unwrap_err().to_string();
        assert!(e.contains(&s.key_id) && e.contains("does not hold"), "{e}");
    }

    #[test]
    fn bad_key_sources_are_named() {
        let e = Keyring::parse("# nothing\n", "keys.txt").unwrap_err();
        assert!(
            e.to_string().contains("keys.txt holds no secret key"),
            "{e}"
        );
        let e = Keyring::parse("c2hvcnQ=", "env").unwrap_err().to_string();
        assert!(e.contains("5 bytes; a key is 32 bytes"), "{e}");
        let e = Keyring::parse("not base64!", "env")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not base64"), "{e}");
        let dbg = format!("{:?}", ring(&[&Keyring::generate_key().unwrap()]));
        assert!(dbg.contains("key_ids"), "{dbg}");
    }
}
