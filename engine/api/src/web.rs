//! The dashboard: hand-written ES modules and CSS from `web/`, embedded at
//! compile time so the binary serves them with no JavaScript toolchain. The
//! files hold no data (every page reads the API with the user's token), so
//! they are served without a token, under a strict Content-Security-Policy.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::Error;

macro_rules! asset {
    ($path:literal, $kind:expr) => {
        (
            $path,
            $kind,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/", $path)) as &[u8],
        )
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `web/`: path, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("boot.js", JS),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("graph.js", JS),
    asset!("timeline.js", JS),
    asset!("artifacts.js", JS),
    asset!("log.js", JS),
    asset!("code-editor.js", JS),
    asset!("pages/runs.js", JS),
    asset!("pages/run.js", JS),
    asset!("pages/step-panel.js", JS),
    asset!("pages/workflows.js", JS),
    asset!("pages/editor.js", JS),
    asset!("pages/plugins.js", JS),
    asset!("pages/workers.js", JS),
    asset!("pages/schedules.js", JS),
];

/// Scripts and styles from this origin only; no inline code, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn serve(path: &str) -> Response {
    let Some((_, kind, bytes)) = ASSETS.iter().find(|(p, _, _)| *p == path) else {
        return Error::not_found(format!("no dashboard file {path}")).into_response();
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            // Small files that change with the binary: always revalidate.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        *bytes,
    )
        .into_response()
}

/// `GET /`: the dashboard's page.
pub(crate) async fn index() -> Response {
    serve("index.html")
}

/// `GET /ui/{*path}`: its scripts and styles.
pub(crate) async fn asset(Path(path): Path<String>) -> Response {
    serve(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_web_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
        let mut stack = vec![root.clone()];
        let mut missing = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let rel = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                if !ASSETS.iter().any(|(p, _, _)| *p == rel) {
                    missing.push(rel);
                }
            }
        }
        assert!(missing.is_empty(), "not embedded: {missing:?}");
    }

    #[test]
    fn modules_import_only_embedded_files() {
        for (path, _, bytes) in ASSETS.iter().filter(|(p, _, _)| p.ends_with(".js")) {
            let text = std::str::from_utf8(bytes).unwrap();
            let dir = std::path::Path::new(path).parent().unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let target = line.rsplit(['\'', '"']).nth(1).unwrap();
                let mut parts: Vec<&str> = dir.iter().map(|c| c.to_str().unwrap()).collect();
                for seg in target.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let resolved = parts.join("/");
                assert!(
                    ASSETS.iter().any(|(p, _, _)| *p == resolved),
                    "{path} imports {target}, which is not embedded"
                );
            }
        }
    }
}
