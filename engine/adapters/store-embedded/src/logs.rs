//! Step logs on redb: each chunk is keyed by the byte offset it starts at,
//! so a reader following a log seeks to where it stopped instead of
//! reading the whole log on every poll.

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use weft_core::ports::{AttemptId, LogSlice, LOG_CHUNK_BYTES};

/// (run, task, attempt, byte offset of the chunk) -> bytes
pub(crate) const LOG_CHUNKS: TableDefinition<(&str, &str, u32, u64), &[u8]> =
    TableDefinition::new("log-chunks");
/// (run, task, attempt, chunk number) -> bytes: logs written before chunks
/// were keyed by offset. Read, never written.
pub(crate) const NUMBERED_LOGS: TableDefinition<(&str, &str, u32, u64), &[u8]> =
    TableDefinition::new("logs");

/// An attempt's part of a log table's key.
struct Attempt<'a> {
    run: &'a str,
    task: String,
    attempt: u32,
}

impl<'a> Attempt<'a> {
    fn of(key: &'a AttemptId) -> Self {
        Self {
            run: &key.run_id,
            task: key.task.to_string(),
            attempt: key.attempt,
        }
    }

    /// The key of its chunk `n` (a byte offset or a number, by table).
    fn at(&self, n: u64) -> (&str, &str, u32, u64) {
        (self.run, &self.task, self.attempt, n)
    }
}

/// Where the attempt's log ends.
fn end_of(
    chunks: &impl ReadableTable<(&'static str, &'static str, u32, u64), &'static [u8]>,
    a: &Attempt<'_>,
) -> Result<u64, redb::Error> {
    Ok(chunks
        .range(a.at(0)..=a.at(u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(k, v)| k.value().3 + v.value().len() as u64))
}

/// Appends `chunk` at byte `offset`, in entries of at most
/// `LOG_CHUNK_BYTES`, if the log ends there; else says where it ends.
pub(crate) fn append(
    txn: &WriteTransaction,
    key: &AttemptId,
    offset: u64,
    chunk: &[u8],
) -> Result<Result<(), u64>, redb::Error> {
    let a = Attempt::of(key);
    let mut chunks = txn.open_table(LOG_CHUNKS)?;
    let end = end_of(&chunks, &a)?;
    if end != offset {
        return Ok(Err(end));
    }
    let mut at = end;
    for piece in chunk.chunks(LOG_CHUNK_BYTES) {
        chunks.insert(a.at(at), piece)?;
        at += piece.len() as u64;
    }
    Ok(Ok(()))
}

/// At most `max_bytes` of the attempt's log from byte `offset` on (from
/// its end where `offset` lies past it).
pub(crate) fn read_from(
    txn: &ReadTransaction,
    key: &AttemptId,
    offset: u64,
    max_bytes: u64,
) -> Result<LogSlice, redb::Error> {
    let a = Attempt::of(key);
    let chunks = txn.open_table(LOG_CHUNKS)?;
    // The chunk holding `offset` is the last one that starts at or before it.
    let holding = chunks
        .range(a.at(0)..=a.at(offset))?
        .next_back()
        .transpose()?
        .map(|(k, _)| k.value().3);
    let Some(first) = holding else {
        return read_numbered(txn, key, offset, max_bytes);
    };
    let log_end = end_of(&chunks, &a)?;
    let start = offset.min(log_end);
    let mut bytes = Vec::new();
    for entry in chunks.range(a.at(first)..=a.at(u64::MAX))? {
        if bytes.len() as u64 >= max_bytes {
            break;
        }
        let (k, v) = entry?;
        let (at, chunk) = (k.value().3, v.value());
        let skip = start.saturating_sub(at).min(chunk.len() as u64) as usize;
        let room = (max_bytes - bytes.len() as u64) as usize;
        let piece = &chunk[skip..];
        bytes.extend_from_slice(&piece[..piece.len().min(room)]);
    }
    Ok(LogSlice {
        start,
        bytes,
        log_end,
    })
}

/// A log kept in numbered chunks, read whole and cut at `offset`.
fn read_numbered(
    txn: &ReadTransaction,
    key: &AttemptId,
    offset: u64,
    max_bytes: u64,
) -> Result<LogSlice, redb::Error> {
    let a = Attempt::of(key);
    let numbered = txn.open_table(NUMBERED_LOGS)?;
    let mut log = Vec::new();
    for entry in numbered.range(a.at(0)..=a.at(u64::MAX))? {
        log.extend_from_slice(entry?.1.value());
    }
    let log_end = log.len() as u64;
    let start = offset.min(log_end);
    let mut bytes = log.split_off(start as usize);
    bytes.truncate(max_bytes.min(usize::MAX as u64) as usize);
    Ok(LogSlice {
        start,
        bytes,
        log_end,
    })
}

/// Removes the logs of `attempts`, in both tables.
pub(crate) fn remove(txn: &WriteTransaction, attempts: &[AttemptId]) -> Result<(), redb::Error> {
    let mut chunks = txn.open_table(LOG_CHUNKS)?;
    let mut numbered = txn.open_table(NUMBERED_LOGS)?;
    for key in attempts {
        let a = Attempt::of(key);
        chunks.retain_in(a.at(0)..=a.at(u64::MAX), |_, _| false)?;
        numbered.retain_in(a.at(0)..=a.at(u64::MAX), |_, _| false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase};
    use weft_core::run::TaskId;

    use super::*;

    #[test]
    fn logs_written_in_numbered_chunks_are_still_read() -> Result<(), redb::Error> {
        let dir = tempfile::tempdir().map_err(redb::Error::Io)?;
        let db = Database::create(dir.path().join("weft.redb"))?;
        let key = AttemptId {
            run_id: "r1".into(),
            task: TaskId::new("a", None),
            attempt: 1,
        };
        let txn = db.begin_write()?;
        {
            let mut old = txn.open_table(NUMBERED_LOGS)?;
            old.insert(("r1", "a", 1, 0), &b"hello "[..])?;
            old.insert(("r1", "a", 1, 1), &b"world\n"[..])?;
            txn.open_table(LOG_CHUNKS)?;
        }
        txn.commit()?;
        let txn = db.begin_read()?;
        let from = |offset| read_from(&txn, &key, offset, 1 << 20);
        assert_eq!(from(0)?.bytes, b"hello world\n");
        assert_eq!((from(6)?.start, from(6)?.bytes), (6, b"world\n".to_vec()));
        assert_eq!((from(50)?.start, from(50)?.bytes.len()), (12, 0));
        Ok(())
    }
}
