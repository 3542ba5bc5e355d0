//! The embedded store's [`AttemptClaims`]: each claim a record in table
//! `CLAIMS`, changed by core's claim rules in one write of the committer.

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable};
use weft_core::ports::{AttemptClaims, AttemptId, Claim, ClaimRecord, ClaimedExecution, Report};
use weft_core::Error;

use crate::{claim_id, decode, encode, err, EmbeddedRunStore, CLAIMS};

impl EmbeddedRunStore {
    /// Applies a claim rule to attempt `key`'s claim in one transaction,
    /// storing the record it decides on.
    async fn update_claim<T: Send + 'static>(
        &self,
        key: &AttemptId,
        rule: impl Fn(Option<&ClaimRecord>) -> Result<(T, Option<ClaimRecord>), Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.committer.write(claim_write(key, rule)).await
    }
}

#[async_trait]
impl AttemptClaims for EmbeddedRunStore {
    async fn claim(
        &self,
        key: &AttemptId,
        worker: &str,
        now: u64,
        ttl_ms: u64,
        delivery_limit: Option<u32>,
    ) -> Result<Claim, Error> {
        let worker = worker.to_string();
        self.update_claim(key, move |c| {
            Ok(ClaimRecord::claim(c, &worker, now, ttl_ms, delivery_limit))
        })
        .await
    }

    async fn renew_claim(
        &self,
        key: &AttemptId,
        worker: &str,
        token: u64,
        now: u64,
        ttl_ms: u64,
    ) -> Result<Claim, Error> {
        let worker = worker.to_string();
        self.update_claim(key, move |c| {
            Ok(ClaimRecord::renew(c, &worker, token, now, ttl_ms))
        })
        .await
    }

    async fn finish_claim(
        &self,
        key: &AttemptId,
        worker: &str,
        token: u64,
        report: &Report,
    ) -> Result<(), Error> {
        let (worker, report, id) = (worker.to_string(), report.clone(), claim_id(key));
        // Answered before its fsync: in this store the worker's report goes
        // to a server in this process, whose events (written right after,
        // durably) make it durable too. A crash before them loses both, as
        // a crash just before this write would have; never the events
        // without the finish (see `commit.rs`).
        let finish = claim_write(key, move |c| {
            match ClaimRecord::finish(c, &worker, token, &report) {
                Ok(record) => Ok(((), record)),
                Err(now) => Err(Error::Fenced(format!("attempt {id}: the claim is {now:?}"))),
            }
        });
        self.committer.write_eventual(finish).await
    }

    async fn abort_claim(&self, key: &AttemptId) -> Result<Vec<ClaimedExecution>, Error> {
        self.update_claim(key, |c| {
            Ok((ClaimRecord::executions(c), ClaimRecord::abort(c)))
        })
        .await
    }

    async fn claim_executions(&self, key: &AttemptId) -> Result<Vec<ClaimedExecution>, Error> {
        let id = claim_id(key);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("reading a claim"))?;
            let claims = txn.open_table(CLAIMS).map_err(err("reading a claim"))?;
            let current = claim_in(&claims, &id)?;
            Ok(ClaimRecord::executions(current.as_ref()))
        })
        .await
    }
}

/// Claim `id` as `claims` (read or being written) holds it.
fn claim_in(
    claims: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<ClaimRecord>, Error> {
    claims
        .get(id)
        .map_err(err("reading a claim"))?
        .map(|g| decode(g.value()))
        .transpose()
}

/// A claim's update by `rule`, as a write for the committer.
fn claim_write<T: Send + 'static>(
    key: &AttemptId,
    rule: impl Fn(Option<&ClaimRecord>) -> Result<(T, Option<ClaimRecord>), Error> + Send + 'static,
) -> impl FnMut(&redb::WriteTransaction) -> Result<T, Error> + Send + 'static {
    let id = claim_id(key);
    move |txn| {
        let mut claims = txn.open_table(CLAIMS).map_err(err("updating a claim"))?;
        let current = claim_in(&claims, &id)?;
        let (claim, record) = rule(current.as_ref())?;
        if let Some(record) = record {
            claims
                .insert(id.as_str(), encode(&record)?.as_slice())
                .map_err(err("updating a claim"))?;
        }
        Ok(claim)
    }
}
