//! `weft worker`: takes jobs from RabbitMQ, records logs in Redis.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use weft_core::ports::{Clock, JobQueue, RunStore};
use weft_orchestrator::SystemClock;
use weft_queue_amqp::AmqpJobQueue;
use weft_store_redis::RedisRunStore;
use weft_worker::{Plugins, Worker};

use crate::config::Config;

#[derive(clap::Args)]
pub struct Args {
    /// Pools to take jobs from (repeatable). Default: from the config, else `default`.
    #[arg(long = "pool")]
    pools: Vec<String>,
    /// Steps run at once. Default: from the config, else the number of CPUs.
    /// For many short steps, one more than the CPUs keeps them busy through
    /// each step's start and end (`docs/performance.md`).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Name shown for this worker. Default: from the config.
    #[arg(long)]
    name: Option<String>,
    /// Offer this GPU to steps, as `INDEX:NAME` (repeatable); replaces what
    /// the driver reports. Default: from the config, else the CUDA driver's
    /// GPUs (those `CUDA_VISIBLE_DEVICES` leaves), else `nvidia-smi`'s.
    #[arg(long = "gpu", value_name = "INDEX:NAME")]
    gpus: Vec<String>,
    /// Where attempts get their scratch directories. Default: from the
    /// config, else `weft` in the temp directory.
    #[arg(long)]
    work_dir: Option<std::path::PathBuf>,
}

pub async fn worker(mut config: Config, args: Args) -> anyhow::Result<ExitCode> {
    // Before anything connects: a wrong `[telemetry]` is said at once.
    let spans = config.spans("weft-worker")?;
    if !args.pools.is_empty() {
        config.worker.pools = args.pools;
    }
    if let Some(problem) = config
        .worker
        .pools
        .iter()
        .find_map(|p| weft_core::spec::pool_name_problem(p))
    {
        anyhow::bail!("{problem} (--pool, or [worker] pools)");
    }
    if let Some(n) = args.concurrency {
        config.worker.concurrency = n.max(1);
    }
    if let Some(dir) = args.work_dir {
        config.worker.work_dir = dir;
    }
    if !args.gpus.is_empty() {
        let parsed = args
            .gpus
            .iter()
            .map(|g| {
                let (index, name) = g.split_once(':').unwrap_or((g.as_str(), "GPU"));
                let index = index
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--gpu {g}: write INDEX:NAME, e.g. 0:H100"))?;
                Ok(weft_core::ports::GpuSlot {
                    index,
                    name: name.to_string(),
                    memory_bytes: 0,
                    uuid: None,
                    busy: false,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        config.worker.gpus = Some(parsed);
    }
    if let Some(n) = args.name {
        config.worker.name = n;
    } else if config.worker.name == weft_worker::Options::default().name {
        config.worker.name = format!("worker-{}", std::process::id());
    }
    config.broker.prefetch = weft_worker::prefetch(config.worker.concurrency);
    let queue: Arc<dyn JobQueue> = Arc::new(AmqpJobQueue::connect(config.broker.clone()).await?);
    let redis = Arc::new(RedisRunStore::connect(config.redis.clone()).await?);
    let store: Arc<dyn RunStore> = redis.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let name = config.worker.name.clone();
    let pools = config.worker.pools.join(", ");
    let listener = tokio::net::TcpListener::bind(&config.worker_http.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", config.worker_http.listen))?;
    let status_url = format!("http://{}", listener.local_addr()?);
    crate::embedded::driver_gpus(&mut config.worker);
    let plugins = Plugins::from_options(redis.clone(), &config.worker)?;
    let keyring = config.keyring()?;
    if keyring.is_none() {
        tracing::info!("no secret key ([secrets] key-file or $WEFT_SECRET_KEY): steps that use secrets fail here");
    }
    let secrets = weft_worker::Secrets::new(redis.clone(), keyring);
    let artifacts = config.artifact_store(None)?;
    if artifacts.is_none() {
        tracing::info!(
            "no artifact store ([artifacts]): steps that use or declare artifacts fail here"
        );
    }
    let mut worker = Worker::new(queue, store, clock, config.worker)
        .with_registry(redis, Some(status_url.clone()))
        .with_plugins(plugins)
        .with_secrets(secrets);
    if let Some(store) = artifacts {
        worker = worker.with_artifacts(store);
    }
    if let Some(spans) = spans {
        worker = worker.with_spans(spans);
    }
    match crate::embedded::docker().await {
        Ok(runtime) => worker = worker.with_containers(runtime),
        Err(e) => eprintln!("weft: no container runtime, container steps will fail here: {e}"),
    }
    match crate::embedded::kernels(worker.options()) {
        Ok(runtime) => worker = worker.with_kernels(runtime),
        // Without GPUs it takes no GPU steps; with GPUs given, say so.
        Err(e) if worker.options().gpus.is_some() => {
            eprintln!("weft: this worker offers GPUs, but its cuda steps will fail: {e}")
        }
        Err(_) => {}
    }
    let stats = worker.stats();
    println!("weft worker {name} taking pools [{pools}]; status on {status_url}");
    let status = weft_api::status_router(Arc::new(move || stats.render()));
    // The same bounds on its clients as the API's: a stuck scraper holds nothing.
    tokio::spawn(weft_api::serve(
        listener,
        status,
        weft_api::Limits::default(),
        std::future::pending(),
    ));

    let (stop, stopped) = watch::channel(false);
    let mut running = tokio::spawn(worker.run(stopped));
    tokio::select! {
        result = &mut running => {
            result??;
            return Ok(ExitCode::SUCCESS);
        }
        _ = super::shutdown_signal() => {}
    }
    drain(
        &stop,
        &mut running,
        config.worker_http.drain_grace_ms,
        "unfinished jobs return to the queue",
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Stops a worker taking jobs and gives its running steps `grace_ms` to
/// finish; `afterwards` says what becomes of those that do not.
pub(crate) async fn drain(
    stop: &watch::Sender<bool>,
    running: &mut JoinHandle<Result<(), weft_worker::Error>>,
    grace_ms: u64,
    afterwards: &str,
) -> anyhow::Result<()> {
    eprintln!("weft: draining: no new jobs; waiting up to {grace_ms}ms for running steps");
    let _ = stop.send(true);
    match tokio::time::timeout(Duration::from_millis(grace_ms), running).await {
        Ok(result) => result??,
        Err(_) => eprintln!("weft: grace period over; {afterwards}"),
    }
    Ok(())
}
