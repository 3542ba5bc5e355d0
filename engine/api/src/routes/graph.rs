//! The drawn step graph of a run, and the editor's check of a workflow text
//! (diagnostics, and the graph it would run).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;
use weft_core::diagnostic::Diagnostic;
use weft_core::ports::Role;
use weft_core::run::Plan;

use super::{body, ApiState};
use crate::auth::Caller;
use crate::views::{CheckRequest, CheckView, DiagnosticView, GraphView};
use crate::Error;

#[utoipa::path(get, path = "/api/runs/{id}/graph", tag = "runs", params(("id" = String, Path)), responses((status = 200, body = GraphView), (status = 404, description = "no such run")), security(("bearer" = [])))]
pub(super) async fn run_graph(
    State(api): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<GraphView>, Error> {
    caller.require(Role::Viewer)?;
    let (_, state) = super::load_run(&api, &id).await?;
    Ok(Json(GraphView::new(&state.plan, Some(&state))))
}

#[utoipa::path(post, path = "/api/check", tag = "workflows", request_body = CheckRequest, responses((status = 200, body = CheckView)), security(("bearer" = [])))]
pub(super) async fn check(
    State(api): State<ApiState>,
    caller: Caller,
    request: Result<Json<CheckRequest>, JsonRejection>,
) -> Result<Json<CheckView>, Error> {
    caller.require(Role::Viewer)?;
    let request = body(request)?;
    let file = request.file.as_deref().unwrap_or("workflow.toml");
    let source = &request.workflow;
    // The editor shows what the server's policy would refuse of the caller,
    // as it would refuse it at submit.
    let policy = super::run_policy(&api, caller.role)?;
    // Read once; what follows reviews the workflow, then draws it.
    let loaded = weft_core::spec::load(source);
    let mut refused = Vec::new();
    if let Ok(workflow) = &loaded {
        refused.extend(policy.map(|p| p.review(workflow)).unwrap_or_default());
        // Plugin references against this server's registry, as `weft check
        // --server` checks them: unknown plugins, versions matching nothing,
        // plugins of the wrong world. Local files are the CLI's to read.
        let references = weft_core::plugins::references(workflow);
        if references
            .iter()
            .any(|(r, _)| !weft_core::plugins::is_local(&r.value))
        {
            let registry = api.plugins.plugins().await?;
            refused.extend(weft_core::plugins::check(workflow, &registry));
        }
        // Secrets and admission are a submitter's business: a viewer
        // learns nothing of which secrets exist, and runs no plugin.
        if caller.role >= Role::Operator {
            let (missing, out_of_scope) = super::secrets::review(&api, workflow).await?;
            refused.extend(missing);
            refused.extend(out_of_scope);
            let role = caller.role.as_str();
            match api
                .admission
                .review(workflow, caller.name.as_deref(), role)
                .await
            {
                Ok(decisions) => {
                    let denials = decisions
                        .iter()
                        .filter(|d| d.verdict == weft_core::admission::Verdict::Deny);
                    refused.extend(denials.flat_map(|d| d.diagnostics(workflow)));
                }
                Err(e) => refused.push(Diagnostic::whole_file(e.to_string())),
            }
        }
    }
    let problems = match loaded {
        Ok(workflow) if refused.is_empty() => {
            return Ok(Json(CheckView {
                ok: true,
                diagnostics: Vec::new(),
                rendered: String::new(),
                graph: Some(GraphView::new(&Plan::new(workflow), None)),
            }));
        }
        Ok(_) => refused,
        Err(diagnostics) => diagnostics,
    };
    Ok(Json(CheckView {
        ok: false,
        diagnostics: diagnostic_views(source, &problems),
        rendered: weft_core::diagnostic::render(file, source, &problems),
        graph: None,
    }))
}

#[utoipa::path(get, path = "/api/schema", tag = "workflows", responses((status = 200, description = "the JSON Schema of the workflow format (`weft schema`): the editor's completion reads it", body = Object)), security(("bearer" = [])))]
pub(super) async fn schema(caller: Caller) -> Result<Json<serde_json::Value>, Error> {
    caller.require(Role::Viewer)?;
    Ok(Json(weft_core::spec::json_schema()))
}

/// Diagnostics with line and column (0 where one has no place).
pub(super) fn diagnostic_views(source: &str, diagnostics: &[Diagnostic]) -> Vec<DiagnosticView> {
    diagnostics
        .iter()
        .map(|d| {
            let (line, column) = d.line_column(source).unwrap_or((0, 0));
            DiagnosticView {
                message: d.message.clone(),
                line,
                column,
            }
        })
        .collect()
}
