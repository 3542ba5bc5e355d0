//! `RunRemoval` in redb: a finished run's rows in every table, in one
//! transaction; freed pages are reused, so the file stops growing under a
//! steady load with retention.

use async_trait::async_trait;
use redb::{ReadableTable, WriteTransaction};
use weft_core::ports::{AttemptId, RunRecord, RunRemoval};
use weft_core::Error;

use crate::{claim_id, decode, err, logs, EmbeddedRunStore};
use crate::{CLAIMS, EVENTS, EVENT_COUNTS, LEASES, RUNS, UNFINISHED};

/// Removes a finished run's rows; `Ok(false)` if it is not there.
fn remove_run(txn: &WriteTransaction, run_id: &str, attempts: &[AttemptId]) -> Result<bool, Error> {
    let mut runs = txn.open_table(RUNS).map_err(err("removing a run"))?;
    let record: RunRecord = match runs.get(run_id).map_err(err("removing a run"))? {
        Some(raw) => decode(raw.value())?,
        None => return Ok(false),
    };
    if !record.status.is_terminal() {
        return Err(Error::Conflict(format!(
            "run {run_id} is {}: only a finished run is removed",
            record.status.as_str()
        )));
    }
    runs.remove(run_id).map_err(err("removing a run"))?;
    txn.open_table(UNFINISHED)
        .map_err(err("removing a run"))?
        .remove(run_id)
        .map_err(err("removing a run"))?;
    txn.open_table(EVENTS)
        .map_err(err("removing a run"))?
        .retain_in((run_id, 0)..=(run_id, u64::MAX), |_, _| false)
        .map_err(err("removing a run"))?;
    txn.open_table(EVENT_COUNTS)
        .map_err(err("removing a run"))?
        .remove(run_id)
        .map_err(err("removing a run"))?;
    txn.open_table(LEASES)
        .map_err(err("removing a run"))?
        .remove(run_id)
        .map_err(err("removing a run"))?;
    let mut claims = txn.open_table(CLAIMS).map_err(err("removing a run"))?;
    for a in attempts {
        claims
            .remove(claim_id(a).as_str())
            .map_err(err("removing a run"))?;
    }
    logs::remove(txn, attempts).map_err(err("removing a run's logs"))?;
    Ok(true)
}

#[async_trait]
impl RunRemoval for EmbeddedRunStore {
    async fn remove_run(&self, run_id: &str, attempts: &[AttemptId]) -> Result<bool, Error> {
        let (run_id, attempts) = (run_id.to_string(), attempts.to_vec());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("removing a run"))?;
            let removed = remove_run(&txn, &run_id, &attempts)?;
            txn.commit().map_err(err("removing a run"))?;
            Ok(removed)
        })
        .await
    }

    async fn remove_logs(&self, attempts: &[AttemptId]) -> Result<(), Error> {
        let attempts = attempts.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("removing logs"))?;
            logs::remove(&txn, &attempts).map_err(err("removing logs"))?;
            txn.commit().map_err(err("removing logs"))
        })
        .await
    }
}
