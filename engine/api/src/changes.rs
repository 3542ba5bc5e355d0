//! Run changes for Server-Sent-Event clients, serialized once and sent in
//! batches: with hundreds of dashboards watching a busy run, each change is
//! turned into an SSE frame one time, not once per client, and a client is
//! woken once per batch (at most every [`GATHER`]), not once per change.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::broadcast;
use weft_orchestrator::{RunChange, Service};

/// How many batches a slow client may fall behind before it is told it
/// lagged.
const BACKLOG: usize = 1024;
/// How long the feed gathers changes after the first one before sending
/// them. A page redraws at most every 16 ms, so a change that waits this
/// long is not seen later; 600 changes a second reach each client as 50
/// wake-ups instead of 600.
pub(crate) const GATHER: Duration = Duration::from_millis(20);
/// Most changes in one batch, so a flood is still sent in pieces.
const BATCH_MAX: usize = 512;

/// Changes gathered together, each already an SSE frame.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Every frame of the batch, end to end: what an unfiltered stream sends.
    frames: Bytes,
    /// Each change (none for a `lagged` notice, which is for everyone) and
    /// where its frame lies in `frames`.
    entries: Vec<(Option<RunChange>, Range<usize>)>,
}

impl Batch {
    /// The changes in the batch, in order.
    pub(crate) fn changes(&self) -> impl Iterator<Item = &RunChange> {
        self.entries.iter().filter_map(|(c, _)| c.as_ref())
    }

    /// What a stream following `run` (or every run, for `None`) sends of
    /// this batch; `None` when nothing in it concerns that stream.
    pub(crate) fn frames_for(&self, run: Option<&str>) -> Option<Bytes> {
        let Some(run) = run else {
            return Some(self.frames.clone());
        };
        let mut wanted = self
            .entries
            .iter()
            .filter(|(c, _)| c.as_ref().is_none_or(|c| c.run_id == run))
            .map(|(_, range)| range.clone());
        let first = wanted.next()?;
        let Some(second) = wanted.next() else {
            return Some(self.frames.slice(first));
        };
        let mut out = Vec::with_capacity(first.len() + second.len());
        for range in [first, second].into_iter().chain(wanted) {
            out.extend_from_slice(&self.frames[range]);
        }
        Some(out.into())
    }
}

/// Builds one batch.
#[derive(Default)]
struct Gathering {
    frames: Vec<u8>,
    entries: Vec<(Option<RunChange>, Range<usize>)>,
}

impl Gathering {
    fn push(&mut self, change: Option<RunChange>, event: &str, data: &str) {
        let start = self.frames.len();
        self.frames.extend_from_slice(b"event: ");
        self.frames.extend_from_slice(event.as_bytes());
        // Compact JSON and numbers hold no line break, so one data line.
        self.frames.extend_from_slice(b"\ndata: ");
        self.frames.extend_from_slice(data.as_bytes());
        self.frames.extend_from_slice(b"\n\n");
        self.entries.push((change, start..self.frames.len()));
    }

    fn add(&mut self, received: Received) {
        match received {
            Received::Change(change) => {
                if let Ok(json) = serde_json::to_string(&change) {
                    self.push(Some(change), "run", &json);
                }
            }
            Received::Lagged(missed) => self.push(None, "lagged", &missed.to_string()),
        }
    }

    fn finish(self) -> Batch {
        Batch {
            frames: self.frames.into(),
            entries: self.entries,
        }
    }
}

enum Received {
    Change(RunChange),
    /// The feed itself fell this many changes behind the orchestrator.
    Lagged(u64),
}

/// The orchestrator's changes as SSE frames, shared by every stream.
#[derive(Clone)]
pub struct ChangeFeed {
    tx: broadcast::Sender<Arc<Batch>>,
}

impl ChangeFeed {
    /// Follows `service`'s changes until it closes. Call inside a runtime.
    pub fn start(service: &Service) -> Self {
        Self::start_with(service, None)
    }

    /// Follows `service`'s changes and those of `others` (other servers'
    /// runs, from [`crate::relay_changes`]), merged as they come.
    pub fn start_with(service: &Service, others: Option<broadcast::Receiver<RunChange>>) -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        let mut changes = match others {
            None => service.watch(),
            Some(others) => merged(service.watch(), others),
        };
        let out = tx.clone();
        tokio::spawn(async move {
            let receive = |r: Result<RunChange, broadcast::error::RecvError>| match r {
                Ok(change) => Some(Received::Change(change)),
                Err(broadcast::error::RecvError::Lagged(n)) => Some(Received::Lagged(n)),
                Err(broadcast::error::RecvError::Closed) => None,
            };
            loop {
                let Some(first) = receive(changes.recv().await) else {
                    return;
                };
                // Nobody listening: nothing to serialize.
                if out.receiver_count() == 0 {
                    continue;
                }
                let mut batch = Gathering::default();
                batch.add(first);
                let deadline = tokio::time::Instant::now() + GATHER;
                let mut open = true;
                while open && batch.entries.len() < BATCH_MAX {
                    match tokio::time::timeout_at(deadline, changes.recv()).await {
                        Ok(r) => match receive(r) {
                            Some(received) => batch.add(received),
                            None => open = false,
                        },
                        Err(_) => break,
                    }
                }
                if !batch.entries.is_empty() {
                    let _ = out.send(Arc::new(batch.finish()));
                }
                if !open {
                    return;
                }
            }
        });
        Self { tx }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.tx.subscribe()
    }
}

/// Both sources' changes on one receiver; a source that lags is said to
/// lag on it too.
fn merged(
    ours: broadcast::Receiver<RunChange>,
    others: broadcast::Receiver<RunChange>,
) -> broadcast::Receiver<RunChange> {
    let (tx, rx) = broadcast::channel(BACKLOG * 4);
    for mut source in [ours, others] {
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                match source.recv().await {
                    Ok(change) => {
                        let _ = tx.send(change);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(run: &str) -> RunChange {
        RunChange {
            run_id: run.into(),
            status: weft_core::run::RunStatus::Running,
            finished: false,
            event: weft_core::run::Event::Started { at: 0 },
            duration_ms: None,
        }
    }

    #[test]
    fn a_batch_sends_each_stream_only_its_runs_frames_in_order() {
        let mut g = Gathering::default();
        g.add(Received::Change(change("a")));
        g.add(Received::Change(change("b")));
        g.add(Received::Lagged(3));
        g.add(Received::Change(change("a")));
        let batch = g.finish();
        let all = String::from_utf8(batch.frames_for(None).unwrap().to_vec()).unwrap();
        assert_eq!(all.matches("event: run\ndata: {").count(), 3, "{all}");
        assert!(all.contains("event: lagged\ndata: 3\n\n"), "{all}");
        let a = String::from_utf8(batch.frames_for(Some("a")).unwrap().to_vec()).unwrap();
        assert_eq!(a.matches("\"run_id\":\"a\"").count(), 2, "{a}");
        assert!(!a.contains("\"run_id\":\"b\""), "{a}");
        assert!(a.find("lagged").unwrap() < a.rfind("\"run_id\":\"a\"").unwrap());
        let b = String::from_utf8(batch.frames_for(Some("b")).unwrap().to_vec()).unwrap();
        assert!(b.starts_with("event: run\ndata: {") && b.ends_with("event: lagged\ndata: 3\n\n"));
        for frame in all.split_terminator("\n\n") {
            assert_eq!(
                frame.lines().count(),
                2,
                "one event and one data line: {frame:?}"
            );
        }
        assert_eq!(batch.changes().count(), 3);
    }

    #[test]
    fn a_batch_without_a_streams_run_sends_it_nothing() {
        let mut g = Gathering::default();
        g.add(Received::Change(change("a")));
        let batch = g.finish();
        assert!(batch.frames_for(Some("z")).is_none());
    }
}
