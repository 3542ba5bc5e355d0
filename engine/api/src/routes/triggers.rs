//! `POST /api/triggers/{name}`: a webhook delivery. No bearer token: the
//! sender signs the body with the webhook's secret (HMAC-SHA256, as
//! GitHub does), and names the delivery, so one sent twice starts one run.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use weft_core::ports::{AuditAction, Role};

use super::{now, ApiState};
use crate::auth::Caller;
use crate::Error;

/// Largest delivery body accepted.
pub const MAX_DELIVERY_BYTES: usize = 1 << 20;
/// How long a delivery id is remembered.
const REMEMBERED_MS: u64 = 7 * 24 * 3600 * 1000;
const SIGNATURE_HEADERS: [&str; 2] = ["x-weft-signature", "x-hub-signature-256"];
const DELIVERY_HEADERS: [&str; 2] = ["x-weft-delivery", "x-github-delivery"];

/// What a delivery started.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryAnswer {
    /// The run the delivery started (or, sent again, started before).
    pub run: String,
    /// Whether this delivery had been received before.
    pub duplicate: bool,
}

fn unauthorized() -> Error {
    Error::new(
        StatusCode::UNAUTHORIZED,
        "the delivery's signature is missing or does not match: send `X-Weft-Signature: \
         sha256=<hex HMAC-SHA256 of the body, keyed with the webhook's secret>`",
    )
}

fn header<'h>(headers: &'h HeaderMap, names: &[&str]) -> Option<&'h str> {
    names
        .iter()
        .find_map(|n| headers.get(*n))
        .and_then(|v| v.to_str().ok())
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 256 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[utoipa::path(post, path = "/api/triggers/{name}", tag = "workflows", params(("name" = String, Path, description = "the webhook's name")), request_body(content = Object, description = "the payload, JSON; signed in `X-Weft-Signature: sha256=<hex>`, named by `X-Weft-Delivery`"), responses((status = 201, body = DeliveryAnswer), (status = 200, body = DeliveryAnswer, description = "a delivery received before"), (status = 401, description = "no or a wrong signature"), (status = 404, description = "no such webhook"), (status = 422, description = "no delivery id, a body that is not JSON, or a payload without a field the params read")))]
pub(super) async fn deliver(
    State(api): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, Error> {
    if body.len() > MAX_DELIVERY_BYTES {
        return Err(Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a delivery may be at most {MAX_DELIVERY_BYTES} bytes"),
        ));
    }
    let mut hooks = api.hooks.named(api.workflows.as_ref(), &name).await?;
    let hook = match hooks.len() {
        0 => return Err(Error::not_found(format!("no webhook {name}"))),
        1 => hooks.remove(0),
        _ => {
            let workflows: Vec<&str> = hooks.iter().map(|h| h.saved.name.as_str()).collect();
            return Err(Error::new(
                StatusCode::CONFLICT,
                format!(
                    "webhook {name} is named by saved workflows {}",
                    workflows.join(", ")
                ),
            ));
        }
    };
    // The signature, before anything about the delivery is believed.
    let signature = header(&headers, &SIGNATURE_HEADERS)
        .and_then(|s| s.strip_prefix("sha256="))
        .and_then(unhex)
        .ok_or_else(unauthorized)?;
    let key = signing_key(&api, &hook).await?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| unauthorized())?;
    mac.update(&body);
    mac.verify_slice(&signature).map_err(|_| unauthorized())?;

    let unprocessable = |m: String| Error::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    let delivery = header(&headers, &DELIVERY_HEADERS)
        .filter(|d| !d.is_empty() && d.len() <= 200)
        .ok_or_else(|| {
            unprocessable(
                "a delivery needs an id of at most 200 characters in `X-Weft-Delivery` \
                 (or `X-GitHub-Delivery`): the same id sent again starts nothing"
                    .into(),
            )
        })?;
    let payload: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| unprocessable(format!("the delivery's body is not JSON: {e}")))?;
    let params: BTreeMap<String, String> = hook
        .spec
        .overrides(&payload)
        .map_err(unprocessable)?
        .into_iter()
        .collect();

    let at = now();
    let fresh = ulid::Ulid::new().to_string().to_lowercase();
    let record = format!("{}/{name}/{delivery}", hook.saved.name);
    let id = match api
        .deliveries
        .record_delivery(&record, &fresh, at, at + REMEMBERED_MS)
        .await?
    {
        None => fresh,
        // Sent again: its run, unless it never started (then it starts now).
        Some(earlier) => {
            if api.store.get_run(&earlier).await?.is_some() {
                return Ok((
                    StatusCode::OK,
                    Json(DeliveryAnswer {
                        run: earlier,
                        duplicate: true,
                    }),
                ));
            }
            earlier
        }
    };
    let caller = Caller {
        role: Role::Operator,
        token_id: None,
        name: Some(format!("webhook:{name}")),
    };
    match super::start_saved(
        &api,
        &hook.saved,
        params,
        id.clone(),
        Default::default(),
        &caller,
    )
    .await
    {
        Ok(_) => {}
        Err(_) if api.store.get_run(&id).await?.is_some() => {
            return Ok((
                StatusCode::OK,
                Json(DeliveryAnswer {
                    run: id,
                    duplicate: true,
                }),
            ))
        }
        Err(e) => return Err(e),
    }
    super::audit(&api, &caller, AuditAction::SubmitRun, &id).await;
    Ok((
        StatusCode::CREATED,
        Json(DeliveryAnswer {
            run: id,
            duplicate: false,
        }),
    ))
}

/// The webhook's secret, opened. Whatever is wrong with it (not set, out of
/// scope, no key here) the sender learns only that the signature failed;
/// the server's log says what.
async fn signing_key(api: &ApiState, hook: &crate::app::Hook) -> Result<Vec<u8>, Error> {
    let secret = &hook.spec.secret.value;
    let why = match (api.secrets.secret(secret).await?, &api.keyring) {
        (None, _) => "is not set".to_string(),
        (Some(_), None) => "cannot be opened: this server holds no secret key".to_string(),
        (Some(stored), Some(keyring)) => {
            let scope = weft_core::secrets::SecretScope {
                workflows: stored.scope.workflows.clone(),
                pools: Vec::new(),
            };
            if !scope.allows(&hook.saved.name, "") {
                format!("is not for workflow {}", hook.saved.name)
            } else {
                match keyring.open(&stored) {
                    Ok(key) => return Ok(key),
                    Err(e) => format!("cannot be opened: {e}"),
                }
            }
        }
    };
    tracing::warn!(
        webhook = %hook.spec.name.value,
        workflow = %hook.saved.name,
        "a delivery was refused: its secret `{secret}` {why}"
    );
    Err(unauthorized())
}
