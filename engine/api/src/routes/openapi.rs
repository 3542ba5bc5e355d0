//! The OpenAPI document, generated from the handlers' annotations and the view types.

use axum::Json;
use weft_core::ports::Role;

// `paths(...)` needs each handler's generated `__path_*` item in scope.
use super::logs::*;
use super::ops::*;
use super::runs::*;
use super::tokens::*;
use super::{
    approvals, artifacts, audit_routes, graph, plugins, schedules, secrets, triggers, workflows,
};
use crate::auth::Caller;
use crate::Error;

/// The OpenAPI document, generated from the handlers' annotations and the view types.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "weft", description = "The REST API of `weft serve`."),
    paths(submit, list, show, states, step, approvals::decide, graph::run_graph, graph::check, graph::schema, cancel, retry, logs, log_stream, workers, events, metrics, create_token, list_tokens, revoke_token, workflows::save, workflows::list, workflows::show, workflows::run, schedules::list, schedules::backfill, triggers::deliver, plugins::push, plugins::list, plugins::versions, plugins::show, plugins::remove_all, plugins::remove, audit_routes::list, secrets::set, secrets::list, secrets::remove, secrets::rotate, artifacts::list, artifacts::download),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("weft_<id>_<secret>")
                    .build(),
            ),
        );
    }
}

pub(super) async fn openapi(caller: Caller) -> Result<Json<utoipa::openapi::OpenApi>, Error> {
    caller.require(Role::Viewer)?;
    Ok(Json(<ApiDoc as utoipa::OpenApi>::openapi()))
}
