//! Spans to an OpenTelemetry collector: [`OtlpExporter`] takes finished
//! spans (`weft_core::trace`) without waiting, and sends them in batches
//! (what waits while a request is out goes in the next),
//! OTLP over HTTP with JSON bodies (`POST {endpoint}/v1/traces`), which
//! the OpenTelemetry Collector, Jaeger and Tempo take. Bounded: at most
//! `max-queued` spans wait; past that, and when the collector refuses a
//! batch or cannot be reached, spans are dropped and counted, never
//! retried forever, and a run never waits on its traces.

mod encode;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;
use weft_core::ports::SpanSink;
use weft_core::trace::SpanRecord;

/// `[telemetry]` in the configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OtlpOptions {
    /// The collector's OTLP/HTTP base URL, e.g. `http://collector:4318`;
    /// spans go to `{endpoint}/v1/traces`.
    pub otlp_endpoint: String,
    /// Headers sent with each batch (a collector's auth token, say).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Most spans waiting to be sent; more are dropped.
    #[serde(default = "default_max_queued")]
    pub max_queued: usize,
}

fn default_max_queued() -> usize {
    8192
}

/// Most spans in one request.
const BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("telemetry: `{0}` is not an http:// URL (https is not built in: send to a local collector or a TLS proxy)")]
    Endpoint(String),
    #[error("telemetry: header `{0}` is not a valid HTTP header")]
    Header(String),
    #[error("telemetry: {0}")]
    Client(String),
}

/// Sends spans to the collector from a task of its own.
pub struct OtlpExporter {
    queue: mpsc::Sender<SpanRecord>,
    dropped: Arc<AtomicU64>,
}

impl OtlpExporter {
    /// Starts sending, as `service` (`service.name`), on the current
    /// tokio runtime.
    pub fn start(options: &OtlpOptions, service: &str) -> Result<Arc<Self>, Error> {
        let endpoint = options.otlp_endpoint.trim_end_matches('/');
        if !endpoint.starts_with("http://") {
            return Err(Error::Endpoint(options.otlp_endpoint.clone()));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &options.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::Header(name.clone()))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| Error::Header(name.to_string()))?;
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Client(e.to_string()))?;
        let (queue, waiting) = mpsc::channel(options.max_queued.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let sender = Sender {
            client,
            url: format!("{endpoint}/v1/traces"),
            service: service.to_string(),
            dropped: dropped.clone(),
        };
        tokio::spawn(sender.run(waiting));
        Ok(Arc::new(Self { queue, dropped }))
    }

    /// Spans dropped so far (the queue full, or a batch not taken).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl SpanSink for OtlpExporter {
    fn record(&self, spans: Vec<SpanRecord>) {
        for span in spans {
            if self.queue.try_send(span).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

struct Sender {
    client: reqwest::Client,
    url: String,
    service: String,
    dropped: Arc<AtomicU64>,
}

impl Sender {
    /// Sends what waits, up to a batch per request (spans that come while
    /// one is sent go in the next); ends once every exporter handle is
    /// gone and what waited is sent.
    async fn run(self, mut waiting: mpsc::Receiver<SpanRecord>) {
        let mut batch = Vec::with_capacity(BATCH);
        while waiting.recv_many(&mut batch, BATCH).await > 0 {
            self.send(std::mem::take(&mut batch)).await;
        }
    }

    async fn send(&self, batch: Vec<SpanRecord>) {
        let body = encode::export_request(&self.service, &batch);
        let sent = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await;
        let refused = match sent {
            Ok(answer) if answer.status().is_success() => return,
            Ok(answer) => format!("the collector answered {}", answer.status()),
            Err(e) => e.to_string(),
        };
        let total = self
            .dropped
            .fetch_add(batch.len() as u64, Ordering::Relaxed)
            + batch.len() as u64;
        tracing::warn!(
            "sending {} span(s) to {}: {refused}; dropped ({total} so far)",
            batch.len(),
            self.url
        );
    }
}
