//! `SecretStore` on Redis: one hash field per secret, its value sealed
//! (the store never sees it in clear). A new name is added by a script
//! that counts first, so two servers cannot both pass the bound.

use async_trait::async_trait;
use redis::AsyncCommands;
use weft_core::ports::SecretStore;
use weft_core::secrets::{StoredSecret, MAX_SECRETS};
use weft_core::Error;

use crate::store::{decode, encode, redis_err};
use crate::RedisRunStore;

/// Sets field ARGV[1] to ARGV[2] unless it is new and the hash holds ARGV[3] already.
const PUT_BOUNDED: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#;

#[async_trait]
impl SecretStore for RedisRunStore {
    async fn put_secret(&self, secret: &StoredSecret) -> Result<(), Error> {
        let key = self.key(&["secrets"]);
        let stored: i64 = redis::Script::new(PUT_BOUNDED)
            .key(&key)
            .arg(&secret.name)
            .arg(encode(secret)?)
            .arg(MAX_SECRETS)
            .invoke_async(&mut self.conn())
            .await
            .map_err(redis_err("storing a secret"))?;
        if stored == 0 {
            return Err(Error::Invalid(format!(
                "{MAX_SECRETS} secrets are set already: remove one first"
            )));
        }
        self.expire_key(&key).await
    }

    async fn secret(&self, name: &str) -> Result<Option<StoredSecret>, Error> {
        let key = self.key(&["secrets"]);
        let raw: Option<String> =
            crate::retry::retrying(self.retry_for(), "reading a secret", || {
                let (mut conn, key) = (self.conn(), key.clone());
                async move { conn.hget(key, name).await }
            })
            .await?;
        raw.map(|r| decode(&r)).transpose()
    }

    async fn secrets(&self) -> Result<Vec<StoredSecret>, Error> {
        let all: Vec<(String, String)> = self
            .conn()
            .hgetall(self.key(&["secrets"]))
            .await
            .map_err(redis_err("listing secrets"))?;
        let mut secrets = all
            .iter()
            .map(|(_, v)| decode::<StoredSecret>(v))
            .collect::<Result<Vec<_>, _>>()?;
        secrets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(secrets)
    }

    async fn remove_secret(&self, name: &str) -> Result<bool, Error> {
        let removed: i64 = self
            .conn()
            .hdel(self.key(&["secrets"]), name)
            .await
            .map_err(redis_err("removing a secret"))?;
        Ok(removed > 0)
    }
}
