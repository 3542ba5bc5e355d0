//! `weft serve`: the orchestrator and the HTTP API, over RabbitMQ and Redis.

use std::process::ExitCode;
use std::sync::Arc;

use weft_api::ApiState;
use weft_core::ports::{Clock, JobQueue, RunStore, TokenStore};
use weft_orchestrator::{Service, SystemClock};
use weft_queue_amqp::AmqpJobQueue;
use weft_store_redis::RedisRunStore;

use crate::config::Config;

pub async fn serve(mut config: Config, listen: Option<String>) -> anyhow::Result<ExitCode> {
    if let Some(l) = listen {
        config.server.listen = l;
    }
    let queue: Arc<dyn JobQueue> = Arc::new(AmqpJobQueue::connect(config.broker.clone()).await?);
    let redis = Arc::new(RedisRunStore::connect(config.redis.clone()).await?);
    let store: Arc<dyn RunStore> = redis.clone();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // Aborts reach remote workers through the attempt's claim: the worker
    // holding it sees `Aborted` on its next renewal and kills the step.
    let claims = store.clone();
    let abort = Arc::new(
        move |run: &str, task: &weft_core::run::TaskId, attempt: u32| {
            let (claims, key) = (
                claims.clone(),
                weft_core::ports::LogKey {
                    run_id: run.to_string(),
                    task: task.clone(),
                    attempt,
                },
            );
            tokio::spawn(async move {
                if let Err(e) = claims.abort_claim(&key).await {
                    eprintln!(
                        "weft: aborting {}/{}#{}: {e}",
                        key.run_id, key.task, key.attempt
                    );
                }
            });
        },
    );
    let service = Service::new(
        queue,
        store.clone(),
        clock,
        abort,
        config.orchestrator.clone(),
    );
    let router_task = service.spawn_router();
    let adopter_task = service.spawn_adopter();
    let dead_letter_task = service.spawn_dead_letters();
    let resumed = service.resume_unfinished().await?;
    if resumed > 0 {
        eprintln!("weft: resumed {resumed} unfinished run(s)");
    }
    let tokens: Option<Arc<dyn TokenStore>> = if config.server.auth {
        if let Some(token) = weft_api::first_admin_token(redis.as_ref(), clock_now()).await? {
            println!("weft: first start: admin token (shown once; keep it): {token}");
        }
        Some(redis.clone())
    } else {
        eprintln!("weft: warning: [server] auth = false: anyone who reaches the API may use it");
        None
    };
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", config.server.listen))?;
    println!("weft serve listening on http://{}", listener.local_addr()?);
    let metrics = weft_api::ServerMetrics::collect(&service);
    // Compiles uploads to validate them; it runs no plugin.
    let plugin_host = Arc::new(weft_wasm_host::Host::new(weft_wasm_host::Options {
        max_instances: 1,
        ..Default::default()
    })?);
    let changes = weft_api::ChangeFeed::start(&service);
    let app = weft_api::router(ApiState {
        changes,
        service,
        store,
        workers: redis.clone(),
        tokens,
        metrics,
        workflows: redis.clone(),
        plugins: redis,
        plugin_host,
        reads: Arc::new(weft_orchestrator::ReadCache::new()),
        finished: Arc::default(),
        live_workers: Arc::default(),
    });
    tokio::select! {
        served = axum::serve(listener, app).with_graceful_shutdown(super::shutdown_signal()) => served?,
        routed = router_task => {
            routed.map_err(|e| anyhow::anyhow!("report router: {e}"))??;
        }
        dead = dead_letter_task => {
            dead.map_err(|e| anyhow::anyhow!("dead-letter reader: {e}"))??;
        }
        adopted = adopter_task => {
            adopted.map_err(|e| anyhow::anyhow!("run adopter: {e}"))??;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn clock_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
