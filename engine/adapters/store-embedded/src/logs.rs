//! Step logs on redb: each chunk is keyed by the byte offset it starts at,
//! so a reader following a log seeks to where it stopped instead of
//! reading the whole log on every poll.

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use weft_core::ports::{LogKey, LogSlice};

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
    fn of(key: &'a LogKey) -> Self {
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

/// Appends `chunk` after the attempt's last chunk.
pub(crate) fn append(
    txn: &WriteTransaction,
    key: &LogKey,
    chunk: &[u8],
) -> Result<(), redb::Error> {
    let a = Attempt::of(key);
    let mut chunks = txn.open_table(LOG_CHUNKS)?;
    let end = chunks
        .range(a.at(0)..=a.at(u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(k, v)| k.value().3 + v.value().len() as u64);
    chunks.insert(a.at(end), chunk)?;
    Ok(())
}

/// The attempt's log from byte `offset` on (from its end where `offset`
/// lies past it).
pub(crate) fn read_from(
    txn: &ReadTransaction,
    key: &LogKey,
    offset: u64,
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
        return read_numbered(txn, key, offset);
    };
    let (mut bytes, mut end) = (Vec::new(), first);
    for entry in chunks.range(a.at(first)..=a.at(u64::MAX))? {
        let (k, v) = entry?;
        let (start, chunk) = (k.value().3, v.value());
        let skip = offset.saturating_sub(start).min(chunk.len() as u64) as usize;
        bytes.extend_from_slice(&chunk[skip..]);
        end = start + chunk.len() as u64;
    }
    Ok(LogSlice {
        start: offset.min(end),
        bytes,
    })
}

/// A log kept in numbered chunks, read whole and cut at `offset`.
fn read_numbered(
    txn: &ReadTransaction,
    key: &LogKey,
    offset: u64,
) -> Result<LogSlice, redb::Error> {
    let a = Attempt::of(key);
    let numbered = txn.open_table(NUMBERED_LOGS)?;
    let mut log = Vec::new();
    for entry in numbered.range(a.at(0)..=a.at(u64::MAX))? {
        log.extend_from_slice(entry?.1.value());
    }
    let start = offset.min(log.len() as u64);
    Ok(LogSlice {
        start,
        bytes: log.split_off(start as usize),
    })
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
        let key = LogKey {
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
        let from = |offset| read_from(&txn, &key, offset);
        assert_eq!(from(0)?.bytes, b"hello world\n");
        assert_eq!((from(6)?.start, from(6)?.bytes), (6, b"world\n".to_vec()));
        assert_eq!((from(50)?.start, from(50)?.bytes.len()), (12, 0));
        Ok(())
    }
}
