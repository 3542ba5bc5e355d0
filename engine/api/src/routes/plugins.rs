//! The plugin registry: upload (admins), list and read (viewers), remove
//! (admins). An upload is the component's bytes as the body, with its name
//! and version in the query.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use weft_core::ports::{AuditAction, Role};
use weft_wasm_host::Error as HostError;

use super::{now, ApiState};
use crate::auth::Caller;
use crate::views::PluginView;
use crate::Error;

/// `POST /api/plugins` query.
#[derive(Deserialize, utoipa::IntoParams)]
pub(super) struct PushQuery {
    /// Letters, digits, `-` and `_`.
    name: String,
    /// A semantic version, `X.Y.Z`; a version never changes once pushed.
    version: String,
}

fn refused(e: HostError) -> Error {
    let status = match &e {
        HostError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        HostError::Store(weft_core::Error::Conflict(_)) => StatusCode::CONFLICT,
        HostError::Store(_) | HostError::Engine(_) | HostError::Cache { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Error::new(status, format!("plugin refused: {e}"))
}

#[utoipa::path(post, path = "/api/plugins", tag = "plugins", params(PushQuery), request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the component (.wasm)"), responses((status = 201, body = PluginView), (status = 409, description = "this version exists with other contents"), (status = 413, description = "too large"), (status = 422, description = "not a component of a weft world, with the reason")), security(("bearer" = [])))]
pub(super) async fn push(
    State(api): State<ApiState>,
    caller: Caller,
    Query(q): Query<PushQuery>,
    wasm: Bytes,
) -> Result<impl IntoResponse, Error> {
    caller.require(Role::Admin)?;
    let record = weft_wasm_host::register(
        &api.plugin_host,
        api.plugins.as_ref(),
        &q.name,
        &q.version,
        wasm.to_vec(),
        now(),
    )
    .await
    .map_err(refused)?;
    let target = format!("{}@{}", q.name, q.version);
    super::audit(&api, &caller, AuditAction::PushPlugin, target).await;
    Ok((StatusCode::CREATED, Json(PluginView::from(record))))
}

#[utoipa::path(get, path = "/api/plugins", tag = "plugins", responses((status = 200, body = [PluginView], description = "every version of every plugin")), security(("bearer" = [])))]
pub(super) async fn list(
    State(api): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<PluginView>>, Error> {
    caller.require(Role::Viewer)?;
    let all = api.plugins.plugins().await?;
    Ok(Json(all.into_iter().map(PluginView::from).collect()))
}

#[utoipa::path(get, path = "/api/plugins/{name}", tag = "plugins", params(("name" = String, Path)), responses((status = 200, body = [PluginView], description = "every version, oldest first"), (status = 404)), security(("bearer" = [])))]
pub(super) async fn versions(
    State(api): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<PluginView>>, Error> {
    caller.require(Role::Viewer)?;
    let versions = api.plugins.plugin_versions(&name).await?;
    if versions.is_empty() {
        return Err(Error::not_found(format!("no plugin `{name}`")));
    }
    Ok(Json(versions.into_iter().map(PluginView::from).collect()))
}

#[utoipa::path(get, path = "/api/plugins/{name}/{version}", tag = "plugins", params(("name" = String, Path), ("version" = String, Path, description = "a version or a requirement such as ^1.2")), responses((status = 200, body = PluginView), (status = 404)), security(("bearer" = [])))]
pub(super) async fn show(
    State(api): State<ApiState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<PluginView>, Error> {
    caller.require(Role::Viewer)?;
    let reference = weft_core::spec::PluginRef::parse(&format!("{name}@{version}"))
        .map_err(|e| Error::new(StatusCode::BAD_REQUEST, e))?;
    let versions = api.plugins.plugin_versions(&name).await?;
    let found = weft_core::plugins::pick(&reference, &versions)
        .ok_or_else(|| Error::not_found(format!("no version of `{name}` matches `{version}`")))?;
    Ok(Json(PluginView::from(found.clone())))
}

#[utoipa::path(delete, path = "/api/plugins/{name}", tag = "plugins", params(("name" = String, Path)), responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub(super) async fn remove_all(
    State(api): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    caller.require(Role::Admin)?;
    removed(api.plugins.remove_plugin(&name, None).await?, &name)?;
    super::audit(&api, &caller, AuditAction::RemovePlugin, &name).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/plugins/{name}/{version}", tag = "plugins", params(("name" = String, Path), ("version" = String, Path)), responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub(super) async fn remove(
    State(api): State<ApiState>,
    caller: Caller,
    Path((name, version)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    caller.require(Role::Admin)?;
    let what = format!("{name}@{version}");
    removed(
        api.plugins.remove_plugin(&name, Some(&version)).await?,
        &what,
    )?;
    super::audit(&api, &caller, AuditAction::RemovePlugin, what).await;
    Ok(StatusCode::NO_CONTENT)
}

fn removed(count: usize, what: &str) -> Result<StatusCode, Error> {
    if count == 0 {
        return Err(Error::not_found(format!("no plugin `{what}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}
