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

/// A change on the bus, with the server it came from.
#[derive(Serialize, Deserialize)]
struct OnTheBus {
    origin: String,
    change: RunChange,
}

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
        loop {
            let change = match ours.recv().await {
                Ok(change) => change,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!("{n} run changes not relayed: this server fell behind");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let said = OnTheBus {
                origin: out_origin.clone(),
                change,
            };
            let Ok(json) = serde_json::to_vec(&said) else {
                continue;
            };
            if let Err(e) = out_bus.publish(&json).await {
                tracing::debug!("relaying a run change: {e}");
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let deliver = |payload: Vec<u8>| match serde_json::from_slice::<OnTheBus>(&payload) {
                Ok(heard) if heard.origin != origin => {
                    let _ = tx.send(heard.change);
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
