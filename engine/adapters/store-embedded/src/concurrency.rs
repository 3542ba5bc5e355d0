//! `ConcurrencySlots` in redb: each key's `KeySlots` as one value, changed
//! in one write transaction, so racing askers never pass the limit. A run
//! asking again while it still waits changes nothing, and is answered from
//! a read: a thousand waiting runs polling cost no writes.

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use weft_core::concurrency::{KeySlots, QueueSpot, SlotAnswer};
use weft_core::ports::ConcurrencySlots;
use weft_core::Error;

use crate::{decode, encode, err, EmbeddedRunStore};

pub(crate) const CONCURRENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("concurrency");

impl EmbeddedRunStore {
    /// Changes `key`'s slots with `change`, in one transaction; a key left
    /// empty is removed.
    async fn change_slots<T: Send + 'static>(
        &self,
        key: &str,
        change: impl FnOnce(&mut KeySlots) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let key = key.to_string();
        self.blocking(move |db| {
            let what = "changing a concurrency key's slots";
            let txn = db.begin_write().map_err(err(what))?;
            let out = {
                let mut table = txn.open_table(CONCURRENCY).map_err(err(what))?;
                let mut slots: KeySlots = table
                    .get(key.as_str())
                    .map_err(err(what))?
                    .map(|v| decode(v.value()))
                    .transpose()?
                    .unwrap_or_default();
                let out = change(&mut slots);
                if slots.is_empty() {
                    table.remove(key.as_str()).map_err(err(what))?;
                } else {
                    table
                        .insert(key.as_str(), encode(&slots)?.as_slice())
                        .map_err(err(what))?;
                }
                out
            };
            txn.commit().map_err(err(what))?;
            Ok(out)
        })
        .await
    }
}

impl EmbeddedRunStore {
    /// The answer to an ask that would change nothing (a waiter still
    /// waiting, a holder holding), from a read; `None` if the ask changes
    /// the key's slots.
    async fn unchanged_answer(
        &self,
        key: &str,
        run: &str,
        limit: u32,
        rank: u64,
    ) -> Result<Option<SlotAnswer>, Error> {
        let (key, run) = (key.to_string(), run.to_string());
        self.blocking(move |db| {
            let what = "reading a concurrency key's slots";
            let txn = db.begin_read().map_err(err(what))?;
            let table = txn.open_table(CONCURRENCY).map_err(err(what))?;
            let slots: KeySlots = table
                .get(key.as_str())
                .map_err(err(what))?
                .map(|v| decode(v.value()))
                .transpose()?
                .unwrap_or_default();
            let mut after = slots.clone();
            let answer = after.acquire(&run, limit, rank);
            Ok((after == slots).then_some(answer))
        })
        .await
    }
}

#[async_trait]
impl ConcurrencySlots for EmbeddedRunStore {
    async fn acquire_slot(&self, run_id: &str, spot: &QueueSpot) -> Result<SlotAnswer, Error> {
        let (run, limit, rank) = (run_id.to_string(), spot.limit, spot.rank());
        if let Some(answer) = self.unchanged_answer(&spot.key, &run, limit, rank).await? {
            return Ok(answer);
        }
        self.change_slots(&spot.key, move |slots| slots.acquire(&run, limit, rank))
            .await
    }

    async fn release_slot(&self, key: &str, run_id: &str) -> Result<(), Error> {
        let run = run_id.to_string();
        self.change_slots(key, move |slots| {
            slots.release(&run);
        })
        .await
    }
}
