//! `TokenStore` on Redis: one hash field per token.

use async_trait::async_trait;
use redis::AsyncCommands;
use weft_core::ports::{TokenRecord, TokenStore};
use weft_core::Error;

use crate::store::{decode, encode, redis_err};
use crate::RedisRunStore;

#[async_trait]
impl TokenStore for RedisRunStore {
    async fn add_token(&self, token: &TokenRecord) -> Result<(), Error> {
        let added: bool = self
            .conn()
            .hset_nx(self.key(&["tokens"]), &token.id, encode(token)?)
            .await
            .map_err(redis_err("adding a token"))?;
        if added {
            self.expire_key(&self.key(&["tokens"])).await
        } else {
            Err(Error::Conflict(format!("token {} exists", token.id)))
        }
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, Error> {
        // Read on every request: a slow Redis must not fail it.
        let key = self.key(&["tokens"]);
        let raw: Option<String> =
            crate::retry::retrying(self.retry_for(), "reading a token", || {
                let (mut conn, key) = (self.conn(), key.clone());
                async move { conn.hget(key, id).await }
            })
            .await?;
        raw.map(|r| decode(&r)).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, Error> {
        let all: Vec<(String, String)> = self
            .conn()
            .hgetall(self.key(&["tokens"]))
            .await
            .map_err(redis_err("listing tokens"))?;
        let mut tokens = all
            .iter()
            .map(|(_, v)| decode::<TokenRecord>(v))
            .collect::<Result<Vec<_>, _>>()?;
        tokens.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(tokens)
    }

    async fn revoke_token(&self, id: &str) -> Result<(), Error> {
        let removed: i64 = self
            .conn()
            .hdel(self.key(&["tokens"]), id)
            .await
            .map_err(redis_err("revoking a token"))?;
        if removed == 0 {
            return Err(Error::NotFound(format!("token {id}")));
        }
        Ok(())
    }
}
