//! API errors: a status code and a JSON body `{"error": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// What an API call can fail with, on either side of the wire.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status.
    #[error("{message}")]
    Api {
        status: u16,
        message: String,
        details: Option<serde_json::Value>,
    },
    #[error("cannot reach the weft server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("unexpected answer from the weft server: {0}")]
    Protocol(String),
}

impl Error {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Error::Api {
            status: status.as_u16(),
            message: message.into(),
            details: None,
        }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }

    /// 429 for a client that sent too many wrong tokens; `retry_after_s`
    /// in the details becomes the `Retry-After` header.
    pub(crate) fn throttled(wait: std::time::Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        Error::Api {
            status: StatusCode::TOO_MANY_REQUESTS.as_u16(),
            message: format!("too many wrong tokens from this address; try again in {secs} s"),
            details: Some(serde_json::json!({ "retry_after_s": secs })),
        }
    }
}

impl From<weft_orchestrator::Error> for Error {
    fn from(e: weft_orchestrator::Error) -> Self {
        use weft_orchestrator::Error as O;
        let status = match &e {
            O::NoSuchRun(_) => StatusCode::NOT_FOUND,
            O::NotOwner(_) => StatusCode::CONFLICT,
            O::Invalid(_) | O::TooLarge(_) => StatusCode::UNPROCESSABLE_ENTITY,
            O::StoredWorkflow(_) | O::Port(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<weft_core::Error> for Error {
    fn from(e: weft_core::Error) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Api {
                status,
                message,
                details,
            } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let retry_after = details
                    .as_ref()
                    .and_then(|d| d.get("retry_after_s"))
                    .and_then(serde_json::Value::as_u64)
                    .filter(|_| status == StatusCode::TOO_MANY_REQUESTS);
                let mut body = serde_json::json!({ "error": message });
                if let Some(d) = details {
                    body["details"] = d;
                }
                let mut response = (status, Json(body)).into_response();
                if let Some(secs) = retry_after {
                    response.headers_mut().insert(
                        axum::http::header::RETRY_AFTER,
                        axum::http::HeaderValue::from(secs),
                    );
                }
                response
            }
            other => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(serde_json::json!({ "error": other.to_string() })),
            )
                .into_response(),
        }
    }
}
