//! An attempt's log on its way to the store: the one writer of that log
//! (the executor's output, the plugin hooks' lines and the worker's notes
//! all go through it), capped at the worker's limit, flushed every 200 ms
//! or whenever 256 KiB wait, and passed through the step's post hooks
//! (whole lines only) when it has any, with the attempt's secrets masked
//! first. What a run cannot keep (an oversized failure reason or hook
//! error) is written here whole before it is cut ([`bound_texts`]).
//!
//! Memory stays bounded whatever the step prints: past 1 MiB waiting, the
//! writer waits for the store (so a step printing faster than the store
//! takes it blocks on its own output). Each write goes at the byte where
//! the stored log ends, so one tried again after a lost reply is found
//! there, never doubled; while the store fails, writes are tried again,
//! and only after a minute of failures is what waits dropped, with a note.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use weft_core::ports::{AttemptId, LogSink, StepLogs};
use weft_core::run::{HookRun, Outcome, MAX_TEXT_BYTES};

use weft_secrets::Masker;

use crate::plugins::PostHooks;

/// How often buffered output is written to the store.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// A write goes out as soon as this much waits.
const FLUSH_AT: usize = 256 << 10;
/// Past this much waiting, the writer waits for the store.
const MAX_PENDING: usize = 1 << 20;
/// How long the store may fail before what waits is dropped.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
/// How much of the stored log is kept at hand for post hooks.
pub(crate) const TAIL_BYTES: usize = 64 << 10;

pub(crate) struct StepLog {
    writer: Mutex<Writer>,
    store: Arc<dyn StepLogs>,
    key: AttemptId,
    /// The post hooks' filter, once they have started.
    filter: SyncMutex<Option<Arc<PostHooks>>>,
    /// The attempt's secrets, masked before anything else sees the output.
    masker: SyncMutex<Option<Arc<Masker>>>,
    /// Whether the next stderr byte begins a line (to be marked).
    err_line_start: SyncMutex<bool>,
}

struct Writer {
    /// Output not yet filtered.
    pending: Vec<u8>,
    /// Filtered, waiting for the store.
    ready: Vec<u8>,
    /// Bytes of output taken, against the cap.
    taken: u64,
    max: u64,
    truncated: bool,
    /// Where the stored log ends: the offset of the next write.
    stored: u64,
    /// Lengths of writes tried at `stored` whose outcome is unknown (the
    /// store failed, but may have taken them before it did). `ready` only
    /// grows at its end meanwhile, so each was a prefix of it.
    in_doubt: Vec<u64>,
    /// Since when writes have been failing.
    failing_since: Option<Instant>,
    /// Bytes dropped after a minute of failures, not yet noted in the log.
    dropped: u64,
    /// The end of what was stored, for post hooks.
    tail: VecDeque<u8>,
}

impl StepLog {
    pub(crate) fn new(store: Arc<dyn StepLogs>, key: AttemptId, max_bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            writer: Mutex::new(Writer {
                pending: Vec::new(),
                ready: Vec::new(),
                taken: 0,
                max: max_bytes,
                truncated: false,
                stored: 0,
                in_doubt: Vec::new(),
                failing_since: None,
                dropped: 0,
                tail: VecDeque::new(),
            }),
            store,
            key,
            filter: SyncMutex::new(None),
            masker: SyncMutex::new(None),
            err_line_start: SyncMutex::new(true),
        })
    }

    /// From now on, output passes through these post hooks.
    pub(crate) fn set_filter(&self, hooks: Arc<PostHooks>) {
        *self.filter.lock().expect("filter lock") = Some(hooks);
    }

    /// From now on, the attempt's secrets are masked in its output.
    pub(crate) fn set_masker(&self, masker: Arc<Masker>) {
        if !masker.is_empty() {
            *self.masker.lock().expect("masker lock") = Some(masker);
        }
    }

    fn masker(&self) -> Option<Arc<Masker>> {
        self.masker.lock().expect("masker lock").clone()
    }

    fn filter(&self) -> Option<Arc<PostHooks>> {
        self.filter.lock().expect("filter lock").clone()
    }

    /// Flushes every 200 ms until aborted; call `finish` after aborting it.
    pub(crate) fn spawn_flusher(self: &Arc<Self>) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                let mut w = this.writer.lock().await;
                this.flush(&mut w, false).await;
            }
        })
    }

    /// Takes output; past the cap it is dropped, with one note. Waits while
    /// too much is waiting for the store.
    pub(crate) async fn push(&self, bytes: &[u8]) {
        let mut w = self.writer.lock().await;
        let room = w.max.saturating_sub(w.taken) as usize;
        if bytes.len() <= room {
            w.pending.extend_from_slice(bytes);
            w.taken += bytes.len() as u64;
        } else if !w.truncated {
            w.pending.extend_from_slice(&bytes[..room]);
            w.taken += room as u64;
            let note = format!("\n[weft: log truncated at {} bytes]\n", w.max);
            w.pending.extend_from_slice(note.as_bytes());
            w.truncated = true;
        }
        let mut tries = 0;
        while w.pending.len() + w.ready.len() >= FLUSH_AT {
            if self.flush(&mut w, false).await {
                continue;
            }
            if w.pending.len() + w.ready.len() < MAX_PENDING {
                break;
            }
            tries += 1;
            tokio::time::sleep(crate::claim::backoff(tries)).await;
        }
    }

    /// Takes output the step wrote to its stderr: each of its lines marked
    /// (`weft_core::log_format`). A secret on such a line is still found:
    /// the masker looks for a many-line value line by line.
    pub(crate) async fn push_err(&self, bytes: &[u8]) {
        let marked = {
            let mut start = self.err_line_start.lock().expect("stderr line lock");
            weft_core::log_format::mark_stderr(bytes, &mut start)
        };
        self.push(&marked).await;
    }

    /// Writes what is left, trying for as long as the store fails (up to
    /// the minute after which it gives up).
    pub(crate) async fn finish(&self) {
        let mut w = self.writer.lock().await;
        let mut tries = 0;
        while !self.flush(&mut w, true).await {
            tries += 1;
            tokio::time::sleep(crate::claim::backoff(tries)).await;
        }
    }

    /// The last `TAIL_BYTES` of what was stored (after filtering).
    pub(crate) async fn tail(&self) -> Vec<u8> {
        self.writer.lock().await.tail.iter().copied().collect()
    }

    /// Moves waiting output to the store. With secrets to mask or post
    /// hooks, whole lines go out only (so a secret is never split across
    /// two writes), unless a line is longer than a write, when the last
    /// bytes a secret could start in wait for more; the `last` flush takes
    /// the rest. True once nothing that can go out waits.
    async fn flush(&self, w: &mut Writer, last: bool) -> bool {
        let (filter, masker) = (self.filter(), self.masker());
        let whole_lines = filter.is_some() || masker.is_some();
        let cut = match whole_lines {
            true if !last => match w.pending.iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None if w.pending.len() >= FLUSH_AT => {
                    let held = masker.as_ref().map_or(0, |m| m.longest().saturating_sub(1));
                    w.pending.len().saturating_sub(held)
                }
                None => 0,
            },
            _ => w.pending.len(),
        };
        if cut > 0 {
            let mut raw: Vec<u8> = w.pending.drain(..cut).collect();
            if let Some(m) = &masker {
                raw = m.mask_bytes(&raw);
            }
            let filtered = match &filter {
                Some(f) => f.filter_log(raw).await,
                None => raw,
            };
            w.ready.extend_from_slice(&filtered);
        }
        if w.dropped > 0 {
            // Said once, ahead of what comes next; counted again if it too is lost.
            let note = format!(
                "\n[weft: {} bytes of this log were lost: the store was unreachable for a minute]\n",
                w.dropped
            );
            w.ready.splice(0..0, note.into_bytes());
            w.dropped = 0;
        }
        if w.ready.is_empty() {
            return true;
        }
        let offset = w.stored;
        match self.store.append_log(&self.key, offset, &w.ready).await {
            Ok(()) => {}
            Err(weft_core::Error::LogMoved { actual, .. }) => {
                let landed = actual.saturating_sub(offset);
                let ours = actual > offset
                    && landed <= w.ready.len() as u64
                    && (landed == w.ready.len() as u64 || w.in_doubt.contains(&landed));
                w.in_doubt.clear();
                w.stored = actual;
                if !ours {
                    // The log ends elsewhere (another execution of this
                    // attempt wrote first): go on from its end.
                    return false;
                }
                // A write tried before, whose reply was lost, had landed:
                // those bytes are stored; what came after them goes next
                // (written again whole, they would be doubled).
                let written: Vec<u8> = w.ready.drain(..landed as usize).collect();
                w.failing_since = None;
                w.keep_tail(written);
                return w.ready.is_empty() && (w.pending.is_empty() || (whole_lines && !last));
            }
            Err(e) => {
                let tried = w.ready.len() as u64;
                if !w.in_doubt.contains(&tried) {
                    w.in_doubt.push(tried);
                }
                let since = *w.failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() < GIVE_UP_AFTER {
                    tracing::warn!(attempt = %crate::claim::label(&self.key), "writing the step log: {e}; trying again");
                    return false;
                }
                let lost = w.ready.len() + w.pending.len();
                tracing::warn!(attempt = %crate::claim::label(&self.key), "writing the step log: {e}; {lost} bytes dropped after a minute of failures");
                w.dropped += lost as u64;
                w.ready.clear();
                w.pending.clear();
                // What was in doubt is no prefix of what comes next.
                w.in_doubt.clear();
                w.failing_since = None;
                return false;
            }
        }
        w.failing_since = None;
        w.in_doubt.clear();
        w.stored = offset + w.ready.len() as u64;
        let written = std::mem::take(&mut w.ready);
        w.keep_tail(written);
        w.pending.is_empty() || (whole_lines && !last)
    }
}

impl Writer {
    /// Keeps the end of what was stored at hand for post hooks.
    fn keep_tail(&mut self, written: Vec<u8>) {
        self.tail.extend(written);
        let excess = self.tail.len().saturating_sub(TAIL_BYTES);
        self.tail.drain(..excess);
    }
}

/// Cuts an outcome's reason and the hooks' errors to the bound a run keeps
/// (`MAX_TEXT_BYTES`), writing the whole of each oversized text to the step
/// log first, where it belongs.
pub(crate) async fn bound_texts(
    outcome: Outcome,
    hooks: Vec<HookRun>,
    log: &StepLog,
) -> (Outcome, Vec<HookRun>) {
    if let Outcome::Failed { reason, .. } = &outcome {
        if outcome.is_oversized() {
            let note = format!(
                "\n[weft] the attempt failed ({} bytes of reason):\n{reason}\n",
                reason.len()
            );
            log.push(note.as_bytes()).await;
        }
    }
    for hook in &hooks {
        if let Some(e) = hook.error.as_ref().filter(|e| e.len() > MAX_TEXT_BYTES) {
            let note = format!(
                "\n[weft] {} hook {} failed ({} bytes):\n{e}\n",
                hook.phase,
                hook.plugin,
                e.len()
            );
            log.push(note.as_bytes()).await;
        }
    }
    (
        outcome.bounded(),
        hooks.into_iter().map(HookRun::bounded).collect(),
    )
}

#[async_trait::async_trait]
impl LogSink for StepLog {
    async fn write(&self, chunk: &[u8]) {
        self.push(chunk).await;
    }

    async fn write_err(&self, chunk: &[u8]) {
        self.push_err(chunk).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::run::TaskId;
    use weft_testkit::MemoryRunStore;

    fn key() -> AttemptId {
        AttemptId {
            run_id: "r".into(),
            task: TaskId::new("s", None),
            attempt: 1,
        }
    }

    #[tokio::test]
    async fn output_far_past_the_cap_is_stored_up_to_it_in_bounded_writes() {
        let store = MemoryRunStore::new();
        let log = StepLog::new(Arc::new(store.clone()), key(), 3 << 20);
        let line = vec![b'x'; 64 << 10];
        for _ in 0..100 {
            log.push(&line).await;
            let w = log.writer.lock().await;
            assert!(
                w.pending.len() + w.ready.len() < MAX_PENDING,
                "memory stays bounded"
            );
        }
        log.finish().await;
        let stored = store.read_log(&key()).await.unwrap();
        assert!(stored.starts_with(&line));
        assert!(stored.ends_with(b"[weft: log truncated at 3145728 bytes]\n"));
        assert_eq!(
            stored.len(),
            (3 << 20) + "\n[weft: log truncated at 3145728 bytes]\n".len()
        );
        let entries = store.with(|s| s.logs.values().next().map_or(0, Vec::len));
        assert!(
            entries >= 48,
            "stored as bounded entries, not one: {entries}"
        );
    }

    #[tokio::test]
    async fn a_second_execution_of_an_attempt_writes_after_the_first() {
        let store = MemoryRunStore::new();
        let first = StepLog::new(Arc::new(store.clone()), key(), 1 << 20);
        first.push(b"first\n").await;
        first.finish().await;
        let second = StepLog::new(Arc::new(store.clone()), key(), 1 << 20);
        second.push(b"second\n").await;
        second.finish().await;
        assert_eq!(store.read_log(&key()).await.unwrap(), b"first\nsecond\n");
        assert_eq!(second.tail().await, b"second\n");
    }

    /// A store whose first `fail` appends are taken but answered with an
    /// error, as when the connection drops before the reply.
    struct LostReplies {
        inner: MemoryRunStore,
        fail: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl StepLogs for LostReplies {
        async fn append_log(
            &self,
            key: &AttemptId,
            offset: u64,
            chunk: &[u8],
        ) -> Result<(), weft_core::Error> {
            let landed = self.inner.append_log(key, offset, chunk).await;
            let left = self.fail.load(std::sync::atomic::Ordering::SeqCst);
            if landed.is_ok() && left > 0 {
                self.fail
                    .store(left - 1, std::sync::atomic::Ordering::SeqCst);
                return Err(weft_core::Error::Closed("connection reset".into()));
            }
            landed
        }

        async fn read_log_from(
            &self,
            key: &AttemptId,
            offset: u64,
            max_bytes: u64,
        ) -> Result<weft_core::ports::LogSlice, weft_core::Error> {
            self.inner.read_log_from(key, offset, max_bytes).await
        }
    }

    #[tokio::test]
    async fn a_write_whose_reply_was_lost_is_not_doubled_when_more_output_came_since() {
        let store = MemoryRunStore::new();
        let lossy = Arc::new(LostReplies {
            inner: store.clone(),
            fail: 1.into(),
        });
        let log = StepLog::new(lossy, key(), 1 << 20);
        log.push(b"line-1\nline-2\n").await;
        {
            let mut w = log.writer.lock().await;
            assert!(!log.flush(&mut w, false).await, "the reply was lost");
        }
        log.push(b"line-3\n").await;
        log.finish().await;
        assert_eq!(
            store.read_log(&key()).await.unwrap(),
            b"line-1\nline-2\nline-3\n"
        );
        assert_eq!(log.tail().await, b"line-1\nline-2\nline-3\n");
    }

    #[tokio::test]
    async fn secrets_are_masked_even_split_across_writes_and_in_long_lines() {
        let store = MemoryRunStore::new();
        let log = StepLog::new(Arc::new(store.clone()), key(), 8 << 20);
        log.set_masker(Arc::new(Masker::new([b"hunter2-token".as_slice()])));
        let flusher = log.spawn_flusher();
        log.push(b"token: hunt").await;
        tokio::time::sleep(FLUSH_EVERY * 2).await;
        log.push(b"er2-token.\n").await;
        // A line longer than a write, the secret across the cut.
        let mut long = vec![b'x'; FLUSH_AT - 5];
        long.extend_from_slice(b"hunter2-token");
        long.extend_from_slice(&[b'y'; 100]);
        log.push(&long).await;
        flusher.abort();
        log.finish().await;
        let stored = String::from_utf8(store.read_log(&key()).await.unwrap()).unwrap();
        assert!(!stored.contains("hunt"), "{}", &stored[..40]);
        assert!(stored.starts_with("token: ***.\n"));
        assert!(stored.ends_with(&format!("{}***{}", "x".repeat(10), "y".repeat(100))));
    }
}
