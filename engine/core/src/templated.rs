//! The two forms of a step's action: as the workflow file wrote it
//! ([`Written`]: a value may still be a `{{ template }}`) and as it runs
//! ([`Rendered`]: every value concrete and typed). One struct serves both,
//! generic over its form, so rendering cannot forget a field and an executor
//! cannot meet a template.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::template::{render_json, Path};

/// What a field of an action may hold, in either form.
pub trait Field:
    Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
}
impl<T: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static> Field
    for T
{
}

/// A form of an action: how a field that templates may fill is held.
pub trait Form: Clone + Copy + Debug + PartialEq + Send + Sync + 'static {
    type Of<T: Field>: Field;
}

/// As written in the file: a templatable field is a value or a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written;
impl Form for Written {
    type Of<T: Field> = Templated<T>;
}

/// As it runs: every field is its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendered;
impl Form for Rendered {
    type Of<T: Field> = T;
}

/// A value written in the file, or a template rendered at dispatch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Templated<T> {
    Value(T),
    Template(String),
}

impl<T: Clone> Templated<T> {
    /// The value, rendering the template and converting what it rendered
    /// to with `convert` (its error names what the value should be).
    pub fn render(
        &self,
        lookup: &dyn Fn(&Path) -> Result<Json, String>,
        convert: impl Fn(Json) -> Result<T, String>,
    ) -> Result<T, String> {
        match self {
            Templated::Value(v) => Ok(v.clone()),
            Templated::Template(text) => {
                let rendered = render_json(&Json::String(text.clone()), lookup)?;
                convert(rendered)
            }
        }
    }
}

/// Whether `v` is a template the orchestrator renders later.
pub fn is_template(v: &Json) -> bool {
    matches!(v, Json::String(s) if s.contains("{{"))
}

/// `v` shortened for a message: a rendered value may be megabytes.
pub fn shown(v: &Json) -> String {
    crate::run::bounded_text(&v.to_string(), 120)
}

/// A lookup that finds nothing: reads a table whose values must all be
/// written out (a pre hook's, a test's) as if rendered.
pub fn no_templates(path: &Path) -> Result<Json, String> {
    Err(format!("`{path}`: templates are not rendered here"))
}
