//! The client the CLI uses to talk to `weft serve`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use weft_core::ports::LogSlice;

use crate::views::{NewToken, PluginView, RunSummary, RunView, SubmitRequest, TokenView};
use crate::Error;

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Client {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_string(),
            http,
            token: None,
        }
    }

    /// Sends `Authorization: Bearer <token>` with every call.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, path)
    }

    async fn answer(
        &self,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<reqwest::Response, Error> {
        let response = response.map_err(|e| Error::Unreachable {
            url: self.base.clone(),
            reason: unreachable_reason(&e),
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = match body.get("error").and_then(|m| m.as_str()) {
            Some(message) => message.to_string(),
            // Every weft error has a JSON message; without one, something
            // else (a proxy, another service) answered.
            None => format!(
                "{} answered {status} with no weft error message; is it a weft server?",
                self.base
            ),
        };
        let status = status.as_u16();
        Err(Error::Api {
            status,
            message,
            details: body.get("details").cloned(),
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        self.answer(request.send().await)
            .await?
            .json()
            .await
            .map_err(|e| Error::Protocol(e.to_string()))
    }

    pub async fn submit(&self, request: &SubmitRequest) -> Result<RunSummary, Error> {
        self.json(self.post("/api/runs").json(request)).await
    }

    pub async fn runs(&self, limit: usize) -> Result<Vec<RunSummary>, Error> {
        self.json(self.get(&format!("/api/runs?limit={limit}")))
            .await
    }

    /// At most `limit` runs whose id starts with `prefix`, newest first.
    pub async fn runs_with_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<RunSummary>, Error> {
        let request = self
            .get("/api/runs")
            .query(&[("limit", limit.to_string()), ("prefix", prefix.to_string())]);
        self.json(request).await
    }

    /// Runs matching the filters, and the cursor of the next page if any.
    pub async fn runs_page(
        &self,
        status: Option<&str>,
        workflow: Option<&str>,
        limit: usize,
        before: Option<&str>,
    ) -> Result<(Vec<RunSummary>, Option<String>), Error> {
        let mut request = self.get("/api/runs").query(&[("limit", limit.to_string())]);
        for (key, value) in [
            ("status", status),
            ("workflow", workflow),
            ("before", before),
        ] {
            if let Some(v) = value {
                request = request.query(&[(key, v)]);
            }
        }
        let response = self.answer(request.send().await).await?;
        let next = response
            .headers()
            .get(crate::routes::NEXT_PAGE_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        let runs = response
            .json()
            .await
            .map_err(|e| Error::Protocol(e.to_string()))?;
        Ok((runs, next))
    }

    /// The server's address, as given.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A run's states without tasks and attempts (what live progress polls).
    pub async fn states(&self, id: &str) -> Result<crate::views::RunStates, Error> {
        self.json(self.get(&format!("/api/runs/{id}/states"))).await
    }

    pub async fn run(&self, id: &str) -> Result<RunView, Error> {
        self.json(self.get(&format!("/api/runs/{id}"))).await
    }

    /// Downloads artifact `step/name` of run `id` into `dest`, a piece at a
    /// time (never whole in memory); `write` gets each piece.
    pub async fn download_artifact(
        &self,
        id: &str,
        step: &str,
        name: &str,
        mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        use futures_util::StreamExt;
        let response = self
            .answer(
                self.get(&format!("/api/runs/{id}/artifacts/{step}/{name}"))
                    .send()
                    .await,
            )
            .await?;
        let mut stream = response.bytes_stream();
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| Error::Protocol(format!("downloading: {e}")))?;
            write(&piece).map_err(|e| Error::Protocol(format!("writing the download: {e}")))?;
        }
        Ok(())
    }

    pub async fn cancel(&self, id: &str) -> Result<(), Error> {
        self.answer(self.post(&format!("/api/runs/{id}/cancel")).send().await)
            .await
            .map(|_| ())
    }

    /// Approves or rejects step `step` of run `id`, which waits for a person.
    pub async fn decide(
        &self,
        id: &str,
        step: &str,
        decision: &crate::views::DecisionRequest,
    ) -> Result<(), Error> {
        self.answer(
            self.post(&format!("/api/runs/{id}/steps/{step}/decision"))
                .json(decision)
                .send()
                .await,
        )
        .await
        .map(|_| ())
    }

    /// Retries run `id` (from step `from`, or from what did not succeed).
    pub async fn retry(&self, id: &str, from: Option<&str>) -> Result<RunSummary, Error> {
        self.json(
            self.post(&format!("/api/runs/{id}/retry"))
                .json(&serde_json::json!({ "from": from })),
        )
        .await
    }

    /// Saves `workflow` (its text) as the next version of `name` (its
    /// `[workflow] name` by default).
    pub async fn save_workflow(
        &self,
        workflow: &str,
        name: Option<&str>,
    ) -> Result<crate::views::SavedWorkflowView, Error> {
        self.json(
            self.post("/api/workflows")
                .json(&serde_json::json!({ "workflow": workflow, "name": name })),
        )
        .await
    }

    /// Starts a run of saved workflow `name` (`version`, else the latest)
    /// with `params` given as text (read as their defaults' types).
    pub async fn run_saved(
        &self,
        name: &str,
        version: Option<u32>,
        params: &std::collections::BTreeMap<String, String>,
        priority: i32,
    ) -> Result<RunSummary, Error> {
        self.json(self.post(&format!("/api/workflows/{name}/runs")).json(
            &serde_json::json!({ "version": version, "params": params, "priority": priority }),
        ))
        .await
    }

    /// One saved workflow version (the latest when `None`), with its text.
    pub async fn saved_workflow(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<crate::views::SavedWorkflowView, Error> {
        let path = match version {
            Some(v) => format!("/api/workflows/{name}?version={v}"),
            None => format!("/api/workflows/{name}"),
        };
        self.json(self.get(&path)).await
    }

    /// The latest version of every saved workflow.
    pub async fn saved_workflows(&self) -> Result<Vec<crate::views::SavedWorkflowView>, Error> {
        self.json(self.get("/api/workflows")).await
    }

    /// Saved workflows' schedules with their next fire times.
    pub async fn schedules(&self) -> Result<Vec<crate::app::ScheduleView>, Error> {
        self.json(self.get("/api/schedules")).await
    }

    /// One run per fire time of schedule `schedule` of `workflow` in
    /// `[from, to]` (RFC 3339 or days).
    pub async fn backfill(
        &self,
        workflow: &str,
        schedule: usize,
        from: &str,
        to: &str,
    ) -> Result<crate::BackfillAnswer, Error> {
        self.json(
            self.post(&format!("/api/workflows/{workflow}/backfill"))
                .json(&serde_json::json!({ "from": from, "to": to, "schedule": schedule })),
        )
        .await
    }

    pub async fn workers(&self) -> Result<Vec<weft_core::ports::WorkerInfo>, Error> {
        self.json(self.get("/api/workers")).await
    }

    pub async fn create_token(&self, name: &str, role: &str) -> Result<TokenView, Error> {
        self.json(self.post("/api/tokens").json(&NewToken {
            name: name.into(),
            role: role.into(),
        }))
        .await
    }

    /// The newest `limit` entries of the audit log (admins).
    pub async fn audit(&self, limit: usize) -> Result<Vec<weft_core::ports::AuditEntry>, Error> {
        self.json(self.get(&format!("/api/audit?limit={limit}")))
            .await
    }

    /// Sets secret `name` (admins); the answer never holds the value.
    pub async fn set_secret(
        &self,
        name: &str,
        request: &crate::views::SetSecret,
    ) -> Result<crate::views::SecretView, Error> {
        self.json(
            self.request(reqwest::Method::PUT, &format!("/api/secrets/{name}"))
                .json(request),
        )
        .await
    }

    pub async fn secrets(&self) -> Result<Vec<crate::views::SecretView>, Error> {
        self.json(self.get("/api/secrets")).await
    }

    pub async fn remove_secret(&self, name: &str) -> Result<(), Error> {
        self.answer(
            self.request(reqwest::Method::DELETE, &format!("/api/secrets/{name}"))
                .send()
                .await,
        )
        .await
        .map(|_| ())
    }

    /// Seals every secret again under the server's newest key.
    pub async fn rotate_secrets(&self) -> Result<crate::views::RotatedSecrets, Error> {
        self.json(self.post("/api/secrets/rotate")).await
    }

    pub async fn tokens(&self) -> Result<Vec<TokenView>, Error> {
        self.json(self.get("/api/tokens")).await
    }

    pub async fn revoke_token(&self, id: &str) -> Result<(), Error> {
        self.answer(
            self.request(reqwest::Method::DELETE, &format!("/api/tokens/{id}"))
                .send()
                .await,
        )
        .await
        .map(|_| ())
    }

    /// Uploads a component as `name@version`; compiling it may take a while.
    pub async fn push_plugin(
        &self,
        name: &str,
        version: &str,
        wasm: Vec<u8>,
    ) -> Result<PluginView, Error> {
        self.json(
            self.post("/api/plugins")
                .query(&[("name", name), ("version", version)])
                .header("content-type", "application/octet-stream")
                .timeout(Duration::from_secs(300))
                .body(wasm),
        )
        .await
    }

    pub async fn plugins(&self) -> Result<Vec<PluginView>, Error> {
        self.json(self.get("/api/plugins")).await
    }

    /// Every version of `name`, or the one `version` (a version or a requirement) picks.
    pub async fn plugin(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Vec<PluginView>, Error> {
        match version {
            Some(v) => Ok(vec![
                self.json(self.get(&format!("/api/plugins/{name}/{v}")))
                    .await?,
            ]),
            None => self.json(self.get(&format!("/api/plugins/{name}"))).await,
        }
    }

    pub async fn remove_plugin(&self, name: &str, version: Option<&str>) -> Result<(), Error> {
        let path = match version {
            Some(v) => format!("/api/plugins/{name}/{v}"),
            None => format!("/api/plugins/{name}"),
        };
        self.answer(self.request(reqwest::Method::DELETE, &path).send().await)
            .await
            .map(|_| ())
    }

    /// An attempt's whole log, read page by page.
    pub async fn logs(&self, id: &str, task: &str, attempt: Option<u32>) -> Result<Vec<u8>, Error> {
        let mut log = Vec::new();
        self.logs_each(id, task, attempt, |page| {
            log.extend_from_slice(page);
            Ok(())
        })
        .await?;
        Ok(log)
    }

    /// An attempt's last `bytes` bytes of log (a failed step's last lines).
    pub async fn log_tail(
        &self,
        id: &str,
        task: &str,
        attempt: Option<u32>,
        bytes: u64,
    ) -> Result<Vec<u8>, Error> {
        let mut path = format!("/api/runs/{id}/logs/{task}?tail={bytes}");
        if let Some(a) = attempt {
            path.push_str(&format!("&attempt={a}"));
        }
        let r = self.answer(self.get(&path).send().await).await?;
        Ok(r.bytes()
            .await
            .map_err(|e| Error::Protocol(format!("reading a log: {e}")))?
            .to_vec())
    }

    /// Reads an attempt's log page by page, handing each to `page` (which
    /// may write it out), so a long log is never held whole.
    pub async fn logs_each(
        &self,
        id: &str,
        task: &str,
        attempt: Option<u32>,
        mut page: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), Error> {
        let mut offset = 0;
        loop {
            let (slice, _) = self.logs_from(id, task, attempt, offset).await?;
            page(&slice.bytes).map_err(|e| Error::Protocol(format!("writing the log: {e}")))?;
            if !slice.more() || slice.bytes.is_empty() {
                return Ok(());
            }
            offset = slice.end();
        }
    }

    /// A page of the log from byte `offset` on (later, if the server
    /// dropped the bytes before), and whether the attempt has finished.
    pub async fn logs_from(
        &self,
        id: &str,
        task: &str,
        attempt: Option<u32>,
        offset: u64,
    ) -> Result<(LogSlice, bool), Error> {
        let mut path = format!("/api/runs/{id}/logs/{task}?offset={offset}");
        if let Some(a) = attempt {
            path.push_str(&format!("&attempt={a}"));
        }
        let r = self.answer(self.get(&path).send().await).await?;
        let finished = r
            .headers()
            .get(crate::routes::FINISHED_HEADER)
            .is_some_and(|v| v == "true");
        let start = r
            .headers()
            .get(crate::routes::LOG_START_HEADER)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(offset);
        let header = |name: &str| -> Option<u64> {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok()?.parse().ok())
        };
        let log_end = header(crate::routes::LOG_END_HEADER);
        let bytes = r
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| Error::Protocol(e.to_string()))?;
        // A server without pages sends the whole rest of the log.
        let log_end = log_end.unwrap_or(start + bytes.len() as u64);
        Ok((
            LogSlice {
                start,
                bytes,
                log_end,
            },
            finished,
        ))
    }
}

/// Why a request got no answer, in a few words: reqwest's own chain repeats
/// the URL at every level, and only its innermost cause says what happened.
fn unreachable_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
