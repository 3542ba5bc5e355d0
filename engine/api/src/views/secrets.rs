//! The views of secrets: what setting one sends, and what listing them
//! shows (never a value).

use serde::{Deserialize, Serialize};

/// `PUT /api/secrets/{name}` body: the value (never shown again) and who
/// may use it.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    pub value: String,
    #[serde(default)]
    pub scope: Option<SecretScopeView>,
}

impl std::fmt::Debug for SetSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetSecret")
            .field("value", &"***")
            .field("scope", &self.scope)
            .finish()
    }
}

/// Which runs may use a secret: workflow names (exact, or a prefix ending
/// in `*`) and pools; empty lists allow any.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretScopeView {
    #[serde(default)]
    pub workflows: Vec<String>,
    #[serde(default)]
    pub pools: Vec<String>,
}

/// A secret as the API lists it: never its value.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretView {
    pub name: String,
    pub scope: SecretScopeView,
    pub set_by: Option<String>,
    pub set_at: u64,
    /// The fingerprint of the key that sealed it.
    pub key_id: String,
}

impl From<weft_core::secrets::SecretInfo> for SecretView {
    fn from(s: weft_core::secrets::SecretInfo) -> Self {
        Self {
            name: s.name,
            scope: SecretScopeView {
                workflows: s.scope.workflows,
                pools: s.scope.pools,
            },
            set_by: s.set_by,
            set_at: s.set_at,
            key_id: s.key_id,
        }
    }
}

/// `POST /api/secrets/rotate`: how many secrets were sealed again.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RotatedSecrets {
    pub resealed: usize,
    pub total: usize,
    /// The key every secret is sealed under now.
    pub key_id: String,
}
