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

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use redb::{Database, WriteTransaction};
use tokio::sync::oneshot;
use weft_core::Error;

/// Most writes in one transaction: a group is also a batch of work that
/// redb must hold in memory until it commits.
const MOST_IN_GROUP: usize = 128;

/// A write waiting for its transaction.
trait Pending: Send {
    /// Writes into `txn`; false if the write was refused. May be called
    /// again, in another transaction, after a failed one was aborted.
    fn write(&mut self, txn: &WriteTransaction) -> bool;
    /// Answers its writer: its own result once `committed` is Ok.
    fn answer(self: Box<Self>, committed: Result<(), Error>);
}

struct Write<T, F> {
    f: F,
    result: Option<Result<T, Error>>,
    tx: oneshot::Sender<Result<T, Error>>,
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
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    while group.len() < MOST_IN_GROUP {
                        match rx.try_recv() {
                            Ok(more) => group.push(more),
                            Err(_) => break,
                        }
                    }
                    commit_group(&db, group);
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
        let (tx, rx) = oneshot::channel();
        let pending = Box::new(Write {
            f,
            result: None,
            tx,
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

fn commit_group(db: &Database, mut group: Vec<Box<dyn Pending>>) {
    if group.len() > 1 {
        match db.begin_write() {
            Ok(txn) => {
                if group.iter_mut().all(|w| w.write(&txn)) {
                    let committed = txn.commit();
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
                    return;
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
                return;
            }
        }
    }
    for mut w in group {
        let committed = db
            .begin_write()
            .map_err(|e| Error::backend("starting a write", e))
            .and_then(|txn| match w.write(&txn) {
                true => txn.commit().map_err(|e| Error::backend("committing", e)),
                // Its own refusal is its answer.
                false => Ok(()),
            });
        w.answer(committed);
    }
}
