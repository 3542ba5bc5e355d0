//! An in-process [`JobQueue`]: jobs live in memory for the life of the
//! process. Used by `weft run` (embedded mode) and by tests. Depends on
//! `weft-core` only.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::{mpsc, Notify};
use weft_core::ports::{Delivery, JobQueue, Report};
use weft_core::run::Job;
use weft_core::Error;

#[derive(Default)]
struct Pool {
    jobs: Mutex<VecDeque<Job>>,
    ready: Notify,
}

impl Pool {
    fn push_back(&self, job: Job) {
        self.jobs.lock().expect("pool lock").push_back(job);
        self.ready.notify_one();
    }
}

/// The in-process queue. Cheap to clone; clones share the queue.
#[derive(Clone)]
pub struct LocalJobQueue {
    pools: Arc<Mutex<HashMap<String, Arc<Pool>>>>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports_rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Report>>>,
}

impl Default for LocalJobQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalJobQueue {
    pub fn new() -> Self {
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        Self {
            pools: Arc::default(),
            reports_tx,
            reports_rx: Arc::new(tokio::sync::Mutex::new(reports_rx)),
        }
    }

    fn pool(&self, name: &str) -> Arc<Pool> {
        self.pools
            .lock()
            .expect("pools lock")
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

struct LocalDelivery {
    job: Option<Job>,
    pool: Arc<Pool>,
}

impl Drop for LocalDelivery {
    fn drop(&mut self) {
        // Unsettled: back to the queue, as a broker does when a consumer dies.
        if let Some(job) = self.job.take() {
            self.pool.push_back(job);
        }
    }
}

#[async_trait]
impl Delivery for LocalDelivery {
    fn job(&self) -> &Job {
        self.job.as_ref().expect("a live delivery holds its job")
    }

    async fn ack(mut self: Box<Self>) -> Result<(), Error> {
        self.job = None;
        Ok(())
    }

    async fn reject(mut self: Box<Self>, requeue: bool) -> Result<(), Error> {
        if let Some(job) = self.job.take() {
            if requeue {
                self.pool.push_back(job);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl JobQueue for LocalJobQueue {
    async fn publish(&self, job: &Job) -> Result<(), Error> {
        self.pool(&job.pool).push_back(job.clone());
        Ok(())
    }

    async fn take(&self, pool_name: &str) -> Result<Box<dyn Delivery>, Error> {
        let pool = self.pool(pool_name);
        loop {
            let notified = pool.ready.notified();
            if let Some(job) = pool.jobs.lock().expect("pool lock").pop_front() {
                return Ok(Box::new(LocalDelivery {
                    job: Some(job),
                    pool: pool.clone(),
                }));
            }
            notified.await;
        }
    }

    async fn report(&self, report: &Report) -> Result<(), Error> {
        self.reports_tx
            .send(report.clone())
            .map_err(|_| Error::Closed("local report channel".into()))
    }

    async fn next_report(&self) -> Result<Report, Error> {
        self.reports_rx
            .lock()
            .await
            .recv()
            .await
            .ok_or_else(|| Error::Closed("local report channel".into()))
    }
}
