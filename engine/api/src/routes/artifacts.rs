//! A run's artifacts: the list, and each one's bytes, streamed from the
//! artifact store in bounded pieces, with `Range` for resuming and
//! previews.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use weft_core::artifacts::{ArtifactRef, MAX_READ_BYTES};
use weft_core::ports::{ArtifactStore, Role};

use super::ApiState;
use crate::auth::Caller;
use crate::views::ArtifactView;
use crate::Error;

#[utoipa::path(get, path = "/api/runs/{id}/artifacts", tag = "artifacts", params(("id" = String, Path)), responses((status = 200, body = Vec<ArtifactView>), (status = 404, description = "no such run")), security(("bearer" = [])))]
pub(super) async fn list(
    State(api): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<ArtifactView>>, Error> {
    caller.require(Role::Viewer)?;
    let (_, state) = super::load_run(&api, &id).await?;
    Ok(Json(
        (0..state.steps.len())
            .flat_map(|i| ArtifactView::of_step(&state, i))
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/runs/{id}/artifacts/{step}/{name}", tag = "artifacts", params(("id" = String, Path), ("step" = String, Path), ("name" = String, Path), ("Range" = Option<String>, Header, description = "one range: bytes=START-END, bytes=START- or bytes=-SUFFIX")), responses((status = 200, content_type = "application/octet-stream", description = "the artifact (a directory as a tar)"), (status = 206, description = "the range asked for"), (status = 404, description = "no such run, step or artifact"), (status = 416, description = "a range outside the artifact")), security(("bearer" = [])))]
pub(super) async fn download(
    State(api): State<ApiState>,
    caller: Caller,
    Path((id, step, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    caller.require(Role::Viewer)?;
    let (_, state) = super::load_run(&api, &id).await?;
    let artifact = state
        .step_index(&step)
        .and_then(|i| state.steps[i].artifacts.get(&name))
        .cloned()
        .ok_or_else(|| Error::not_found(format!("run {id} has no artifact {step}/{name}")))?;
    let Some(store) = api.artifacts.clone() else {
        return Err(Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server has no artifact store (`[artifacts]` in its configuration)",
        ));
    };
    let size = artifact.size;
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(value) => match parse_range(value.to_str().unwrap_or_default(), size) {
            Some(r) => Some(r),
            None => {
                return Ok((
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                )
                    .into_response())
            }
        },
    };
    let (start, end) = range.unwrap_or((0, size));
    let file = if artifact.dir {
        format!("{step}-{name}.tar")
    } else {
        format!("{step}-{name}")
    };
    let mut response = Response::builder()
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CONTENT_TYPE,
            if artifact.dir {
                "application/x-tar"
            } else {
                "application/octet-stream"
            },
        )
        .header(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
                .unwrap_or(HeaderValue::from_static("attachment")),
        )
        .header(header::ETAG, format!("\"{}\"", artifact.digest));
    if range.is_some() {
        response = response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end.max(1) - 1),
        );
    }
    response
        .body(Body::from_stream(pieces(store, artifact, start, end)))
        .map_err(|e| Error::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// The bytes `start..end` of `artifact`, a piece at a time: the server
/// holds at most one piece of a download in memory.
fn pieces(
    store: std::sync::Arc<dyn ArtifactStore>,
    artifact: ArtifactRef,
    start: u64,
    end: u64,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::try_unfold(start, move |at| {
        let (store, digest) = (store.clone(), artifact.digest.clone());
        async move {
            if at >= end {
                return Ok(None);
            }
            let piece = store
                .read_range(&digest, at, (end - at).min(MAX_READ_BYTES))
                .await
                .map_err(std::io::Error::other)?;
            if piece.is_empty() {
                return Err(std::io::Error::other(format!(
                    "artifact {} ends before its recorded size",
                    digest.short()
                )));
            }
            let next = at + piece.len() as u64;
            Ok(Some((piece, next)))
        }
    })
}

/// One range of `Range: bytes=...` as `start..end` within `size`; `None`
/// when it cannot be served (several ranges, past the end, malformed).
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let (start, end) = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        (size.saturating_sub(suffix), size)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            size
        } else {
            last.parse::<u64>().ok()?.saturating_add(1).min(size)
        };
        (start, end)
    };
    (start < end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_are_read_as_http_says() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 100)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=x-", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
    }
}
