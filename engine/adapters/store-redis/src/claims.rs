//! Attempt claims in Redis: each a hash per attempt, changed only by the
//! Lua scripts in `scripts.rs`, which apply `ClaimRecord`'s rules (the
//! contract tests hold them to it) and remember the executions given one.

use async_trait::async_trait;
use redis::Script;
use weft_core::ports::{AttemptClaims, AttemptId, Claim, ClaimedExecution, Report};
use weft_core::Error;

use crate::retry::retrying;
use crate::store::{decode, encode, redis_err, RedisRunStore};

impl RedisRunStore {
    /// Runs a claim script on attempt `key`'s claim (with the key's expiry
    /// as its last argument: `scripts::expiring`) and reads its answer.
    async fn claim_script(
        &self,
        script: &Script,
        key: &AttemptId,
        args: &[String],
        context: &'static str,
    ) -> Result<Claim, Error> {
        let claim_key = self.claim_key(key);
        let answer: Vec<String> = retrying(self.retry_for(), context, || {
            let mut invocation = script.key(&claim_key);
            for a in args {
                invocation.arg(a);
            }
            invocation.arg(self.ttl());
            let mut conn = self.conn.clone();
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await?;
        claim_answer(&answer)
    }
}

#[async_trait]
impl AttemptClaims for RedisRunStore {
    async fn claim(
        &self,
        key: &AttemptId,
        worker: &str,
        _now: u64,
        ttl_ms: u64,
        delivery_limit: Option<u32>,
    ) -> Result<Claim, Error> {
        // Not repeated on a lost reply: a second try would find the claim
        // held by this very call. The worker tries again later itself.
        let claim_key = self.claim_key(key);
        let answer: Vec<String> = self
            .claim
            .key(&claim_key)
            .arg(worker)
            .arg(ttl_ms.max(1))
            .arg(delivery_limit.map_or(-1, i64::from))
            .arg(self.ttl())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(redis_err("claiming an attempt"))?;
        self.replicated(&claim_key).await;
        claim_answer(&answer)
    }

    async fn renew_claim(
        &self,
        key: &AttemptId,
        worker: &str,
        token: u64,
        _now: u64,
        ttl_ms: u64,
    ) -> Result<Claim, Error> {
        let args = [
            worker.to_string(),
            ttl_ms.max(1).to_string(),
            token.to_string(),
        ];
        self.claim_script(&self.renew_claim, key, &args, "renewing a claim")
            .await
    }

    async fn finish_claim(
        &self,
        key: &AttemptId,
        worker: &str,
        token: u64,
        report: &Report,
    ) -> Result<(), Error> {
        let args = [worker.to_string(), encode(report)?, token.to_string()];
        let answer = self
            .claim_script(&self.finish_claim, key, &args, "finishing a claim")
            .await;
        self.replicated(&self.claim_key(key)).await;
        match answer {
            // The script answers `{'ok'}`, which reads as `Held` here.
            Ok(Claim::Held { .. }) => Ok(()),
            Ok(other) => Err(Error::Fenced(format!(
                "attempt {}/{}#{}: the claim is {other:?}",
                key.run_id, key.task, key.attempt
            ))),
            Err(e) => Err(e),
        }
    }

    async fn abort_claim(&self, key: &AttemptId) -> Result<Vec<ClaimedExecution>, Error> {
        let executions = self
            .executions_by(&self.abort_claim, key, "aborting a claim")
            .await?;
        self.replicated(&self.claim_key(key)).await;
        Ok(executions)
    }

    async fn claim_executions(&self, key: &AttemptId) -> Result<Vec<ClaimedExecution>, Error> {
        self.executions_by(&self.claim_executions, key, "reading a claim")
            .await
    }
}

impl RedisRunStore {
    /// The executions `script` answers on attempt `key`'s claim, retried
    /// on connection errors.
    async fn executions_by(
        &self,
        script: &Script,
        key: &AttemptId,
        what: &'static str,
    ) -> Result<Vec<ClaimedExecution>, Error> {
        let claim_key = self.claim_key(key);
        let answer: Vec<String> = retrying(self.retry_for(), what, || {
            let invocation = script.key(&claim_key);
            let mut conn = self.conn.clone();
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await?;
        Ok(executions(&answer))
    }
}

/// Executions a script answers as `token, worker` pairs.
fn executions(pairs: &[String]) -> Vec<ClaimedExecution> {
    pairs
        .chunks_exact(2)
        .map(|pair| ClaimedExecution {
            token: pair[0].parse().unwrap_or(0),
            worker: pair[1].clone(),
        })
        .collect()
}

/// A claim script's answer: `{'held', token, earlier pairs…}`, `{'held-by', worker}`,
/// `{'done', report}`, `{'aborted'}` (or `{'ok'}`, which reads as held).
fn claim_answer(answer: &[String]) -> Result<Claim, Error> {
    let word = |i: usize| answer.get(i).map(String::as_str).unwrap_or_default();
    Ok(match word(0) {
        "held" => Claim::Held {
            token: word(1).parse().unwrap_or(0),
            earlier: executions(answer.get(2..).unwrap_or_default()),
        },
        "ok" => Claim::Held {
            token: 0,
            earlier: Vec::new(),
        },
        "held-by" => Claim::HeldBy(word(1).to_string()),
        "done" if word(1).is_empty() => Claim::Done(None),
        "done" => Claim::Done(Some(Box::new(decode(word(1))?))),
        "aborted" => Claim::Aborted,
        "exhausted" => Claim::Exhausted {
            began: word(1).parse().unwrap_or(0),
        },
        other => {
            return Err(Error::Invalid(format!(
                "redis: unexpected answer from a claim script: {other:?}"
            )))
        }
    })
}
