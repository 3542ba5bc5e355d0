//! `weft serve`: the orchestrator and the HTTP API (with the dashboard),
//! over RabbitMQ and Redis, or with `--embedded` over the embedded store
//! with a worker in the same process.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::task::JoinHandle;
use weft_api::ApiState;
use weft_core::ports::{
    AuditLog, Clock, JobQueue, PluginStore, RunStore, SecretStore, TokenStore, WorkerRegistry,
    WorkflowStore,
};
use weft_orchestrator::{Service, SystemClock};
use weft_queue_amqp::AmqpJobQueue;
use weft_store_redis::RedisRunStore;

use crate::config::Config;
use crate::embedded;

/// The ports the API serves from: Redis's, or the embedded store's.
struct Backends {
    store: Arc<dyn RunStore>,
    workers: Arc<dyn WorkerRegistry>,
    tokens: Arc<dyn TokenStore>,
    workflows: Arc<dyn WorkflowStore>,
    plugins: Arc<dyn PluginStore>,
    audit: Arc<dyn AuditLog>,
    secrets: Arc<dyn SecretStore>,
    keyring: Option<Arc<weft_secrets::Keyring>>,
    artifacts: Option<Arc<dyn weft_core::ports::ArtifactStore>>,
    deliveries: Arc<dyn weft_core::ports::Deliveries>,
    /// Between the servers sharing the store: each streams every run's
    /// changes, whichever drives it. None for the embedded store (one
    /// server).
    bus: Option<Arc<dyn weft_core::ports::ChangeBus>>,
}

pub async fn serve(
    mut config: Config,
    listen: Option<String>,
    embedded: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    if let Some(l) = listen {
        config.server.listen = l;
    }
    match embedded {
        Some(data_dir) => serve_embedded(config, data_dir).await,
        None => serve_distributed(config).await,
    }
}

async fn serve_distributed(config: Config) -> anyhow::Result<ExitCode> {
    // Before anything connects: a wrong `[telemetry]` is said at once.
    let spans = config.spans("weft-server")?;
    let queue: Arc<dyn JobQueue> = Arc::new(AmqpJobQueue::connect(config.broker.clone()).await?);
    let redis = Arc::new(RedisRunStore::connect(config.redis.clone()).await?);
    let store: Arc<dyn RunStore> = redis.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Aborts reach remote workers through the attempt's claim: the worker
    // holding it sees `Aborted` on its next renewal and kills the step.
    let abort = weft_orchestrator::abort_through_claims(store.clone());
    let service = Service::new(queue, store, clock, abort, config.orchestrator.clone())
        .with_step_cache(weft_orchestrator::StepCaching {
            cache: redis.clone(),
            secrets: Some(redis.clone()),
        })
        .with_concurrency_slots(redis.clone());
    let service = match spans {
        Some(spans) => service.with_spans(spans),
        None => service,
    };
    if let Some(options) = config.retention.clone() {
        weft_api::app::spawn_retention(
            weft_api::app::RetentionOwned {
                runs: redis.clone(),
                removal: redis.clone(),
                cache: Some(redis.clone()),
                artifacts: config.artifact_store(None)?,
            },
            options,
            Arc::new(SystemClock),
        );
    }
    let backends = Backends {
        store: redis.clone(),
        workers: redis.clone(),
        tokens: redis.clone(),
        workflows: redis.clone(),
        plugins: redis.clone(),
        audit: redis.clone(),
        deliveries: redis.clone(),
        secrets: redis,
        keyring: config.keyring()?,
        artifacts: config.artifact_store(None)?,
        bus: Some(Arc::new(
            weft_store_redis::RedisChangeBus::connect(&config.redis).await?,
        )),
    };
    serve_api(&config, service, backends, None).await
}

/// The whole engine in this process over the embedded store: the API, the
/// orchestrator and one worker, with no RabbitMQ or Redis.
async fn serve_embedded(config: Config, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let store = embedded::open_store(data_dir)?;
    let data_dir = std::path::absolute(data_dir)?;
    let mut options = config.worker.clone();
    if options.work_dir == weft_worker::Options::default().work_dir {
        options.work_dir = data_dir.join("work");
    }
    if options.name == weft_worker::Options::default().name {
        options.name = format!("embedded-{}", std::process::id());
    }
    let containers = embedded::docker().await.ok();
    // The store's lock makes this the only process driving its runs, so
    // one owner name for every life of it: a restart takes its runs back
    // at once instead of waiting for its old leases to expire. The queue
    // was in the process, so their running attempts are sent again.
    let defaults = weft_orchestrator::Options::default();
    let orchestrator = weft_orchestrator::Options {
        owner: "embedded".into(),
        jobs_lost_on_restart: true,
        // Every slot is given back here, and heard of at once: polling
        // is only a safety net.
        slot_poll_ms: match config.orchestrator.slot_poll_ms {
            ms if ms == defaults.slot_poll_ms => 30_000,
            ms => ms,
        },
        ..config.orchestrator.clone()
    };
    let keyring = embedded::keyring(&config, &data_dir, true)?;
    let artifacts = config.artifact_store(Some(&data_dir.join("artifacts")))?;
    let (service, worker) = embedded::engine(
        store.clone(),
        options,
        containers,
        orchestrator,
        keyring.clone(),
        artifacts.clone(),
    )?;
    let mut worker = worker.with_registry(store.clone(), None);
    let service = match config.spans("weft-server")? {
        Some(spans) => {
            worker = worker.with_spans(spans.clone());
            service.with_spans(spans)
        }
        None => service,
    };
    let (stop_worker, worker_stop) = tokio::sync::watch::channel(false);
    let mut worker_task = tokio::spawn(worker.run(worker_stop));
    println!("weft serve: embedded engine in {}", data_dir.display());
    if let Some(options) = config.retention.clone() {
        weft_api::app::spawn_retention(
            weft_api::app::RetentionOwned {
                runs: store.clone(),
                removal: store.clone(),
                cache: Some(store.clone()),
                artifacts: artifacts.clone(),
            },
            options,
            Arc::new(SystemClock),
        );
    }
    let backends = Backends {
        store: store.clone(),
        workers: store.clone(),
        tokens: store.clone(),
        workflows: store.clone(),
        plugins: store.clone(),
        audit: store.clone(),
        deliveries: store.clone(),
        secrets: store,
        keyring,
        artifacts,
        bus: None,
    };
    serve_api(&config, service, backends, Some(&mut worker_task)).await?;
    // As `weft worker` drains; what is still running then is run again on
    // the next start.
    super::worker::drain(
        &stop_worker,
        &mut worker_task,
        config.worker_http.drain_grace_ms,
        "unfinished steps run again on the next start",
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Serves the API (and the dashboard) until a signal or a failing task.
async fn serve_api(
    config: &Config,
    service: Service,
    backends: Backends,
    worker: Option<&mut JoinHandle<Result<(), weft_worker::Error>>>,
) -> anyhow::Result<ExitCode> {
    service.open_mailbox().await?;
    let router_task = service.spawn_router();
    let adopter_task = service.spawn_adopter();
    let dead_letter_task = service.spawn_dead_letters();
    let resumed = service.resume_unfinished().await?;
    if resumed > 0 {
        eprintln!("weft: resumed {resumed} unfinished run(s)");
    }
    let tokens = if config.server.auth {
        if let Some(token) =
            weft_api::first_admin_token(backends.tokens.as_ref(), clock_now()).await?
        {
            println!("weft: first start: admin token (shown once; keep it): {token}");
        }
        Some(backends.tokens)
    } else {
        eprintln!("weft: warning: [server] auth = false: anyone who reaches the API may use it");
        None
    };
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", config.server.listen))?;
    let addr = listener.local_addr()?;
    println!("weft serve listening on http://{addr}");
    // Where a person opens it: a wildcard address is reached as localhost.
    let host = match addr.ip() {
        ip if ip.is_unspecified() => format!("localhost:{}", addr.port()),
        _ => addr.to_string(),
    };
    println!("weft: dashboard: http://{host}/");
    if config.server.auth {
        println!("weft: the dashboard asks for a token (`weft token create`; lost every admin token? `weft token recover` on this machine)");
    }
    let metrics = weft_api::ServerMetrics::collect(&service);
    // Compiles uploads to validate them; it runs no plugin.
    let plugin_host = Arc::new(weft_wasm_host::Host::new(weft_wasm_host::Options {
        max_instances: 1,
        max_compile_ms: config.server.max_plugin_compile_ms,
        ..Default::default()
    })?);
    // Runs admission plugins: its own host, so a compile of an upload
    // never waits for a review, nor the other way round.
    let admission_host = Arc::new(weft_wasm_host::Host::new(weft_wasm_host::Options {
        max_compile_ms: config.server.max_plugin_compile_ms,
        ..Default::default()
    })?);
    let admission =
        weft_api::app::Admission::new(&config.admission, admission_host, backends.plugins.clone())
            .map_err(anyhow::Error::msg)?;
    // This process's name on the bus: its changes are not heard back.
    let origin = format!("serve-{}-{}", std::process::id(), clock_now());
    let others = backends
        .bus
        .clone()
        .map(|bus| weft_api::relay_changes(&service, bus, origin));
    let changes = weft_api::ChangeFeed::start_with(&service, others);
    let state = ApiState {
        changes,
        service,
        store: backends.store,
        workers: backends.workers,
        tokens,
        metrics,
        workflows: backends.workflows,
        plugins: backends.plugins,
        plugin_host,
        reads: Arc::new(weft_orchestrator::ReadCache::new()),
        finished: Arc::default(),
        live_workers: Arc::default(),
        auth_throttle: Arc::new(weft_api::AuthThrottle::new(
            config.server.wrong_token_burst,
            config.server.wrong_tokens_per_second,
        )),
        policy: config.policy.clone().map(Arc::new),
        audit: backends.audit,
        secrets: backends.secrets,
        keyring: backends.keyring,
        artifacts: backends.artifacts,
        admission: Arc::new(admission),
        deliveries: backends.deliveries,
        hooks: Arc::default(),
    };
    weft_api::app::spawn_follow_ups(state.clone());
    state
        .service
        .set_children(Arc::new(weft_api::app::Children::new(state.clone())));
    if config.scheduler.enabled {
        weft_api::app::spawn_scheduler(state.clone(), config.scheduler.clone());
    }
    let app = weft_api::router(state);
    let worker = async {
        match worker {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        served = weft_api::serve(listener, app, config.server.limits(), super::shutdown_signal()) => served?,
        routed = router_task => {
            routed.map_err(|e| anyhow::anyhow!("report router: {e}"))??;
        }
        dead = dead_letter_task => {
            dead.map_err(|e| anyhow::anyhow!("dead-letter reader: {e}"))??;
        }
        adopted = adopter_task => {
            adopted.map_err(|e| anyhow::anyhow!("run adopter: {e}"))??;
        }
        worked = worker => {
            worked.map_err(|e| anyhow::anyhow!("worker: {e}"))??;
            anyhow::bail!("the worker stopped on its own");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn clock_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
