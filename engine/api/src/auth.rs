//! Bearer tokens with roles. A token reads `weft_<id>_<secret>`: the id
//! finds the record, the secret's SHA-256 is compared in constant time.
//! Secrets are never stored.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use weft_core::ports::{Role, TokenRecord, TokenStore};

use crate::{ApiState, Error};

/// Who is calling, once their token checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    /// `None` when the server runs without auth.
    pub token_id: Option<String>,
    /// The token's name, recorded as who submitted a run.
    pub name: Option<String>,
}

impl Caller {
    /// Refuses the call unless the caller's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), Error> {
        if self.role >= role {
            Ok(())
        } else {
            Err(Error::new(
                StatusCode::FORBIDDEN,
                format!(
                    "this needs the {} role; the token has {}",
                    role.as_str(),
                    self.role.as_str()
                ),
            ))
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn random_hex(n: usize) -> Result<String, Error> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("no randomness for a token: {e}"),
        )
    })?;
    Ok(hex(&bytes))
}

/// A new token: the string to hand out (once) and the record to store.
pub fn mint(name: &str, role: Role, now: u64) -> Result<(String, TokenRecord), Error> {
    let (id, secret) = (random_hex(6)?, random_hex(32)?);
    let record = TokenRecord {
        id: id.clone(),
        name: name.to_string(),
        role,
        secret_hash: hash(&secret),
        created_at: now,
    };
    Ok((format!("weft_{id}_{secret}"), record))
}

/// On a server's first start (no tokens yet), creates an admin token and
/// returns it so it can be printed once.
pub async fn first_admin_token(
    tokens: &dyn TokenStore,
    now: u64,
) -> Result<Option<String>, weft_core::Error> {
    if !tokens.tokens().await?.is_empty() {
        return Ok(None);
    }
    let (token, record) = mint("first admin", Role::Admin, now)
        .map_err(|e| weft_core::Error::Invalid(e.to_string()))?;
    tokens.add_token(&record).await?;
    Ok(Some(token))
}

async fn check(tokens: &Arc<dyn TokenStore>, header: Option<&str>) -> Result<Caller, Error> {
    let unauthorized = |why: &str| {
        Error::new(
            StatusCode::UNAUTHORIZED,
            format!("{why}: send `Authorization: Bearer weft_...` (see `weft token create`)"),
        )
    };
    let bearer = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("no token"))?;
    let (id, secret) = bearer
        .strip_prefix("weft_")
        .and_then(|t| t.split_once('_'))
        .ok_or_else(|| unauthorized("malformed token"))?;
    let record = tokens
        .token(id)
        .await?
        .ok_or_else(|| unauthorized("unknown or revoked token"))?;
    if !bool::from(hash(secret).as_bytes().ct_eq(record.secret_hash.as_bytes())) {
        return Err(unauthorized("unknown or revoked token"));
    }
    Ok(Caller {
        role: record.role,
        token_id: Some(record.id),
        name: Some(record.name),
    })
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        match &state.tokens {
            None => Ok(Caller {
                role: Role::Admin,
                token_id: None,
                name: None,
            }),
            Some(tokens) => {
                let client = parts
                    .extensions
                    .get::<crate::throttle::ClientAddr>()
                    .map(|c| c.0);
                if let Some(wait) = client.and_then(|ip| state.auth_throttle.wait(ip)) {
                    return Err(Error::throttled(wait));
                }
                let checked = check(
                    tokens,
                    parts
                        .headers
                        .get(axum::http::header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok()),
                )
                .await;
                if let (Err(Error::Api { status: 401, .. }), Some(ip)) = (&checked, client) {
                    state.auth_throttle.failed(ip);
                }
                checked
            }
        }
    }
}
