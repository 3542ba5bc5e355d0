//! `WorkflowStore` on Redis: a list of versions per name (RPUSH gives each
//! save its own version atomically), and a set of names.

use async_trait::async_trait;
use redis::AsyncCommands;
use weft_core::ports::{SavedWorkflow, WorkflowStore};
use weft_core::Error;

use crate::store::{decode, encode, redis_err};
use crate::RedisRunStore;

#[async_trait]
impl WorkflowStore for RedisRunStore {
    async fn save_workflow(&self, name: &str, source: &str, now: u64) -> Result<u32, Error> {
        let key = self.key(&["workflow", name]);
        // The version is the list's new length: store it without knowing it
        // first, then read it back from RPUSH's answer.
        let body = encode(&(source, now))?;
        let len: u64 = self
            .conn()
            .rpush(&key, body)
            .await
            .map_err(redis_err("saving a workflow"))?;
        let _: () = self
            .conn()
            .sadd(self.key(&["workflows"]), name)
            .await
            .map_err(redis_err("indexing a workflow"))?;
        self.expire_key(&key).await?;
        self.expire_key(&self.key(&["workflows"])).await?;
        u32::try_from(len)
            .map_err(|_| Error::Invalid(format!("workflow {name} has too many versions")))
    }

    async fn workflow(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<SavedWorkflow>, Error> {
        let key = self.key(&["workflow", name]);
        let index: isize = match version {
            Some(0) => return Ok(None),
            Some(v) => v as isize - 1,
            None => -1,
        };
        // One transaction, so the text and the version belong together.
        let (raw, len): (Option<String>, u32) = redis::pipe()
            .atomic()
            .lindex(&key, index)
            .llen(&key)
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err("reading a workflow"))?;
        let Some(raw) = raw else { return Ok(None) };
        let version = version.unwrap_or(len);
        let (source, saved_at): (String, u64) = decode(&raw)?;
        Ok(Some(SavedWorkflow {
            name: name.to_string(),
            version,
            source,
            saved_at,
        }))
    }

    /// One round trip for the names, one pipeline for their lengths.
    async fn latest_versions(&self) -> Result<Vec<(String, u32)>, Error> {
        let names = self.workflow_names().await?;
        if names.is_empty() {
            // Redis refuses an empty pipeline.
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.llen(self.key(&["workflow", name]));
        }
        let lengths: Vec<u32> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(redis_err("reading workflow versions"))?;
        Ok(names
            .into_iter()
            .zip(lengths)
            .filter(|(_, v)| *v > 0)
            .collect())
    }

    async fn workflows(&self) -> Result<Vec<SavedWorkflow>, Error> {
        let mut out = Vec::new();
        for name in self.workflow_names().await? {
            if let Some(w) = self.workflow(&name, None).await? {
                out.push(w);
            }
        }
        Ok(out)
    }
}

impl RedisRunStore {
    /// The names of saved workflows, sorted.
    async fn workflow_names(&self) -> Result<Vec<String>, Error> {
        let mut names: Vec<String> = self
            .conn()
            .smembers(self.key(&["workflows"]))
            .await
            .map_err(redis_err("listing workflows"))?;
        names.sort();
        Ok(names)
    }
}
