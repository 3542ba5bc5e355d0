//! Embedded mode: an in-process queue and worker over the redb store.

use std::path::Path;
use std::sync::Arc;

use weft_core::ports::{Clock, ContainerRuntime, JobQueue, KernelRuntime, RunStore};
use weft_orchestrator::{Service, SystemClock};
use weft_queue_local::LocalJobQueue;
use weft_store_embedded::EmbeddedRunStore;
use weft_worker::{Options as WorkerOptions, Plugins, Worker};

pub fn open_store(data_dir: &Path) -> anyhow::Result<Arc<EmbeddedRunStore>> {
    let store = EmbeddedRunStore::open(data_dir).map_err(|e| match e {
        weft_core::Error::Conflict(_) => anyhow::anyhow!(
            "opening the store in {}: it is in use by another weft process: a `weft run` \
             (it holds the store until its run ends; `weft run --logs` prints the steps' \
             output as they run) or a `weft serve --embedded` (ask that one with \
             --server URL); or use another --data-dir",
            data_dir.display()
        ),
        e => anyhow::anyhow!("opening the store in {}: {e}", data_dir.display()),
    })?;
    Ok(Arc::new(store))
}

/// An orchestrator and a worker (with a plugin host) sharing one local queue.
pub fn engine(
    store: Arc<EmbeddedRunStore>,
    mut worker_options: WorkerOptions,
    containers: Option<Arc<dyn ContainerRuntime>>,
    orchestrator: weft_orchestrator::Options,
    keyring: Option<Arc<weft_secrets::Keyring>>,
    artifacts: Option<Arc<dyn weft_core::ports::ArtifactStore>>,
) -> anyhow::Result<(Service, Worker)> {
    driver_gpus(&mut worker_options);
    // No other worker could take a job this one holds.
    worker_options.prepare_ahead = true;
    let queue: Arc<dyn JobQueue> = Arc::new(LocalJobQueue::new());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let plugins = Plugins::from_options(store.clone(), &worker_options)?;
    let secrets = weft_worker::Secrets::new(store.clone(), keyring);
    let caching = weft_orchestrator::StepCaching {
        cache: store.clone(),
        secrets: Some(store.clone()),
    };
    let slots: Arc<dyn weft_core::ports::ConcurrencySlots> = store.clone();
    let run_store: Arc<dyn RunStore> = store;
    let mut worker = Worker::new(
        queue.clone(),
        run_store.clone(),
        clock.clone(),
        worker_options,
    )
    .with_plugins(plugins)
    .with_secrets(secrets);
    if let Some(runtime) = containers {
        worker = worker.with_containers(runtime);
    }
    if let Some(store) = artifacts {
        worker = worker.with_artifacts(store);
    }
    if let Ok(runtime) = kernels(worker.options()) {
        worker = worker.with_kernels(runtime);
    }
    let aborts = worker.aborts();
    let abort = Arc::new(
        move |run: &str, task: &weft_core::run::TaskId, attempt: u32| {
            aborts.abort(run, task, attempt)
        },
    );
    Ok((
        Service::new(queue, run_store, clock, abort, orchestrator)
            .with_step_cache(caching)
            .with_concurrency_slots(slots),
        worker,
    ))
}

/// The embedded store's keyring: `$WEFT_SECRET_KEY` or `[secrets]
/// key-file` if set, else `<data-dir>/secret.key`, made (mode 0600, one
/// new key) when `create` and it does not exist yet.
pub fn keyring(
    config: &crate::config::Config,
    data_dir: &Path,
    create: bool,
) -> anyhow::Result<Option<Arc<weft_secrets::Keyring>>> {
    if let Some(ring) = config.keyring()? {
        return Ok(Some(ring));
    }
    let path = data_dir.join("secret.key");
    if !path.exists() {
        if !create {
            return Ok(None);
        }
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::create_dir_all(data_dir)?;
        let key = weft_secrets::Keyring::generate_key()?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{key}"))
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        tracing::info!("made a secret key in {}", path.display());
    }
    Ok(weft_secrets::Keyring::load(Some(&path))?.map(Arc::new))
}

/// The local Docker engine, if one answers; `None` (and why) otherwise.
pub async fn docker() -> Result<Arc<dyn ContainerRuntime>, String> {
    match tokio::time::timeout(
        std::time::Duration::from_secs(5),
        weft_executor_docker::DockerRuntime::connect(),
    )
    .await
    {
        Ok(Ok(runtime)) => Ok(Arc::new(runtime)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the Docker engine did not answer within 5 s".into()),
    }
}

/// Offers the GPUs the CUDA driver reports, unless the worker was given
/// its GPUs; where the driver cannot be asked, the worker falls back to
/// `nvidia-smi`.
pub fn driver_gpus(options: &mut WorkerOptions) {
    if options.gpus.is_some() || !weft_gpu_cuda::driver_present() {
        return;
    }
    match weft_gpu_cuda::devices() {
        Ok(slots) => options.gpus = Some(slots),
        Err(e) => eprintln!("weft: {e}; asking nvidia-smi instead"),
    }
}

/// Kernel processes on this machine's GPUs (`weft cuda-host`), if the CUDA
/// driver is here; why not otherwise.
pub fn kernels(options: &WorkerOptions) -> Result<Arc<dyn KernelRuntime>, String> {
    if !weft_gpu_cuda::driver_present() {
        return Err("no CUDA driver (libcuda.so) on this machine".into());
    }
    let program = std::env::current_exe().map_err(|e| format!("finding the weft binary: {e}"))?;
    Ok(Arc::new(weft_gpu_cuda::CudaRuntime::new(
        weft_gpu_cuda::Options {
            program,
            args: vec!["cuda-host".into()],
            ptx_cache: options.work_dir.join("ptx-cache"),
        },
    )))
}
