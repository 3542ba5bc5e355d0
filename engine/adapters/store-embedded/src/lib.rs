//! A durable [`RunStore`] in one redb file under the data directory
//! (`.weft/weft.redb` by default). Every write is a committed transaction,
//! so history survives crashes and restarts. It is also the token, workflow,
//! plugin and worker store of `weft serve --embedded`. Depends on `weft-core` only.

mod accounts;
mod audit;
mod claims;
mod commit;
mod concurrency;
mod deliveries;
mod logs;
mod plugins;
mod removal;
mod secrets;
mod step_cache;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use weft_core::ports::{
    AttemptId, EventLog, Fence, LeaseRecord, Leases, LogSlice, RunIndex, RunRecord, StepLogs,
};
use weft_core::run::Event;
use weft_core::Error;

const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
/// The ids of the runs that have not ended (written with the run).
const UNFINISHED: TableDefinition<&str, ()> = TableDefinition::new("unfinished-runs");
const EVENTS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("events");
const EVENT_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("event_counts");
/// run -> its lease (`LeaseRecord` as JSON). The tables before fencing
/// (`leases`, `claims`) held other types; they are left alone, unread.
const LEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("leases-fenced");
/// "run/task/attempt" -> its claim (`ClaimRecord` as JSON)
const CLAIMS: TableDefinition<&str, &[u8]> = TableDefinition::new("claims-fenced");
/// worker name -> (expires at, info as JSON)
const WORKERS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("workers");

/// The embedded store. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedRunStore {
    db: Arc<Database>,
    /// Where the hot writes go, to be committed together.
    committer: Arc<commit::Committer>,
    path: PathBuf,
}

fn backend(context: &str) -> impl Fn(redb::Error) -> Error + '_ {
    move |e| Error::backend(context, e)
}

fn err<E: Into<redb::Error>>(context: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::backend(context, e.into())
}

/// The most memory redb's page cache may hold. Its default, 1 GiB, is a
/// ceiling the cache grows to under a steady stream of writes (a thousand
/// runs submitted while a thousand others wait grew the server by 750 MB);
/// the interior pages every lookup needs fit many times over in this.
pub const CACHE_BYTES: usize = 64 << 20;

impl EmbeddedRunStore {
    /// Opens (or creates) the store at `dir/weft.redb`.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::backend(format!("creating data directory {}", dir.display()), e))?;
        let path = dir.join("weft.redb");
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                // Who holds it, and what to do then, is the binary's to say.
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    Error::Conflict(format!("{} is in use by another process", path.display()))
                }
                e => backend(&format!("opening {}", path.display()))(e.into()),
            })?;
        let txn = db.begin_write().map_err(err("opening store"))?;
        {
            let indexed = txn
                .list_tables()
                .map_err(err("opening store"))?
                .any(|t| t.name() == UNFINISHED.name());
            let runs = txn.open_table(RUNS).map_err(err("creating tables"))?;
            let mut unfinished = txn.open_table(UNFINISHED).map_err(err("creating tables"))?;
            if !indexed {
                // A store written before the index: built once, here.
                for entry in runs.iter().map_err(err("indexing runs"))? {
                    let (id, v) = entry.map_err(err("indexing runs"))?;
                    if !decode::<RunRecord>(v.value())?.status.is_terminal() {
                        unfinished
                            .insert(id.value(), ())
                            .map_err(err("indexing runs"))?;
                    }
                }
            }
            txn.open_table(EVENTS).map_err(err("creating tables"))?;
            txn.open_table(EVENT_COUNTS)
                .map_err(err("creating tables"))?;
            txn.open_table(logs::LOG_CHUNKS)
                .map_err(err("creating tables"))?;
            txn.open_table(logs::NUMBERED_LOGS)
                .map_err(err("creating tables"))?;
            txn.open_table(LEASES).map_err(err("creating tables"))?;
            txn.open_table(WORKERS).map_err(err("creating tables"))?;
            txn.open_table(CLAIMS).map_err(err("creating tables"))?;
            txn.open_table(plugins::PLUGINS)
                .map_err(err("creating tables"))?;
            txn.open_table(accounts::TOKENS)
                .map_err(err("creating tables"))?;
            txn.open_table(accounts::WORKFLOWS)
                .map_err(err("creating tables"))?;
            txn.open_table(plugins::WASM)
                .map_err(err("creating tables"))?;
            txn.open_table(audit::AUDIT)
                .map_err(err("creating tables"))?;
            txn.open_table(secrets::SECRETS)
                .map_err(err("creating tables"))?;
            txn.open_table(step_cache::CACHE)
                .map_err(err("creating tables"))?;
            txn.open_table(deliveries::DELIVERIES)
                .map_err(err("creating tables"))?;
            txn.open_table(concurrency::CONCURRENCY)
                .map_err(err("creating tables"))?;
        }
        txn.commit().map_err(err("creating tables"))?;
        let db = Arc::new(db);
        Ok(Self {
            committer: Arc::new(commit::Committer::start(db.clone())),
            db,
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the blocking pool: redb commits fsync.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| Error::backend("store task", e))?
    }
}

fn claim_id(key: &AttemptId) -> String {
    format!("{}/{}/{}", key.run_id, key.task, key.attempt)
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::backend("encoding", e))
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::backend("decoding stored record", e))
}

/// A run's events from position `from` on, within `txn`.
fn events_from(txn: &redb::ReadTransaction, run_id: &str, from: u64) -> Result<Vec<Event>, Error> {
    let table = txn.open_table(EVENTS).map_err(err("reading events"))?;
    let mut out = Vec::new();
    for entry in table
        .range((run_id, from)..=(run_id, u64::MAX))
        .map_err(err("reading events"))?
    {
        let (_, v) = entry.map_err(err("reading events"))?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

fn put_run(txn: &redb::WriteTransaction, run: &RunRecord, must_be_new: bool) -> Result<(), Error> {
    {
        let mut runs = txn.open_table(RUNS).map_err(err("writing run"))?;
        let exists = runs
            .get(run.id.as_str())
            .map_err(err("reading run"))?
            .is_some();
        if must_be_new && exists {
            return Err(Error::Conflict(format!("run {} exists", run.id)));
        }
        if !must_be_new && !exists {
            return Err(Error::NotFound(format!("run {}", run.id)));
        }
        runs.insert(run.id.as_str(), encode(run)?.as_slice())
            .map_err(err("writing run"))?;
        let mut unfinished = txn.open_table(UNFINISHED).map_err(err("writing run"))?;
        if run.status.is_terminal() {
            unfinished
                .remove(run.id.as_str())
                .map_err(err("writing run"))?;
        } else {
            unfinished
                .insert(run.id.as_str(), ())
                .map_err(err("writing run"))?;
        }
    }
    Ok(())
}

#[async_trait]
impl RunIndex for EmbeddedRunStore {
    async fn create_run(&self, run: &RunRecord) -> Result<(), Error> {
        let run = run.clone();
        self.committer
            .write(move |txn| put_run(txn, &run, true))
            .await
    }

    async fn update_run(&self, run: &RunRecord) -> Result<(), Error> {
        let run = run.clone();
        self.committer
            .write(move |txn| put_run(txn, &run, false))
            .await
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>, Error> {
        let id = id.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("reading run"))?;
            let runs = txn.open_table(RUNS).map_err(err("reading run"))?;
            let found = runs.get(id.as_str()).map_err(err("reading run"))?;
            found.map(|g| decode(g.value())).transpose()
        })
        .await
    }

    async fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>, Error> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("listing runs"))?;
            let runs = txn.open_table(RUNS).map_err(err("listing runs"))?;
            let mut out: Vec<RunRecord> = Vec::new();
            for entry in runs.iter().map_err(err("listing runs"))? {
                let (_, v) = entry.map_err(err("listing runs"))?;
                out.push(decode(v.value())?);
            }
            out.sort_by(|a, b| {
                b.created_at
                    .cmp(&a.created_at)
                    .then_with(|| b.id.cmp(&a.id))
            });
            out.truncate(limit);
            Ok(out)
        })
        .await
    }

    async fn unfinished_runs(&self, limit: usize) -> Result<Vec<String>, Error> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("listing unfinished runs"))?;
            let unfinished = txn
                .open_table(UNFINISHED)
                .map_err(err("listing unfinished runs"))?;
            let mut out = Vec::new();
            for entry in unfinished
                .iter()
                .map_err(err("listing unfinished runs"))?
                .take(limit)
            {
                let (id, _) = entry.map_err(err("listing unfinished runs"))?;
                out.push(id.value().to_string());
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl EventLog for EmbeddedRunStore {
    async fn append_events(
        &self,
        run_id: &str,
        fence: &Fence,
        expected_len: u64,
        events: &[Event],
    ) -> Result<(), Error> {
        let (run_id, fence) = (run_id.to_string(), fence.clone());
        let encoded = events.iter().map(encode).collect::<Result<Vec<_>, _>>()?;
        self.committer
            .write(move |txn| {
                let lease = read_lease(txn, &run_id)?;
                if !LeaseRecord::admits(lease.as_ref(), &fence) {
                    return Err(fence.lost(&run_id));
                }
                let mut counts = txn
                    .open_table(EVENT_COUNTS)
                    .map_err(err("appending events"))?;
                let len = counts
                    .get(run_id.as_str())
                    .map_err(err("appending events"))?
                    .map_or(0, |g| g.value());
                if len != expected_len {
                    return Err(Error::LogMoved {
                        log: format!("run {run_id} events"),
                        expected: expected_len,
                        actual: len,
                    });
                }
                let mut table = txn.open_table(EVENTS).map_err(err("appending events"))?;
                for (i, e) in encoded.iter().enumerate() {
                    table
                        .insert((run_id.as_str(), len + i as u64), e.as_slice())
                        .map_err(err("appending events"))?;
                }
                counts
                    .insert(run_id.as_str(), len + encoded.len() as u64)
                    .map_err(err("appending events"))?;
                Ok(())
            })
            .await
    }

    async fn events(&self, run_id: &str) -> Result<Vec<Event>, Error> {
        let run_id = run_id.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("reading events"))?;
            events_from(&txn, &run_id, 0)
        })
        .await
    }

    async fn run_since(
        &self,
        run_id: &str,
        from: u64,
    ) -> Result<Option<(RunRecord, Vec<Event>)>, Error> {
        let run_id = run_id.to_string();
        self.blocking(move |db| {
            // One transaction: the record and the events agree.
            let txn = db.begin_read().map_err(err("reading run"))?;
            let runs = txn.open_table(RUNS).map_err(err("reading run"))?;
            let Some(record) = runs.get(run_id.as_str()).map_err(err("reading run"))? else {
                return Ok(None);
            };
            let record = decode(record.value())?;
            Ok(Some((record, events_from(&txn, &run_id, from)?)))
        })
        .await
    }
}

#[async_trait]
impl StepLogs for EmbeddedRunStore {
    async fn append_log(&self, key: &AttemptId, offset: u64, chunk: &[u8]) -> Result<(), Error> {
        let (key, chunk) = (key.clone(), chunk.to_vec());
        self.committer
            .write(move |txn| {
                if let Err(end) =
                    logs::append(txn, &key, offset, &chunk).map_err(err("appending log"))?
                {
                    return Err(Error::LogMoved {
                        log: format!("log of {}", claim_id(&key)),
                        expected: offset,
                        actual: end,
                    });
                }
                Ok(())
            })
            .await
    }

    async fn read_log_from(
        &self,
        key: &AttemptId,
        offset: u64,
        max_bytes: u64,
    ) -> Result<LogSlice, Error> {
        let key = key.clone();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("reading log"))?;
            logs::read_from(&txn, &key, offset, max_bytes).map_err(err("reading log"))
        })
        .await
    }
}

#[async_trait]
impl Leases for EmbeddedRunStore {
    async fn lease(
        &self,
        run_id: &str,
        owner: &str,
        now: u64,
        ttl_ms: u64,
    ) -> Result<Option<Fence>, Error> {
        let (run, owner) = (run_id.to_string(), owner.to_string());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("taking a lease"))?;
            let current = read_lease(&txn, &run)?;
            let Some(taken) = LeaseRecord::take(current.as_ref(), &owner, now, ttl_ms) else {
                return Ok(None);
            };
            write_lease(&txn, &run, &taken)?;
            txn.commit().map_err(err("committing a lease"))?;
            Ok(Some(taken.fence()))
        })
        .await
    }

    async fn release(&self, run_id: &str, fence: &Fence) -> Result<(), Error> {
        let (run, fence) = (run_id.to_string(), fence.clone());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("releasing a lease"))?;
            let current = read_lease(&txn, &run)?;
            if let Some(released) = LeaseRecord::release(current.as_ref(), &fence) {
                write_lease(&txn, &run, &released)?;
            }
            txn.commit().map_err(err("committing a lease"))
        })
        .await
    }
}

fn read_lease(txn: &redb::WriteTransaction, run: &str) -> Result<Option<LeaseRecord>, Error> {
    let leases = txn.open_table(LEASES).map_err(err("reading a lease"))?;
    let found = leases.get(run).map_err(err("reading a lease"))?;
    found.map(|g| decode(g.value())).transpose()
}

fn write_lease(txn: &redb::WriteTransaction, run: &str, lease: &LeaseRecord) -> Result<(), Error> {
    txn.open_table(LEASES)
        .map_err(err("taking a lease"))?
        .insert(run, encode(lease)?.as_slice())
        .map_err(err("taking a lease"))?;
    Ok(())
}

#[async_trait]
impl weft_core::ports::WorkerRegistry for EmbeddedRunStore {
    async fn heartbeat(
        &self,
        info: &weft_core::ports::WorkerInfo,
        ttl_ms: u64,
    ) -> Result<(), Error> {
        let (name, expires, body) = (
            info.name.clone(),
            info.seen_at.saturating_add(ttl_ms),
            encode(info)?,
        );
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("recording a heartbeat"))?;
            txn.open_table(WORKERS)
                .map_err(err("recording a heartbeat"))?
                .insert(name.as_str(), (expires, body.as_slice()))
                .map_err(err("recording a heartbeat"))?;
            txn.commit().map_err(err("committing a heartbeat"))
        })
        .await
    }

    async fn workers(&self, now: u64) -> Result<Vec<weft_core::ports::WorkerInfo>, Error> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("listing workers"))?;
            let table = txn.open_table(WORKERS).map_err(err("listing workers"))?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(err("listing workers"))? {
                let (_, v) = entry.map_err(err("listing workers"))?;
                let (expires, body) = v.value();
                if expires > now {
                    out.push(decode(body)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn leave(&self, name: &str) -> Result<(), Error> {
        let name = name.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("removing a worker"))?;
            txn.open_table(WORKERS)
                .map_err(err("removing a worker"))?
                .remove(name.as_str())
                .map_err(err("removing a worker"))?;
            txn.commit().map_err(err("committing"))
        })
        .await
    }
}
