//! An attempt's log on its way to the store: buffered, capped at the
//! worker's limit, flushed every 200 ms, and passed through the step's post
//! hooks (whole lines only) when it has any.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use weft_core::ports::{LogKey, LogSink, RunStore};

use crate::plugins::PostHooks;

/// How often buffered output is written to the store.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

pub(crate) struct StepLog {
    buffer: Mutex<Buffer>,
    store: Arc<dyn RunStore>,
    key: LogKey,
    filter: Option<Arc<PostHooks>>,
}

struct Buffer {
    pending: Vec<u8>,
    written: u64,
    max: u64,
    truncated: bool,
}

impl StepLog {
    pub(crate) fn new(
        store: Arc<dyn RunStore>,
        key: LogKey,
        max_bytes: u64,
        filter: Option<Arc<PostHooks>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            buffer: Mutex::new(Buffer {
                pending: Vec::new(),
                written: 0,
                max: max_bytes,
                truncated: false,
            }),
            store,
            key,
            filter,
        })
    }

    /// Flushes every 200 ms until aborted; call `finish` after aborting it.
    pub(crate) fn spawn_flusher(self: &Arc<Self>) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                this.flush(false).await;
            }
        })
    }

    /// Takes output; past the cap it is dropped, with one note.
    pub(crate) async fn push(&self, bytes: &[u8]) {
        let mut log = self.buffer.lock().await;
        let room = log
            .max
            .saturating_sub(log.written + log.pending.len() as u64) as usize;
        if bytes.len() <= room {
            log.pending.extend_from_slice(bytes);
        } else if !log.truncated {
            log.pending.extend_from_slice(&bytes[..room]);
            let note = format!("\n[weft: log truncated at {} bytes]\n", log.max);
            log.pending.extend_from_slice(note.as_bytes());
            log.truncated = true;
        }
    }

    /// Writes what is left.
    pub(crate) async fn finish(&self) {
        self.flush(true).await;
    }

    /// With post hooks, their log filter sees whole lines only, so a secret
    /// is never split across two chunks; the `last` flush takes the rest.
    async fn flush(&self, last: bool) {
        let chunk = {
            let mut log = self.buffer.lock().await;
            let cut = match self.filter {
                Some(_) if !last => log
                    .pending
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1),
                _ => log.pending.len(),
            };
            log.written += cut as u64;
            log.pending.drain(..cut).collect::<Vec<u8>>()
        };
        if chunk.is_empty() {
            return;
        }
        let chunk = match &self.filter {
            Some(f) => f.filter_log(chunk).await,
            None => chunk,
        };
        // A log write that fails must not fail the step; the outcome still counts.
        let _ = self.store.append_log(&self.key, &chunk).await;
    }
}

#[async_trait::async_trait]
impl LogSink for StepLog {
    async fn write(&self, chunk: &[u8]) {
        self.push(chunk).await;
    }
}
