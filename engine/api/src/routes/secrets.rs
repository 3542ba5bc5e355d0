//! Secrets (admin): set, list, remove, re-seal under the newest key; and
//! the check at submit that each secret a workflow names is set and is
//! for it. No answer ever holds a value, sealed or not.

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use weft_core::diagnostic::Diagnostic;
use weft_core::ports::{AuditAction, Role};
use weft_core::secrets::{
    check_secret_name, check_secret_value, SecretInfo, SecretScope, StoredSecret,
};
use weft_core::spec::{TextPlace, Workflow};

use super::{body, now, ApiState};
use crate::auth::Caller;
use crate::views::{RotatedSecrets, SecretView, SetSecret};
use crate::Error;

fn keyring(api: &ApiState) -> Result<&weft_secrets::Keyring, Error> {
    api.keyring.as_deref().ok_or_else(|| {
        Error::new(
            StatusCode::CONFLICT,
            "this server holds no secret key: set `[secrets] key-file` or $WEFT_SECRET_KEY \
             (`weft secret keygen` makes a key)",
        )
    })
}

fn invalid(e: String) -> Error {
    Error::new(StatusCode::UNPROCESSABLE_ENTITY, e)
}

fn sealing(e: weft_secrets::Error) -> Error {
    Error::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn stored(e: weft_core::Error) -> Error {
    match e {
        weft_core::Error::Invalid(m) => invalid(m),
        e => e.into(),
    }
}

#[utoipa::path(put, path = "/api/secrets/{name}", tag = "secrets", params(("name" = String, Path)), request_body = SetSecret, responses((status = 200, body = SecretView), (status = 422, description = "a bad name, value or scope"), (status = 409, description = "the server holds no secret key")), security(("bearer" = [])))]
pub(super) async fn set(
    State(api): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
    request: Result<Json<SetSecret>, JsonRejection>,
) -> Result<Json<SecretView>, Error> {
    caller.require(Role::Admin)?;
    check_secret_name(&name).map_err(invalid)?;
    let request = body(request)?;
    check_secret_value(request.value.as_bytes()).map_err(invalid)?;
    let scope = request.scope.unwrap_or_default();
    let scope = SecretScope {
        workflows: scope.workflows,
        pools: scope.pools,
    };
    scope.check().map_err(invalid)?;
    let secret = keyring(&api)?
        .seal(
            &name,
            request.value.as_bytes(),
            scope,
            caller.name.clone(),
            now(),
        )
        .map_err(sealing)?;
    api.secrets.put_secret(&secret).await.map_err(stored)?;
    super::audit(&api, &caller, AuditAction::SetSecret, &name).await;
    Ok(Json(SecretInfo::from(&secret).into()))
}

#[utoipa::path(get, path = "/api/secrets", tag = "secrets", responses((status = 200, body = [SecretView])), security(("bearer" = [])))]
pub(super) async fn list(
    State(api): State<ApiState>,
    caller: Caller,
) -> Result<Json<Vec<SecretView>>, Error> {
    caller.require(Role::Admin)?;
    let all = api.secrets.secrets().await?;
    Ok(Json(
        all.iter().map(|s| SecretInfo::from(s).into()).collect(),
    ))
}

#[utoipa::path(delete, path = "/api/secrets/{name}", tag = "secrets", params(("name" = String, Path)), responses((status = 204, description = "removed"), (status = 404, description = "no such secret")), security(("bearer" = [])))]
pub(super) async fn remove(
    State(api): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    caller.require(Role::Admin)?;
    if !api.secrets.remove_secret(&name).await? {
        return Err(Error::not_found(format!(
            "no secret `{}`",
            weft_core::run::bounded_text(&name, 80)
        )));
    }
    super::audit(&api, &caller, AuditAction::RemoveSecret, &name).await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/secrets/rotate", tag = "secrets", responses((status = 200, body = RotatedSecrets), (status = 409, description = "the server holds no secret key")), security(("bearer" = [])))]
pub(super) async fn rotate(
    State(api): State<ApiState>,
    caller: Caller,
) -> Result<Json<RotatedSecrets>, Error> {
    caller.require(Role::Admin)?;
    let ring = keyring(&api)?;
    let (resealed, total) = ring
        .reseal_all(api.secrets.as_ref())
        .await
        .map_err(sealing)?;
    let key_id = ring.ids().remove(0);
    let target = format!("{resealed} of {total} to key {key_id}");
    super::audit(&api, &caller, AuditAction::RotateSecrets, target).await;
    Ok(Json(RotatedSecrets {
        resealed,
        total,
        key_id,
    }))
}

/// What a submit of `workflow` may not do with secrets: name one that is
/// not set (`missing`), or one that is not for this workflow or the
/// step's pool (`refused`). Each points at the text that names it.
pub(super) async fn review(
    api: &ApiState,
    workflow: &Workflow,
) -> Result<(Vec<Diagnostic>, Vec<Diagnostic>), Error> {
    let (mut missing, mut refused) = (Vec::new(), Vec::new());
    let mut known: BTreeMap<String, Option<StoredSecret>> = BTreeMap::new();
    for step in &workflow.steps {
        for name in &step.secrets {
            if !known.contains_key(name) {
                known.insert(name.clone(), api.secrets.secret(name).await?);
            }
            let span = step
                .texts
                .iter()
                .filter(|t| t.place != TextPlace::Action)
                .find(|t| weft_core::secrets::secret_refs(&t.text.value).any(|n| &n == name))
                .map_or(step.span.clone(), |t| t.text.span.clone());
            match &known[name] {
                None => missing.push(
                    Diagnostic::at(span, format!("secret `{name}` is not set"))
                        .with_label("no such secret")
                        .with_note(format!("an admin sets it with `weft secret set {name}`")),
                ),
                Some(s) if !s.scope.allows(&workflow.name, &step.pool) => refused.push(
                    Diagnostic::at(
                        span,
                        format!(
                            "secret `{name}` is not for workflow `{}` in pool `{}`",
                            workflow.name, step.pool
                        ),
                    )
                    .with_label("not in its scope")
                    .with_note(format!("it is for {}", s.scope.describe())),
                ),
                Some(_) => {}
            }
        }
    }
    Ok((missing, refused))
}
