//! The world every simulated process lives in: one seeded generator, one
//! simulated clock (tokio's, paused: it jumps to the next timer whenever
//! every task waits), the trace, the ledger of step effects, and the
//! processes, each of which can be killed or paused at any await point.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use weft_core::ports::Clock;
use weft_core::run::{Millis, TaskId};
use weft_testkit::MemoryRunStore;

use crate::broker::Broker;
use crate::rng::Rng;

/// The simulated epoch: what `now` reads when a world starts.
pub const EPOCH_MS: Millis = 1_800_000_000_000;

/// One execution of a step's command that went as far as its side effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    pub run_id: String,
    pub task: TaskId,
    pub attempt: u32,
    pub worker: String,
    pub at: Millis,
}

/// Shared by every part of one simulation.
pub struct World {
    pub seed: u64,
    rng: Mutex<Rng>,
    start: Instant,
    trace: Mutex<Vec<String>>,
    pub effects: Mutex<Vec<Effect>>,
    pub violations: Mutex<Vec<String>>,
    /// What the store holds (durably: writes it acknowledged are never lost).
    pub store: MemoryRunStore,
    pub store_faults: Mutex<StoreFaults>,
    pub broker: Broker,
    next_process: AtomicU64,
}

/// How the store misbehaves right now.
#[derive(Debug, Default)]
pub struct StoreFaults {
    /// Calls fail (as when Redis is stopped) until then.
    pub down_until: Option<Instant>,
    /// Calls take up to this long.
    pub max_latency: Duration,
    /// A write is applied but its reply lost, this often.
    pub lost_reply: f64,
}

impl World {
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            seed,
            rng: Mutex::new(Rng::new(seed)),
            start: Instant::now(),
            trace: Mutex::new(Vec::new()),
            effects: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            store: MemoryRunStore::new(),
            store_faults: Mutex::new(StoreFaults::default()),
            broker: Broker::default(),
            next_process: AtomicU64::new(1),
        })
    }

    /// Simulated wall time, in milliseconds since the Unix epoch.
    pub fn now(&self) -> Millis {
        EPOCH_MS + self.elapsed().as_millis() as u64
    }

    pub fn elapsed(&self) -> Duration {
        Instant::now() - self.start
    }

    /// Draws from the world's generator.
    pub fn rng<T>(&self, f: impl FnOnce(&mut Rng) -> T) -> T {
        f(&mut self.rng.lock().expect("rng lock"))
    }

    /// Notes what happened, with the simulated time.
    pub fn trace(&self, what: impl AsRef<str>) {
        let t = self.elapsed();
        self.trace.lock().expect("trace lock").push(format!(
            "{:>4}.{:03} {}",
            t.as_secs(),
            t.subsec_millis(),
            what.as_ref()
        ));
    }

    pub fn trace_lines(&self) -> Vec<String> {
        self.trace.lock().expect("trace lock").clone()
    }

    pub fn violation(&self, what: impl Into<String>) {
        let what = what.into();
        self.trace(format!("VIOLATION {what}"));
        self.violations.lock().expect("violations lock").push(what);
    }

    pub fn store_down(&self) -> bool {
        let faults = self.store_faults.lock().expect("faults lock");
        faults.down_until.is_some_and(|t| Instant::now() < t)
    }

    /// A new process of this world.
    pub fn process(self: &Arc<Self>, name: impl Into<String>, skew_ms: i64) -> Arc<Process> {
        Arc::new(Process {
            world: self.clone(),
            id: self.next_process.fetch_add(1, Ordering::Relaxed),
            name: name.into(),
            alive: AtomicBool::new(true),
            paused_until: Mutex::new(None),
            skew_ms,
        })
    }
}

/// One simulated process (an orchestrator or a worker). Its ports pass
/// every call through [`Process::gate`], so killing it freezes it at
/// whatever await point it had reached: nothing it does afterwards reaches
/// the store, the broker or a step.
pub struct Process {
    pub world: Arc<World>,
    /// Unique in the world: the broker returns a dead process's deliveries by it.
    pub id: u64,
    pub name: String,
    alive: AtomicBool,
    paused_until: Mutex<Option<Instant>>,
    /// Its clock runs this far ahead (or behind) of the world's.
    pub skew_ms: i64,
}

impl Process {
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Kills it: it never runs another step of its own, and the broker
    /// takes back what it held (its connection is gone).
    pub fn kill(&self) {
        self.alive.store(false, Ordering::SeqCst);
        self.world.broker.connection_lost(&self.world, self.id);
    }

    /// Starves it: its next port calls wait until `until`, as a process
    /// the machine gives no CPU (or a long GC pause) does.
    pub fn pause(&self, until: Instant) {
        *self.paused_until.lock().expect("pause lock") = Some(until);
    }

    /// Waits while the process is paused; never returns once it is dead.
    pub async fn gate(&self) {
        loop {
            if !self.is_alive() {
                std::future::pending::<()>().await;
            }
            let until = *self.paused_until.lock().expect("pause lock");
            match until {
                Some(t) if Instant::now() < t => tokio::time::sleep_until(t).await,
                _ => return,
            }
        }
    }
}

/// A process's clock: the world's, with its skew.
pub struct SkewedClock(pub Arc<Process>);

impl Clock for SkewedClock {
    fn now(&self) -> Millis {
        self.0.world.now().saturating_add_signed(self.0.skew_ms)
    }
}

/// Shared, for handing to ports.
pub type Proc = Arc<Process>;

/// Where the engine's log lines go in a simulation: the world's trace.
#[derive(Clone)]
pub struct TraceWriter(pub Arc<World>);

impl std::io::Write for TraceWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        let line = line.trim_end();
        if !line.is_empty() {
            self.0.trace(format!("  log: {line}"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for TraceWriter {
    type Writer = TraceWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
