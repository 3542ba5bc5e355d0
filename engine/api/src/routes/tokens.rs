//! API tokens: create, list, revoke (admin).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use std::sync::Arc;

use weft_core::ports::{AuditAction, Role, TokenStore};

use super::{body, now, ApiState};
use crate::auth::{mint, Caller};
use crate::views::{NewToken, TokenView};
use crate::Error;

fn token_store(api: &ApiState) -> Result<&Arc<dyn TokenStore>, Error> {
    api.tokens.as_ref().ok_or_else(|| {
        Error::new(
            StatusCode::NOT_FOUND,
            "this server runs without auth: it has no tokens",
        )
    })
}

#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = NewToken, responses((status = 201, body = TokenView)), security(("bearer" = [])))]
pub(super) async fn create_token(
    State(api): State<ApiState>,
    caller: Caller,
    request: Result<Json<NewToken>, JsonRejection>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Admin)?;
    let request = body(request)?;
    let role = Role::parse(&request.role).ok_or_else(|| {
        Error::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "`{}` is not a role: use viewer, operator or admin",
                request.role
            ),
        )
    })?;
    let (token, record) = mint(&request.name, role, now())?;
    token_store(&api)?.add_token(&record).await?;
    let target = format!("{} ({})", record.name, role.as_str());
    super::audit(&api, &caller, AuditAction::CreateToken, target).await;
    Ok((
        StatusCode::CREATED,
        Json(TokenView {
            id: record.id,
            name: record.name,
            role: role.as_str().into(),
            created_at: record.created_at,
            token: Some(token),
        }),
    ))
}

#[utoipa::path(get, path = "/api/tokens", tag = "tokens", responses((status = 200, body = [TokenView])), security(("bearer" = [])))]
pub(super) async fn list_tokens(
    State(api): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<TokenView>>, Error> {
    caller.require(Role::Admin)?;
    let tokens = token_store(&api)?.tokens().await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| TokenView {
                id: t.id,
                name: t.name,
                role: t.role.as_str().into(),
                created_at: t.created_at,
                token: None,
            })
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens", params(("id" = String, Path)), responses((status = 204, description = "revoked"), (status = 404, description = "no such token")), security(("bearer" = [])))]
pub(super) async fn revoke_token(
    State(api): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Admin)?;
    token_store(&api)?
        .revoke_token(&id)
        .await
        .map_err(|e| match e {
            weft_core::Error::NotFound(_) => Error::not_found(format!("no token {id}")),
            other => other.into(),
        })?;
    super::audit(&api, &caller, AuditAction::RevokeToken, &id).await;
    Ok(StatusCode::NO_CONTENT)
}
