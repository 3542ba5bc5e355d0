//! Step logs on Redis: one stream per attempt, each entry at most
//! `LOG_CHUNK_BYTES` and keyed by the byte offset it starts at (see
//! `scripts::append_log`), trimmed to about `log-max-chunks` entries; read
//! in bounded pages by byte offset.

use weft_core::ports::{AttemptId, LogSlice, LOG_CHUNK_BYTES};
use weft_core::Error;

use crate::retry::retrying;
use crate::RedisRunStore;

impl RedisRunStore {
    pub(crate) async fn append_log_at(
        &self,
        key: &AttemptId,
        offset: u64,
        chunk: &[u8],
    ) -> Result<(), Error> {
        let stream = self.log_key(key);
        // Safe to repeat: an append that landed is found by where the log
        // ends, never written twice.
        let result: i64 = retrying(self.retry_for(), "appending a log", || {
            let mut invocation = self.append_log.key(&stream);
            invocation.arg(offset).arg(self.options.log_max_chunks);
            for piece in chunk.chunks(LOG_CHUNK_BYTES) {
                invocation.arg(piece);
            }
            invocation.arg(self.ttl());
            let mut conn = self.conn();
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await?;
        if result < 0 {
            return Err(Error::LogMoved {
                log: format!("log of {}/{}#{}", key.run_id, key.task, key.attempt),
                expected: offset,
                actual: (-1 - result) as u64,
            });
        }
        Ok(())
    }

    pub(crate) async fn read_log_page(
        &self,
        key: &AttemptId,
        offset: u64,
        max_bytes: u64,
    ) -> Result<LogSlice, Error> {
        let stream = self.log_key(key);
        type Entries = Vec<(String, Vec<(String, Vec<u8>)>)>;
        let (log_end, entries): (u64, Entries) =
            retrying(self.retry_for(), "reading a log", || {
                let mut invocation = self.read_log_from.key(&stream);
                // The entry holding `offset` may begin before it: ask for that much more.
                invocation
                    .arg(offset)
                    .arg(max_bytes.saturating_add(LOG_CHUNK_BYTES as u64));
                let mut conn = self.conn();
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        let mut slice = LogSlice {
            log_end,
            ..LogSlice::default()
        };
        let mut first = true;
        for (id, fields) in entries {
            let entry_start = id
                .split_once('-')
                .and_then(|(ms, _)| ms.parse::<u64>().ok())
                .and_then(|ms| ms.checked_sub(1))
                .ok_or_else(|| {
                    Error::Invalid(format!("redis: log entry {id} is not a byte offset"))
                })?;
            for (_, data) in fields {
                let skip = if first {
                    // From `offset` within it, or from its start when the
                    // bytes before it were trimmed; past the end, at the end.
                    let skip = offset.saturating_sub(entry_start).min(data.len() as u64);
                    slice.start = entry_start + skip;
                    first = false;
                    skip as usize
                } else {
                    0
                };
                let room = max_bytes.saturating_sub(slice.bytes.len() as u64) as usize;
                let piece = &data[skip..];
                slice
                    .bytes
                    .extend_from_slice(&piece[..piece.len().min(room)]);
            }
        }
        Ok(slice)
    }
}
