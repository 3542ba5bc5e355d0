//! `RunRemoval` on Redis: a finished run's keys (record, events, lease,
//! each attempt's claim and log stream) and its place in the index, in one
//! transaction (two on a cluster: the index first, then the run's slot).

use async_trait::async_trait;
use weft_core::ports::{AttemptId, RunIndex, RunRemoval};
use weft_core::Error;

use crate::store::redis_err;
use crate::RedisRunStore;

#[async_trait]
impl RunRemoval for RedisRunStore {
    async fn remove_run(&self, run_id: &str, attempts: &[AttemptId]) -> Result<bool, Error> {
        let Some(record) = self.get_run(run_id).await? else {
            return Ok(false);
        };
        if !record.status.is_terminal() {
            return Err(Error::Conflict(format!(
                "run {run_id} is {}: only a finished run is removed",
                record.status.as_str()
            )));
        }
        let mut unindex = redis::pipe();
        unindex
            .atomic()
            .zrem(self.key(&["runs"]), run_id)
            .zrem(self.key(&["unfinished"]), run_id);
        let mut keys = redis::pipe();
        keys.atomic()
            .del(self.run_key("run", run_id, &[]))
            .del(self.run_key("events", run_id, &[]))
            .del(self.lease_key(run_id));
        for a in attempts {
            keys.del(self.claim_key(a)).del(self.log_key(a));
        }
        if self.options.cluster {
            // The index is in another slot than the run: two transactions,
            // the index first, so one cut short between them leaves the
            // run's record, and the removal can be asked again.
            let _: () = unindex
                .query_async(&mut self.conn())
                .await
                .map_err(redis_err("removing a run from the index"))?;
            let _: () = keys
                .query_async(&mut self.conn())
                .await
                .map_err(redis_err("removing a run"))?;
        } else {
            let mut both = unindex;
            for cmd in keys.cmd_iter() {
                both.add_command(cmd.clone());
            }
            let _: () = both
                .query_async(&mut self.conn())
                .await
                .map_err(redis_err("removing a run"))?;
        }
        Ok(true)
    }

    async fn remove_logs(&self, attempts: &[AttemptId]) -> Result<(), Error> {
        for chunk in attempts.chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|a| self.log_key(a)).collect();
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut self.conn())
                .await
                .map_err(redis_err("removing logs"))?;
        }
        Ok(())
    }
}
