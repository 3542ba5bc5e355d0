//! Carries run changes between servers: this server publishes the changes
//! of the runs it drives on the [`ChangeBus`] and hears the others', so its
//! Server-Sent Events (the dashboard's live pages, `/api/events`) follow
//! every run, whichever server drives it. Best effort: while the bus is
//! down changes from other servers are missed (pages still read the run
//! itself when they load and on each change they do hear), and listening
//! starts again every second until it is back.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use weft_core::ports::ChangeBus;
use weft_orchestrator::{RunChange, Service};

/// How many changes from other servers may wait for the feed.
const BACKLOG: usize = 4096;
/// How long before listening again after the bus failed.
const RETRY: Duration = Duration::from_secs(1);

/// Changes on the bus, with the server they came from: gathered as the
/// SSE feed gathers them (`crate::changes::GATHER`), so a busy run costs
/// Redis one message per batch, not one per event.
#[derive(Serialize, Deserialize)]
struct OnTheBus {
    origin: String,
    changes: Vec<RunChange>,
}

/// Most changes in one message.
const BATCH_MAX: usize = 512;

/// Publishes `service`'s changes as `origin` and returns the changes other
/// servers publish. Call inside a runtime.
pub fn relay_changes(
    service: &Service,
    bus: Arc<dyn ChangeBus>,
    origin: String,
) -> broadcast::Receiver<RunChange> {
    let (tx, rx) = broadcast::channel(BACKLOG);
    let mut ours = service.watch();
    let (out_bus, out_origin) = (bus.clone(), origin.clone());
    tokio::spawn(async move {
        let next = |r: Result<RunChange, broadcast::error::RecvError>| match r {
            Ok(change) => Some(Some(change)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!("{n} run changes not relayed: this server fell behind");
                Some(None)
            }
            Err(broadcast::error::RecvError::Closed) => None,
        };
        loop {
            let Some(first) = next(ours.recv().await) else {
                return;
            };
            let mut changes: Vec<RunChange> = first.into_iter().collect();
            let deadline = tokio::time::Instant::now() + crate::changes::GATHER;
            while changes.len() < BATCH_MAX {
                match tokio::time::timeout_at(deadline, ours.recv()).await {
                    Ok(r) => match next(r) {
                        Some(change) => changes.extend(change),
                        None => break,
                    },
                    Err(_) => break,
                }
            }
            if changes.is_empty() {
                continue;
            }
            let said = OnTheBus {
                origin: out_origin.clone(),
                changes,
            };
            let Ok(json) = serde_json::to_vec(&said) else {
                continue;
            };
            if let Err(e) = out_bus.publish(&json).await {
                tracing::debug!("relaying run changes: {e}");
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let deliver = |payload: Vec<u8>| match serde_json::from_slice::<OnTheBus>(&payload) {
                Ok(heard) if heard.origin != origin => {
                    for change in heard.changes {
                        let _ = tx.send(change);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("a run change on the bus that does not read: {e}"),
            };
            if let Err(e) = bus.listen(&deliver).await {
                tracing::debug!(
                    "listening for other servers' run changes: {e}; again in {RETRY:?}"
                );
            }
            tokio::time::sleep(RETRY).await;
        }
    });
    rx
}
