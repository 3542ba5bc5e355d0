//! The audit log, for admins: who did what, newest first, in pages.

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use weft_core::ports::{AuditEntry, Role};

use super::ApiState;
use crate::auth::Caller;
use crate::Error;

#[derive(Deserialize, utoipa::IntoParams)]
pub(super) struct AuditQuery {
    /// Most entries to answer with (default 100, at most 1,000).
    limit: Option<usize>,
    /// Only entries older than this `seq` (the last one of the previous page).
    before: Option<u64>,
}

#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditQuery), responses((status = 200, description = "entries, newest first: `seq`, `at`, `who`, `role`, `action`, `target`")), security(("bearer" = [])))]
pub(super) async fn list(
    State(api): State<ApiState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, Error> {
    caller.require(Role::Admin)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(api.audit.audit(limit, q.before).await?))
}
