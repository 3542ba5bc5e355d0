//! An in-process [`JobQueue`]: jobs and reports live in memory for the life
//! of the process. Used by `weft run` (embedded mode) and by tests. Depends
//! on `weft-core` only.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::Notify;
use weft_core::ports::{Delivery, JobQueue, Report, ReportDelivery};
use weft_core::run::Job;
use weft_core::Error;

/// A FIFO of reports that wakes a waiting taker.
struct Fifo<T> {
    items: Mutex<VecDeque<T>>,
    ready: Notify,
}

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
        }
    }
}

impl<T> Fifo<T> {
    fn push_back(&self, item: T) {
        self.items.lock().expect("fifo lock").push_back(item);
        self.ready.notify_one();
    }

    fn push_front(&self, item: T) {
        self.items.lock().expect("fifo lock").push_front(item);
        self.ready.notify_one();
    }

    async fn pop(&self) -> T {
        loop {
            let notified = self.ready.notified();
            if let Some(item) = self.items.lock().expect("fifo lock").pop_front() {
                return item;
            }
            notified.await;
        }
    }
}

/// A pool's jobs: one FIFO per priority band, taken highest band first.
#[derive(Default)]
struct Pool {
    bands: Mutex<[VecDeque<Job>; 3]>,
    /// Wakes every waiting taker: each looks again, one gets the job.
    ready: Notify,
}

impl Pool {
    fn push_back(&self, job: Job) {
        let band = job.band().index();
        self.bands.lock().expect("pool lock")[band].push_back(job);
        self.ready.notify_waiters();
    }

    fn pop(&self) -> Option<Job> {
        let mut bands = self.bands.lock().expect("pool lock");
        bands.iter_mut().find_map(VecDeque::pop_front)
    }

    async fn wait(&self) {
        loop {
            let notified = self.ready.notified();
            if self
                .bands
                .lock()
                .expect("pool lock")
                .iter()
                .any(|b| !b.is_empty())
            {
                return;
            }
            notified.await;
        }
    }
}

/// The in-process queue. Cheap to clone; clones share the queue.
#[derive(Clone, Default)]
pub struct LocalJobQueue {
    pools: Arc<Mutex<HashMap<String, Arc<Pool>>>>,
    reports: Arc<Fifo<Report>>,
}

impl LocalJobQueue {
    pub fn new() -> Self {
        Self::default()
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

struct LocalReport {
    report: Option<Report>,
    reports: Arc<Fifo<Report>>,
}

impl Drop for LocalReport {
    fn drop(&mut self) {
        // Unacked: first in line again, so order is kept.
        if let Some(report) = self.report.take() {
            self.reports.push_front(report);
        }
    }
}

#[async_trait]
impl ReportDelivery for LocalReport {
    fn report(&self) -> &Report {
        self.report
            .as_ref()
            .expect("a live delivery holds its report")
    }

    async fn ack(mut self: Box<Self>) -> Result<(), Error> {
        self.report = None;
        Ok(())
    }
}

#[async_trait]
impl JobQueue for LocalJobQueue {
    async fn publish(&self, job: &Job) -> Result<(), Error> {
        self.pool(&job.pool).push_back(job.clone());
        Ok(())
    }

    async fn wait_for_job(&self, pool: &str) -> Result<(), Error> {
        self.pool(pool).wait().await;
        Ok(())
    }

    async fn try_take(&self, pool_name: &str) -> Result<Option<Box<dyn Delivery>>, Error> {
        let pool = self.pool(pool_name);
        Ok(pool.pop().map(|job| {
            Box::new(LocalDelivery {
                job: Some(job),
                pool,
            }) as Box<dyn Delivery>
        }))
    }

    async fn report(&self, _to: Option<&str>, report: &Report) -> Result<(), Error> {
        self.reports.push_back(report.clone());
        Ok(())
    }

    async fn next_report(&self) -> Result<Box<dyn ReportDelivery>, Error> {
        let report = self.reports.pop().await;
        Ok(Box::new(LocalReport {
            report: Some(report),
            reports: self.reports.clone(),
        }))
    }
}
