//! Where secrets are kept: sealed values by name, at most
//! [`MAX_SECRETS`](crate::secrets::MAX_SECRETS) of them. A store never sees
//! a value in clear; the keyring (`weft-secrets`) seals and opens them.

use async_trait::async_trait;

use crate::secrets::StoredSecret;
use crate::Error;

/// The secret store port.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Stores `secret` under its name, replacing one of that name.
    ///
    /// # Contract
    /// A new name past [`MAX_SECRETS`](crate::secrets::MAX_SECRETS) is
    /// refused with [`Error::Invalid`]; replacing an existing one is not.
    async fn put_secret(&self, secret: &StoredSecret) -> Result<(), Error>;

    /// The secret called `name`, if it is set.
    async fn secret(&self, name: &str) -> Result<Option<StoredSecret>, Error>;

    /// Every secret, by name.
    async fn secrets(&self) -> Result<Vec<StoredSecret>, Error>;

    /// Removes `name`; false if it was not set.
    async fn remove_secret(&self, name: &str) -> Result<bool, Error>;
}
