//! The workflow file: model, parser, validation and JSON Schema.

mod actions;
pub mod approval;
mod artifact_table;
pub mod concurrency;
mod model;
mod needs;
mod on_exit;
pub mod on_finish;
pub mod parse;
mod schema;
mod settings;
pub mod sub_workflow;
pub mod triggers;
pub mod units;
mod validate;
mod values;
mod workflow_table;

pub use actions::{check_mount, is_docker_socket, lexically_normal, ContainerSpec, WasmStep};
pub use model::*;
pub use schema::json_schema;
pub use values::{pool_name_problem, POOL_NAME_MAX};

use crate::diagnostic::Diagnostic;

/// Parses and validates a workflow; `Err` holds every problem found, in file order.
pub fn load(source: &str) -> Result<Workflow, Vec<Diagnostic>> {
    let (workflow, mut diags) = parse::parse(source);
    if let Some(w) = &workflow {
        diags.extend(validate::validate(w, source));
        diags.extend(on_exit::check(w));
        diags.extend(sub_workflow::check(w));
    }
    match workflow {
        Some(w) if diags.is_empty() => Ok(w),
        _ => {
            diags.sort_by_key(|d| d.span.as_ref().map_or(0, |s| s.start));
            Err(diags)
        }
    }
}
