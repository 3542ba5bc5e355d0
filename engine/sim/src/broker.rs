//! The broker: RabbitMQ's part as weft relies on it. Queues per pool and
//! priority band (the highest band taken first) and one for reports; a delivery is held until acked, and goes back to its queue
//! when its holder's connection is lost (a killed process, a broker
//! restart) or the broker gives up on it (a consumer timeout). Messages may
//! arrive late (and so out of order) and twice (a publish retried after a
//! lost confirm). While the broker is down, publishing waits, as the AMQP
//! adapter retries until it is back. As RabbitMQ dispatches round-robin, a
//! message one consumer returned goes to another consumer of its queue, if
//! there is any, before it comes back to the first. Like RabbitMQ's quorum
//! pool queues, a job's queue counts the times it was taken back unacked
//! (a lost connection's returns too) and dead-letters it past
//! [`DELIVERY_LIMIT`], for a server to judge; like classic ones (a seed's
//! draw, `Scenario::classic_jobs`), it counts nothing, and a worker
//! dead-letters a job whose claim is past the limit. Either way a rejected
//! job is dead-lettered.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;
use weft_core::ports::{Delivery, JobQueue, PriorityBand, Report, ReportDelivery};
use weft_core::run::Job;
use weft_core::Error;

use crate::world::{Proc, World};

const REPORTS: &str = "(reports)";
const DEAD: &str = "(dead)";

/// Returns of one job before its queue dead-letters it. Lower than the
/// AMQP adapter's default (3), so that the simulation's faults dead-letter
/// jobs often: the servers' judgment of them (queued again, or failed as
/// crashing) is drilled with every other fault.
pub const DELIVERY_LIMIT: u32 = 1;

#[derive(Debug, Clone)]
enum Message {
    Job(Job),
    Report(Report),
}

#[derive(Debug)]
struct Queued {
    message: Message,
    visible_at: Instant,
    /// The process that returned it, if it was returned.
    returned_by: Option<u64>,
    /// How many times it was taken back unacked.
    returns: u32,
}

#[derive(Debug)]
struct Held {
    process: u64,
    queue: String,
    message: Message,
    returns: u32,
}

#[derive(Debug, Default)]
struct State {
    queues: BTreeMap<String, VecDeque<Queued>>,
    unacked: BTreeMap<u64, Held>,
    next_tag: u64,
    down_until: Option<Instant>,
    /// The live processes that take from each queue.
    consumers: BTreeMap<String, std::collections::BTreeSet<u64>>,
    /// Pool queues count no returns, as a single node's classic queues: a
    /// job that keeps crashing its workers is caught by its claim alone.
    classic_jobs: bool,
}

/// How the broker misbehaves.
#[derive(Debug, Default, Clone)]
pub struct BrokerFaults {
    /// A message becomes visible up to this long after it is published.
    pub max_delay: Duration,
    /// A message is published twice, this often.
    pub duplicate: f64,
}

/// The world's broker.
#[derive(Default)]
pub struct Broker {
    state: Mutex<State>,
    wake: Notify,
    pub faults: Mutex<BrokerFaults>,
}

impl Broker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("broker lock")
    }

    /// Pool queues of the classic kind (no delivery count), or quorum ones.
    pub fn set_classic_jobs(&self, classic: bool) {
        self.lock().classic_jobs = classic;
    }

    fn down(&self) -> Option<Instant> {
        self.lock().down_until.filter(|t| Instant::now() < *t)
    }

    /// Every delivery `process` held goes back to its queue.
    pub fn connection_lost(&self, world: &World, process: u64) {
        let mut s = self.lock();
        for consumers in s.consumers.values_mut() {
            consumers.remove(&process);
        }
        let tags: Vec<u64> = s
            .unacked
            .iter()
            .filter(|(_, h)| h.process == process)
            .map(|(t, _)| *t)
            .collect();
        for tag in tags {
            requeue(&mut s, tag, false);
        }
        drop(s);
        world.trace(format!("broker: connection of process {process} lost"));
        self.wake.notify_waiters();
    }

    /// The broker stops for `down`: every connection is lost, every held
    /// delivery goes back to its queue.
    pub fn restart(&self, world: &World, down: Duration) {
        let mut s = self.lock();
        s.down_until = Some(Instant::now() + down);
        let tags: Vec<u64> = s.unacked.keys().copied().collect();
        for tag in tags {
            requeue(&mut s, tag, false);
        }
        drop(s);
        world.trace(format!("broker: restarting, down for {down:?}"));
        self.wake.notify_waiters();
    }

    /// Gives up on one held delivery (as a consumer timeout does): it goes
    /// back to its queue while its holder still works on it.
    pub fn redeliver_one(&self, world: &World) {
        let mut s = self.lock();
        let tags: Vec<u64> = s.unacked.keys().copied().collect();
        if tags.is_empty() {
            return;
        }
        let tag = tags[world.rng(|r| r.range(0, tags.len() as u64 - 1)) as usize];
        requeue(&mut s, tag, false);
        drop(s);
        world.trace(format!("broker: delivery {tag} taken back from its holder"));
        self.wake.notify_waiters();
    }

    /// Messages not yet acked, in queues or held.
    pub fn pending(&self) -> usize {
        let s = self.lock();
        s.unacked.len() + s.queues.values().map(VecDeque::len).sum::<usize>()
    }

    fn publish(&self, world: &World, queue: &str, message: Message) {
        let faults = self.faults.lock().expect("faults lock").clone();
        let copies = if world.rng(|r| r.chance(faults.duplicate)) {
            2
        } else {
            1
        };
        let mut s = self.lock();
        for _ in 0..copies {
            let delay = world.rng(|r| r.range(0, faults.max_delay.as_millis() as u64));
            s.queues
                .entry(queue.to_string())
                .or_default()
                .push_back(Queued {
                    message: message.clone(),
                    visible_at: Instant::now() + Duration::from_millis(delay),
                    returned_by: None,
                    returns: 0,
                });
        }
        drop(s);
        self.wake.notify_waiters();
    }

    /// Waits for the next visible message of `queue`, held by `process`.
    async fn take(&self, process: &Proc, queue: &str) -> (u64, Message) {
        let queues = [queue.to_string()];
        loop {
            self.wait(process, &queues).await;
            if let Some(taken) = self.try_take(process, &queues) {
                return taken;
            }
        }
    }

    /// Waits until one of `queues` has a message visible to `process`.
    async fn wait(&self, process: &Proc, queues: &[String]) {
        loop {
            // Never returns for a dead process: only the living consume.
            process.gate().await;
            {
                let mut s = self.lock();
                for queue in queues {
                    s.consumers
                        .entry(queue.clone())
                        .or_default()
                        .insert(process.id);
                }
            }
            if let Some(up) = self.down() {
                tokio::time::sleep_until(up).await;
                continue;
            }
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_visible = match self.look(process, queues, false) {
                Looked::Taken(_) => return,
                Looked::NextVisible(at) => at,
            };
            let wait = next_visible.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(wait) => {}
            }
        }
    }

    /// The first message visible to `process` in `queues`, the first queue
    /// first, held by it; none if there is none now (or the broker is down).
    fn try_take(&self, process: &Proc, queues: &[String]) -> Option<(u64, Message)> {
        if self.down().is_some() {
            return None;
        }
        match self.look(process, queues, true) {
            Looked::Taken(taken) => taken,
            Looked::NextVisible(_) => None,
        }
    }

    /// Finds the first message visible to `process` in `queues` (taking it
    /// if `take`), or says when the next one becomes visible.
    fn look(&self, process: &Proc, queues: &[String], take: bool) -> Looked {
        let mut s = self.lock();
        let now = Instant::now();
        let mut next_visible: Option<Instant> = None;
        for queue in queues {
            let others = s.consumers.get(queue).is_some_and(|c| c.len() > 1);
            let q = s.queues.entry(queue.clone()).or_default();
            let for_me =
                |m: &Queued| m.visible_at <= now && !(others && m.returned_by == Some(process.id));
            let Some(i) = q.iter().position(for_me) else {
                let later = q
                    .iter()
                    .filter(|m| m.visible_at > now)
                    .map(|m| m.visible_at)
                    .min();
                next_visible = next_visible.into_iter().chain(later).min();
                continue;
            };
            if !take {
                return Looked::Taken(None);
            }
            let Queued {
                message, returns, ..
            } = q.remove(i).expect("found above");
            s.next_tag += 1;
            let tag = s.next_tag;
            s.unacked.insert(
                tag,
                Held {
                    process: process.id,
                    queue: queue.clone(),
                    message: message.clone(),
                    returns,
                },
            );
            return Looked::Taken(Some((tag, message)));
        }
        Looked::NextVisible(next_visible)
    }

    /// Settles delivery `tag`: acked, returned to its queue or rejected.
    /// Fails when the broker no longer knows it (taken back meanwhile).
    fn settle(&self, tag: u64, how: Settle) -> Result<(), Error> {
        let mut s = self.lock();
        if s.down_until.is_some_and(|t| Instant::now() < t) || !s.unacked.contains_key(&tag) {
            return Err(Error::Closed(format!(
                "sim broker: delivery {tag} is no longer held"
            )));
        }
        match how {
            Settle::Ack => {
                s.unacked.remove(&tag);
            }
            Settle::Return | Settle::Reject => {
                requeue(&mut s, tag, matches!(how, Settle::Reject));
                drop(s);
                self.wake.notify_waiters();
            }
        }
        Ok(())
    }
}

/// What becomes of a held message, as with RabbitMQ.
#[derive(Clone, Copy)]
enum Settle {
    /// Done with: forgotten.
    Ack,
    /// Back to its queue, counted.
    Return,
    /// Dead-lettered: a pool queue's job goes to the dead letters, anything
    /// else is dropped.
    Reject,
}

/// Puts a held delivery back at the head of its queue; a job taken back
/// more than [`DELIVERY_LIMIT`] times, or `rejected`, goes to the dead
/// letters instead (a rejected message of another queue is dropped).
fn requeue(s: &mut State, tag: u64, rejected: bool) {
    let Some(held) = s.unacked.remove(&tag) else {
        return;
    };
    let returns = held.returns + 1;
    // Pool queues only: like RabbitMQ's, the dead letters' queue counts nothing.
    let pool_job = matches!(held.message, Message::Job(_)) && held.queue != DEAD;
    if rejected && !pool_job {
        return;
    }
    let dead = pool_job && (rejected || (!s.classic_jobs && returns > DELIVERY_LIMIT));
    let queued = Queued {
        message: held.message,
        visible_at: Instant::now(),
        returned_by: Some(held.process),
        returns,
    };
    if dead {
        s.queues.entry(DEAD.into()).or_default().push_back(Queued {
            returned_by: None,
            returns: 0,
            ..queued
        });
    } else {
        s.queues.entry(held.queue).or_default().push_front(queued);
    }
}

/// What looking into queues found.
enum Looked {
    /// A visible message: taken, when asked to take it.
    Taken(Option<(u64, Message)>),
    /// None visible; the next becomes visible then, if any is queued.
    NextVisible(Option<Instant>),
}

/// The queues of `pool`'s bands, the first taken first.
fn band_queues(pool: &str) -> Vec<String> {
    PriorityBand::ALL.map(|band| band.queue_of(pool)).to_vec()
}

/// One process's connection to the world's broker.
pub struct SimQueue {
    pub process: Proc,
}

impl SimQueue {
    pub fn new(process: Proc) -> Self {
        Self { process }
    }

    async fn publish(&self, queue: &str, message: Message) {
        let world = &self.process.world;
        loop {
            self.process.gate().await;
            match world.broker.down() {
                Some(up) => tokio::time::sleep_until(up).await,
                None => break,
            }
        }
        world.broker.publish(world, queue, message);
    }
}

/// A held message.
struct SimDelivery<T> {
    world: Arc<World>,
    process: Proc,
    tag: u64,
    body: T,
    settled: bool,
}

impl<T> SimDelivery<T> {
    async fn settle(&mut self, how: Settle) -> Result<(), Error> {
        self.process.gate().await;
        self.settled = true;
        self.world.broker.settle(self.tag, how)
    }
}

impl<T> Drop for SimDelivery<T> {
    fn drop(&mut self) {
        // Unsettled and dropped by a live holder: back to the queue. (A dead
        // one's were taken back when it died.)
        if !self.settled && self.process.is_alive() {
            let _ = self.world.broker.settle(self.tag, Settle::Return);
        }
    }
}

#[async_trait]
impl Delivery for SimDelivery<Job> {
    fn job(&self) -> &Job {
        &self.body
    }

    async fn ack(mut self: Box<Self>) -> Result<(), Error> {
        self.settle(Settle::Ack).await
    }

    async fn reject(mut self: Box<Self>, requeue: bool) -> Result<(), Error> {
        self.settle(if requeue {
            Settle::Return
        } else {
            Settle::Reject
        })
        .await
    }
}

#[async_trait]
impl ReportDelivery for SimDelivery<Report> {
    fn report(&self) -> &Report {
        &self.body
    }

    async fn ack(mut self: Box<Self>) -> Result<(), Error> {
        self.settle(Settle::Ack).await
    }
}

#[async_trait]
impl JobQueue for SimQueue {
    async fn publish(&self, job: &Job) -> Result<(), Error> {
        self.process.world.trace(format!(
            "{}: publish {}/{}#{}",
            self.process.name, job.run_id, job.task, job.attempt
        ));
        let queue = job.band().queue_of(&job.pool);
        self.publish(&queue, Message::Job(job.clone())).await;
        Ok(())
    }

    async fn wait_for_job(&self, pool: &str) -> Result<(), Error> {
        self.process
            .world
            .broker
            .wait(&self.process, &band_queues(pool))
            .await;
        Ok(())
    }

    async fn try_take(&self, pool: &str) -> Result<Option<Box<dyn Delivery>>, Error> {
        self.process.gate().await;
        let world = &self.process.world;
        let Some((tag, message)) = world.broker.try_take(&self.process, &band_queues(pool)) else {
            return Ok(None);
        };
        let Message::Job(job) = message else {
            unreachable!("pools hold jobs")
        };
        world.trace(format!(
            "{}: took {}/{}#{} (delivery {tag})",
            self.process.name, job.run_id, job.task, job.attempt
        ));
        Ok(Some(Box::new(SimDelivery {
            world: world.clone(),
            process: self.process.clone(),
            tag,
            body: job,
            settled: false,
        })))
    }

    async fn report(&self, _to: Option<&str>, report: &Report) -> Result<(), Error> {
        let kind = match &report.kind {
            weft_core::ports::ReportKind::Started => "started",
            weft_core::ports::ReportKind::Finished { .. } => "finished",
            weft_core::ports::ReportKind::Cancel { .. } => "cancel",
            weft_core::ports::ReportKind::Decided { .. } => "decided",
        };
        self.process.world.trace(format!(
            "{}: report {}/{}#{} {kind} (execution {})",
            self.process.name, report.run_id, report.task, report.attempt, report.execution
        ));
        self.publish(REPORTS, Message::Report(report.clone())).await;
        Ok(())
    }

    fn delivery_limit(&self) -> Option<u32> {
        Some(DELIVERY_LIMIT)
    }

    async fn next_dead_job(&self) -> Result<Box<dyn Delivery>, Error> {
        let world = &self.process.world;
        let (tag, message) = world.broker.take(&self.process, DEAD).await;
        let Message::Job(job) = message else {
            unreachable!("dead letters are jobs")
        };
        world.trace(format!(
            "{}: dead letter {}/{}#{} (requeued {})",
            self.process.name, job.run_id, job.task, job.attempt, job.requeued
        ));
        Ok(Box::new(SimDelivery {
            world: world.clone(),
            process: self.process.clone(),
            tag,
            body: job,
            settled: false,
        }))
    }

    async fn next_report(&self) -> Result<Box<dyn ReportDelivery>, Error> {
        let world = &self.process.world;
        let (tag, message) = world.broker.take(&self.process, REPORTS).await;
        let Message::Report(report) = message else {
            unreachable!("the report queue holds reports")
        };
        Ok(Box::new(SimDelivery {
            world: world.clone(),
            process: self.process.clone(),
            tag,
            body: report,
            settled: false,
        }))
    }
}
