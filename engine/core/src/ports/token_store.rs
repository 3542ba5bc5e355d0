//! API tokens: who may call the server, and with which role.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::run::Millis;
use crate::Error;

/// What a token may do. Each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Reads runs, logs and workers.
    Viewer,
    /// Also submits and cancels runs.
    Operator,
    /// Also manages tokens (and, later, plugins).
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A stored token. The secret itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public part of the token, also its key.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the secret part.
    pub secret_hash: String,
    pub created_at: Millis,
}

/// The token store port.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new token. `Conflict` if the id exists.
    async fn add_token(&self, token: &TokenRecord) -> Result<(), Error>;

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, Error>;

    /// Every token, by id.
    async fn tokens(&self) -> Result<Vec<TokenRecord>, Error>;

    /// Removes a token; `NotFound` if there is none.
    async fn revoke_token(&self, id: &str) -> Result<(), Error>;
}
