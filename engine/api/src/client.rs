//! The client the CLI uses to talk to `weft serve`.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::views::{RunSummary, RunView, SubmitRequest};
use crate::Error;

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
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
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn answer(
        &self,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<reqwest::Response, Error> {
        let response = response.map_err(|source| Error::Unreachable {
            url: self.base.clone(),
            source,
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body
            .get("error")
            .and_then(|m| m.as_str())
            .unwrap_or("the server gave no reason")
            .to_string();
        Err(Error::Api {
            status,
            message,
            details: body.get("details").cloned(),
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        response: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, Error> {
        self.answer(response)
            .await?
            .json()
            .await
            .map_err(|e| Error::Protocol(e.to_string()))
    }

    pub async fn submit(&self, request: &SubmitRequest) -> Result<RunSummary, Error> {
        self.json(
            self.http
                .post(self.url("/api/runs"))
                .json(request)
                .send()
                .await,
        )
        .await
    }

    pub async fn runs(&self, limit: usize) -> Result<Vec<RunSummary>, Error> {
        self.json(
            self.http
                .get(self.url(&format!("/api/runs?limit={limit}")))
                .send()
                .await,
        )
        .await
    }

    pub async fn run(&self, id: &str) -> Result<RunView, Error> {
        self.json(
            self.http
                .get(self.url(&format!("/api/runs/{id}")))
                .send()
                .await,
        )
        .await
    }

    pub async fn cancel(&self, id: &str) -> Result<(), Error> {
        self.answer(
            self.http
                .post(self.url(&format!("/api/runs/{id}/cancel")))
                .send()
                .await,
        )
        .await
        .map(|_| ())
    }

    pub async fn workers(&self) -> Result<Vec<weft_core::ports::WorkerInfo>, Error> {
        self.json(self.http.get(self.url("/api/workers")).send().await)
            .await
    }

    pub async fn logs(&self, id: &str, task: &str, attempt: Option<u32>) -> Result<Vec<u8>, Error> {
        Ok(self.logs_from(id, task, attempt, 0).await?.0)
    }

    /// The log from byte `offset` on, and whether the attempt has finished.
    pub async fn logs_from(
        &self,
        id: &str,
        task: &str,
        attempt: Option<u32>,
        offset: usize,
    ) -> Result<(Vec<u8>, bool), Error> {
        let mut url = self.url(&format!("/api/runs/{id}/logs/{task}?offset={offset}"));
        if let Some(a) = attempt {
            url.push_str(&format!("&attempt={a}"));
        }
        let r = self.answer(self.http.get(url).send().await).await?;
        let finished = r
            .headers()
            .get(crate::routes::FINISHED_HEADER)
            .is_some_and(|v| v == "true");
        let bytes = r
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| Error::Protocol(e.to_string()))?;
        Ok((bytes, finished))
    }
}
