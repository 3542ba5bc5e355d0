//! `RunRemoval` on Redis: a finished run's keys (record, events, lease,
//! each attempt's claim and log stream) and its place in the index, in one
//! transaction.

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
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(self.key(&["run", run_id]))
            .del(self.key(&["events", run_id]))
            .del(self.lease_key(run_id))
            .zrem(self.key(&["runs"]), run_id)
            .zrem(self.key(&["unfinished"]), run_id);
        for a in attempts {
            pipe.del(self.claim_key(a)).del(self.log_key(a));
        }
        let _: () = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err("removing a run"))?;
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
