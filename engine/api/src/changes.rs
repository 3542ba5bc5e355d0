//! Run changes for Server-Sent-Event clients, serialized once: with
//! hundreds of dashboards watching a busy run, each change is turned into
//! JSON one time, not once per client.

use std::sync::Arc;

use tokio::sync::broadcast;
use weft_orchestrator::{RunChange, Service};

/// How many serialized changes a slow client may fall behind before it is
/// told it lagged.
const BACKLOG: usize = 4096;

/// One change, ready to send.
#[derive(Debug)]
pub(crate) enum Change {
    Run {
        change: RunChange,
        json: String,
    },
    /// The feed itself fell this many changes behind the orchestrator.
    Lagged(u64),
}

/// The orchestrator's changes as JSON, shared by every `/api/events` stream.
#[derive(Clone)]
pub struct ChangeFeed {
    tx: broadcast::Sender<Arc<Change>>,
}

impl ChangeFeed {
    /// Follows `service`'s changes until it closes. Call inside a runtime.
    pub fn start(service: &Service) -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        let mut changes = service.watch();
        let out = tx.clone();
        tokio::spawn(async move {
            loop {
                let change = match changes.recv().await {
                    // Nobody listening: nothing to serialize.
                    Ok(_) if out.receiver_count() == 0 => continue,
                    Ok(change) => match serde_json::to_string(&change) {
                        Ok(json) => Change::Run { change, json },
                        Err(_) => continue,
                    },
                    Err(broadcast::error::RecvError::Lagged(n)) => Change::Lagged(n),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let _ = out.send(Arc::new(change));
            }
        });
        Self { tx }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }
}
