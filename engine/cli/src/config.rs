//! `weft.toml`: one typed configuration for every process, loaded once.
//!
//! Sources, later ones winning: built-in defaults, the file (`--config`,
//! `WEFT_CONFIG`, or `./weft.toml` if present), `WEFT_*` environment
//! variables, command-line flags. Every option is documented in
//! `docs/configuration.md`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Config {
    /// RabbitMQ (`weft serve`, `weft worker`).
    pub broker: weft_queue_amqp::Options,
    /// Redis (`weft serve`, `weft worker`).
    pub redis: weft_store_redis::Options,
    /// How `weft serve` drives runs.
    pub orchestrator: weft_orchestrator::Options,
    /// The HTTP API of `weft serve`.
    pub server: ServerOptions,
    /// `weft worker`.
    pub worker: weft_worker::Options,
    /// The status endpoint of `weft worker`.
    pub worker_http: WorkerHttpOptions,
    /// Commands that talk to a server (`submit`, `runs`, `show`, `logs`).
    pub client: ClientOptions,
    /// What each role may run on `weft serve` (none: no policy).
    pub policy: Option<weft_core::policy::Policy>,
    /// The keys secrets are sealed under (`weft serve`, `weft worker`).
    pub secrets: SecretsOptions,
    /// Plugins `weft serve` asks before it accepts a run, in order.
    pub admission: Vec<weft_api::app::AdmissionOptions>,
    /// Where steps' artifacts are kept (`weft serve`, `weft worker`; the
    /// embedded engine defaults to `<data-dir>/artifacts`). Servers and
    /// workers must name the same store.
    pub artifacts: Option<weft_artifacts_object::ArtifactOptions>,
    /// How long finished runs, logs and artifacts are kept (`weft serve`
    /// applies it every `every`; `weft gc` once, on the embedded store).
    pub retention: Option<weft_core::retention::RetentionOptions>,
    /// Saved workflows' `[[triggers.schedule]]`, fired by `weft serve`.
    pub scheduler: weft_api::app::SchedulerOptions,
    /// Where `weft serve` and `weft worker` send runs' traces (none: no
    /// traces).
    pub telemetry: Option<weft_telemetry_otlp::OtlpOptions>,
}

impl Config {
    /// The exporter of spans for the process named `service`, if
    /// `[telemetry]` is set.
    pub fn spans(
        &self,
        service: &str,
    ) -> anyhow::Result<Option<std::sync::Arc<dyn weft_core::ports::SpanSink>>> {
        let Some(options) = &self.telemetry else {
            return Ok(None);
        };
        let exporter = weft_telemetry_otlp::OtlpExporter::start(options, service)?;
        tracing::info!("traces go to {}", options.otlp_endpoint);
        Ok(Some(exporter))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct SecretsOptions {
    /// A file of keys, one per line, the sealing key first (`weft secret
    /// keygen` prints one); mode 0600, readable by weft's user alone.
    /// `$WEFT_SECRET_KEY` (the same, lines or commas) wins over it. The
    /// embedded store uses `<data-dir>/secret.key` when neither is set.
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ServerOptions {
    /// Address the API listens on. Default: `127.0.0.1:7420`.
    pub listen: String,
    /// Require bearer tokens on every route but `/healthz`. Default: true.
    /// Turn off only for a single-user server on a trusted loopback.
    pub auth: bool,
    /// A client must send a request's headers within this, in
    /// milliseconds (an idle kept-alive connection is closed after it
    /// too). Default: 10000.
    pub header_read_timeout_ms: u64,
    /// A request must be read and answered within this, in milliseconds
    /// (408 otherwise; event streams are not cut). Default: 60000.
    pub request_timeout_ms: u64,
    /// Connections served at once; more wait to be accepted. Default: 1024.
    pub max_connections: usize,
    /// Longest the compile of an uploaded plugin may take, in milliseconds.
    /// Default: 300000.
    pub max_plugin_compile_ms: u64,
    /// Wrong tokens one client address may send at once before it is
    /// answered 429. Default: 20.
    pub wrong_token_burst: u32,
    /// Wrong tokens per second a client address may send once its burst
    /// is spent. Default: 1.
    pub wrong_tokens_per_second: f64,
}

impl ServerOptions {
    pub fn limits(&self) -> weft_api::Limits {
        weft_api::Limits {
            header_read_timeout_ms: self.header_read_timeout_ms,
            request_timeout_ms: self.request_timeout_ms,
            max_connections: self.max_connections,
        }
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7420".into(),
            auth: true,
            header_read_timeout_ms: weft_api::Limits::default().header_read_timeout_ms,
            request_timeout_ms: weft_api::Limits::default().request_timeout_ms,
            max_connections: weft_api::Limits::default().max_connections,
            max_plugin_compile_ms: weft_wasm_host::Options::default().max_compile_ms,
            wrong_token_burst: weft_api::throttle::BURST,
            wrong_tokens_per_second: weft_api::throttle::PER_SECOND,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct WorkerHttpOptions {
    /// Address of `/healthz` and `/metrics`. Default: `127.0.0.1:7421`.
    pub listen: String,
    /// How long a stopping worker lets running steps finish, in
    /// milliseconds, before it exits and their jobs go back to the queue.
    /// Default: 30000.
    pub drain_grace_ms: u64,
}

impl Default for WorkerHttpOptions {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7421".into(),
            drain_grace_ms: 30_000,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ClientOptions {
    /// A `weft serve` URL; without one, commands use the embedded store.
    pub server: Option<String>,
    /// The bearer token to send (`weft token create` makes one).
    pub token: Option<String>,
}

impl Config {
    /// The artifact store `[artifacts]` names; `default_dir` (a directory)
    /// when it names none and one is given.
    pub fn artifact_store(
        &self,
        default_dir: Option<&Path>,
    ) -> anyhow::Result<Option<std::sync::Arc<dyn weft_core::ports::ArtifactStore>>> {
        let store = match (&self.artifacts, default_dir) {
            (Some(options), dir) => weft_artifacts_object::ObjectArtifactStore::open(
                options,
                &dir.map_or_else(|| PathBuf::from("artifacts"), Path::to_path_buf),
            )?,
            (None, Some(dir)) => weft_artifacts_object::ObjectArtifactStore::local(dir)?,
            (None, None) => return Ok(None),
        };
        Ok(Some(std::sync::Arc::new(store)))
    }

    /// The keyring from `$WEFT_SECRET_KEY` or `[secrets] key-file`, if either is set.
    pub fn keyring(&self) -> anyhow::Result<Option<std::sync::Arc<weft_secrets::Keyring>>> {
        Ok(weft_secrets::Keyring::load(self.secrets.key_file.as_deref())?.map(std::sync::Arc::new))
    }

    /// Loads the file (if any) and applies `WEFT_*` variables.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let path: Option<PathBuf> = match path {
            Some(p) => Some(p.to_path_buf()),
            None => std::env::var_os("WEFT_CONFIG")
                .map(PathBuf::from)
                .or_else(|| Some(PathBuf::from("weft.toml")).filter(|p| p.exists())),
        };
        let mut config = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("reading config {}: {e}", p.display()))?;
                toml::from_str(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", p.display()))?
            }
            None => Config::default(),
        };
        if let (Some(policy), Some(p)) = (&config.policy, &path) {
            policy
                .validate()
                .map_err(|e| anyhow::anyhow!("config {}: {e}", p.display()))?;
        }
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(v) = var("WEFT_BROKER_URL") {
            config.broker.url = v;
        }
        if let Some(v) = var("WEFT_REDIS_URL") {
            config.redis.url = v;
        }
        if let Some(v) = var("WEFT_PREFIX") {
            config.broker.prefix = v.clone();
            config.redis.prefix = v;
        }
        if let Some(v) = var("WEFT_LISTEN") {
            config.server.listen = v;
        }
        if let Some(v) = var("WEFT_WORKER_LISTEN") {
            config.worker_http.listen = v;
        }
        if let Some(v) = var("WEFT_SERVER") {
            config.client.server = Some(v);
        }
        if let Some(v) = var("WEFT_TOKEN") {
            config.client.token = Some(v);
        }
        if let Some(v) = var("WEFT_WORKER_NAME") {
            config.worker.name = v;
        }
        if let Some(v) = var("WEFT_LEASE_TTL_MS") {
            config.orchestrator.lease_ttl_ms = v
                .parse()
                .map_err(|_| anyhow::anyhow!("WEFT_LEASE_TTL_MS: `{v}` is not a number"))?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_and_policy_sections_read_and_refuse_typos() {
        let config: Config = toml::from_str(
            "[server]\nwrong-token-burst = 5\nwrong-tokens-per-second = 0.5\n\
             [policy]\nimages = [\"team/*\"]\n[policy.roles.operator]\nkinds = [\"container\"]\n",
        )
        .unwrap();
        assert_eq!(config.server.wrong_token_burst, 5);
        assert_eq!(config.server.wrong_tokens_per_second, 0.5);
        let policy = config.policy.unwrap();
        assert_eq!(policy.images, ["team/*"]);
        assert!(toml::from_str::<Config>("[server]\nwrong-token-brust = 5\n").is_err());
        assert!(toml::from_str::<Config>("[policy]\nimage = []\n").is_err());
        assert_eq!(Config::default().server.wrong_token_burst, 20);
    }
}
