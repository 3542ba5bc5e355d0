//! Group commit. redb makes one transaction durable with an fsync, and
//! takes one writer at a time, so a store that commits each write alone
//! spends its writers' time queued behind each other's fsyncs: several per
//! step (its claim, its events, its log), which made the disk, not the
//! steps, the limit of an embedded fan-out. The hot writes (events, logs,
//! claims, run records) go to one committer thread instead, which writes
//! those that arrived together in one transaction and commits them with
//! one fsync; each writer is answered only once its write is durable, as
//! before. A write refused in a group (a conflict, a fence) makes the group
//! start over with each write in a transaction of its own, so no refused
//! write leaves anything behind and the others are unchanged.
//!
//! An *eventual* write ([`Committer::write_eventual`]) is answered once it
//! is committed, before its fsync: it becomes durable with the next write
//! that is not eventual, or, if none comes, with an empty durable commit
//! at most [`DURABLE_WITHIN`] later. Commits are durable in order (redb
//! makes every earlier commit durable with a durable one), so a crash can
//! lose an eventual write only together with every write after it.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;
use weft_core::Error;

/// Most writes in one transaction: a group is also a batch of work that
/// redb must hold in memory until it commits.
const MOST_IN_GROUP: usize = 128;

/// Longest an eventual write waits for its fsync when no other write
/// brings one.
const DURABLE_WITHIN: Duration = Duration::from_millis(20);

/// A write waiting for its transaction.
trait Pending: Send {
    /// Writes into `txn`; false if the write was refused. May be called
    /// again, in another transaction, after a failed one was aborted.
    fn write(&mut self, txn: &WriteTransaction) -> bool;
    /// Answers its writer: its own result once `committed` is Ok.
    fn answer(self: Box<Self>, committed: Result<(), Error>);
    /// Whether it may be answered before its fsync.
    fn eventual(&self) -> bool;
}

struct Write<T, F> {
    f: F,
    result: Option<Result<T, Error>>,
    tx: oneshot::Sender<Result<T, Error>>,
    eventual: bool,
}

impl<T, F> Pending for Write<T, F>
where
    T: Send,
    F: FnMut(&WriteTransaction) -> Result<T, Error> + Send,
{
    fn write(&mut self, txn: &WriteTransaction) -> bool {
        let result = (self.f)(txn);
        let accepted = result.is_ok();
        self.result = Some(result);
        accepted
    }

    fn answer(self: Box<Self>, committed: Result<(), Error>) {
        let answer = match (committed, self.result) {
            (_, Some(Err(refused))) => Err(refused),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(Error::Closed("the write was never made".into())),
        };
        let _ = self.tx.send(answer);
    }

    fn eventual(&self) -> bool {
        self.eventual
    }
}

/// The committer thread and the way to it. Dropping the last handle ends
/// the thread once it has committed what it holds, and waits for it, so
/// the database file is closed when the store is.
pub(crate) struct Committer {
    tx: Option<mpsc::Sender<Box<dyn Pending>>>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    pub(crate) fn start(db: Arc<Database>) -> Self {
        let (tx, rx) = mpsc::channel::<Box<dyn Pending>>();
        let thread = std::thread::Builder::new()
            .name("weft-store-commit".into())
            .spawn(move || {
                // Whether a commit is not durable yet.
                let mut unflushed = false;
                loop {
                    let first = if unflushed {
                        match rx.recv_timeout(DURABLE_WITHIN) {
                            Ok(first) => first,
                            Err(mpsc::RecvTimeoutError::Timeout) => {
                                unflushed = !flush(&db);
                                continue;
                            }
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        }
                    } else {
                        match rx.recv() {
                            Ok(first) => first,
                            Err(_) => break,
                        }
                    };
                    let mut group = vec![first];
                    while group.len() < MOST_IN_GROUP {
                        match rx.try_recv() {
                            Ok(more) => group.push(more),
                            Err(_) => break,
                        }
                    }
                    if let Some(durable) = commit_group(&db, group) {
                        unflushed = !durable;
                    }
                }
                // The store is closing: what was answered stays.
                if unflushed {
                    flush(&db);
                }
            })
            .expect("starting the store's committer thread");
        Self {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Runs `f` in a write transaction, with the writes that come with it,
    /// and answers once that transaction is committed. `f` may run more
    /// than once (after a refused write of its group aborted the
    /// transaction), and is then rerun in a transaction of its own.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&WriteTransaction) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.send(f, false).await
    }

    /// As [`Committer::write`], but answered once committed, before its
    /// fsync: durable with the next write that is not eventual, or within
    /// [`DURABLE_WITHIN`].
    pub(crate) async fn write_eventual<T: Send + 'static>(
        &self,
        f: impl FnMut(&WriteTransaction) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.send(f, true).await
    }

    async fn send<T: Send + 'static>(
        &self,
        f: impl FnMut(&WriteTransaction) -> Result<T, Error> + Send + 'static,
        eventual: bool,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let pending = Box::new(Write {
            f,
            result: None,
            tx,
            eventual,
        });
        self.tx
            .as_ref()
            .ok_or_else(|| Error::Closed("the store is closed".into()))?
            .send(pending)
            .map_err(|_| Error::Closed("the store's committer has stopped".into()))?;
        rx.await
            .map_err(|_| Error::Closed("the store's committer has stopped".into()))?
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An empty durable commit, which makes the commits before it durable;
/// whether it was made.
fn flush(db: &Database) -> bool {
    let made = db
        .begin_write()
        .map_err(|e| e.to_string())
        .and_then(|txn| txn.commit().map_err(|e| e.to_string()));
    if let Err(e) = &made {
        tracing::warn!("making the store's last writes durable: {e}");
    }
    made.is_ok()
}

/// Begins a transaction for writes that are all `eventual` or not.
fn begin(db: &Database, eventual: bool) -> Result<WriteTransaction, redb::TransactionError> {
    let mut txn = db.begin_write()?;
    if eventual {
        // Only fails for a transaction that made a persistent savepoint.
        let _ = txn.set_durability(Durability::None);
    }
    Ok(txn)
}

/// Commits `group`; whether its last commit was durable (`None` when
/// nothing was committed).
fn commit_group(db: &Database, mut group: Vec<Box<dyn Pending>>) -> Option<bool> {
    if group.len() > 1 {
        let eventual = group.iter().all(|w| w.eventual());
        match begin(db, eventual) {
            Ok(txn) => {
                if group.iter_mut().all(|w| w.write(&txn)) {
                    let committed = txn.commit();
                    let made = committed.is_ok().then_some(!eventual);
                    for w in group {
                        w.answer(
                            committed
                                .as_ref()
                                .map_err(|e| {
                                    Error::backend(
                                        "committing",
                                        std::io::Error::other(e.to_string()),
                                    )
                                })
                                .copied(),
                        );
                    }
                    return made;
                }
                // One was refused, maybe after writing part of itself:
                // nothing of the group stays, and each goes alone.
                let _ = txn.abort();
            }
            Err(e) => {
                let e = e.to_string();
                for w in group {
                    w.answer(Err(Error::backend(
                        "starting a write",
                        std::io::Error::other(e.clone()),
                    )));
                }
                return None;
            }
        }
    }
    let mut made = None;
    for mut w in group {
        let eventual = w.eventual();
        let committed = begin(db, eventual)
            .map_err(|e| Error::backend("starting a write", e))
            .and_then(|txn| match w.write(&txn) {
                true => {
                    let committed = txn.commit().map_err(|e| Error::backend("committing", e));
                    if committed.is_ok() {
                        made = Some(!eventual);
                    }
                    committed
                }
                // Its own refusal is its answer.
                false => Ok(()),
            });
        w.answer(committed);
    }
    made
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};

    const TABLE: TableDefinition<&str, u64> = TableDefinition::new("t");

    /// Set in the child process that writes and then dies.
    const CHILD: &str = "WEFT_COMMIT_TEST_DB";

    fn put(key: &'static str) -> impl FnMut(&WriteTransaction) -> Result<(), Error> + Send {
        move |txn| {
            txn.open_table(TABLE)
                .and_then(|mut t| t.insert(key, 1).map(drop).map_err(Into::into))
                .map_err(|e| Error::backend("writing", std::io::Error::other(e.to_string())))
        }
    }

    /// In a child process: the writes `scenario` names, then an abort (no
    /// drop, no flush: as a kill would leave the file).
    fn child(path: &str, scenario: &str) {
        let db = Arc::new(Database::create(path).unwrap());
        let committer = Committer::start(db);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            match scenario {
                "alone" => {
                    committer.write_eventual(put("eventual")).await.unwrap();
                    std::thread::sleep(DURABLE_WITHIN * 10);
                }
                _ => {
                    committer.write_eventual(put("eventual")).await.unwrap();
                    committer.write(put("durable")).await.unwrap();
                }
            }
        });
        std::process::abort();
    }

    /// Runs `scenario` in a child process, then reads what survived it.
    fn survivors(test: &str, scenario: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, format!("{}\n{scenario}", path.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success(), "the child should have aborted");
        let db = Database::create(&path).unwrap();
        let read = db.begin_read().unwrap();
        let Ok(table) = read.open_table(TABLE) else {
            return Vec::new();
        };
        let mut keys: Vec<String> = table
            .iter()
            .unwrap()
            .map(|e| e.unwrap().0.value().to_string())
            .collect();
        keys.sort();
        keys
    }

    fn run_child_if_asked() -> bool {
        let Ok(asked) = std::env::var(CHILD) else {
            return false;
        };
        let (path, scenario) = asked.split_once('\n').unwrap();
        child(path, scenario);
        true
    }

    #[test]
    fn an_eventual_write_alone_is_durable_within_its_bound() {
        if run_child_if_asked() {
            return;
        }
        assert_eq!(
            survivors(
                "commit::tests::an_eventual_write_alone_is_durable_within_its_bound",
                "alone"
            ),
            ["eventual"]
        );
    }

    #[test]
    fn an_eventual_write_is_durable_with_the_next_durable_one() {
        if run_child_if_asked() {
            return;
        }
        assert_eq!(
            survivors(
                "commit::tests::an_eventual_write_is_durable_with_the_next_durable_one",
                "then-durable"
            ),
            ["durable", "eventual"]
        );
    }
}
