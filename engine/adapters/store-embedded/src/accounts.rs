//! `TokenStore` and `WorkflowStore` on redb, for `weft serve --embedded`:
//! tokens by id, and saved workflows by (name, version).

use async_trait::async_trait;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use weft_core::ports::{SavedWorkflow, TokenRecord, TokenStore, WorkflowStore};
use weft_core::Error;

use crate::{decode, encode, err, EmbeddedRunStore};

/// token id -> record as JSON
pub(crate) const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
/// (name, version from 1) -> (saved at, source)
pub(crate) const WORKFLOWS: TableDefinition<(&str, u32), (u64, &str)> =
    TableDefinition::new("workflows");

#[async_trait]
impl TokenStore for EmbeddedRunStore {
    async fn add_token(&self, token: &TokenRecord) -> Result<(), Error> {
        let (id, body) = (token.id.clone(), encode(token)?);
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("adding a token"))?;
            {
                let mut tokens = txn.open_table(TOKENS).map_err(err("adding a token"))?;
                if tokens
                    .get(id.as_str())
                    .map_err(err("adding a token"))?
                    .is_some()
                {
                    return Err(Error::Conflict(format!("token {id} exists")));
                }
                tokens
                    .insert(id.as_str(), body.as_slice())
                    .map_err(err("adding a token"))?;
            }
            txn.commit().map_err(err("adding a token"))
        })
        .await
    }

    async fn token(&self, id: &str) -> Result<Option<TokenRecord>, Error> {
        let id = id.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("reading a token"))?;
            let tokens = txn.open_table(TOKENS).map_err(err("reading a token"))?;
            let found = tokens.get(id.as_str()).map_err(err("reading a token"))?;
            found.map(|v| decode(v.value())).transpose()
        })
        .await
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, Error> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("listing tokens"))?;
            let tokens = txn.open_table(TOKENS).map_err(err("listing tokens"))?;
            let mut out = Vec::new();
            // Keys come in order, so the list is sorted by id.
            for entry in tokens.iter().map_err(err("listing tokens"))? {
                out.push(decode(entry.map_err(err("listing tokens"))?.1.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn revoke_token(&self, id: &str) -> Result<(), Error> {
        let id = id.to_string();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("revoking a token"))?;
            let removed = {
                let mut tokens = txn.open_table(TOKENS).map_err(err("revoking a token"))?;
                let removed = tokens
                    .remove(id.as_str())
                    .map_err(err("revoking a token"))?;
                removed.is_some()
            };
            if !removed {
                return Err(Error::NotFound(format!("token {id}")));
            }
            txn.commit().map_err(err("revoking a token"))
        })
        .await
    }
}

#[async_trait]
impl WorkflowStore for EmbeddedRunStore {
    async fn save_workflow(&self, name: &str, source: &str, now: u64) -> Result<u32, Error> {
        let (name, source) = (name.to_string(), source.to_string());
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(err("saving a workflow"))?;
            let version = {
                let mut saved = txn
                    .open_table(WORKFLOWS)
                    .map_err(err("saving a workflow"))?;
                let version = latest(&saved, &name)?.map_or(1, |(v, _, _)| v + 1);
                saved
                    .insert((name.as_str(), version), (now, source.as_str()))
                    .map_err(err("saving a workflow"))?;
                version
            };
            txn.commit().map_err(err("saving a workflow"))?;
            Ok(version)
        })
        .await
    }

    async fn workflow(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<SavedWorkflow>, Error> {
        let name = name.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("reading a workflow"))?;
            let saved = txn
                .open_table(WORKFLOWS)
                .map_err(err("reading a workflow"))?;
            let found = match version {
                Some(v) => saved
                    .get((name.as_str(), v))
                    .map_err(err("reading a workflow"))?
                    .map(|e| {
                        let (at, source) = e.value();
                        (v, at, source.to_string())
                    }),
                None => latest(&saved, &name)?,
            };
            Ok(found.map(|(version, saved_at, source)| SavedWorkflow {
                name: name.clone(),
                version,
                source,
                saved_at,
            }))
        })
        .await
    }

    async fn workflows(&self) -> Result<Vec<SavedWorkflow>, Error> {
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(err("listing workflows"))?;
            let saved = txn
                .open_table(WORKFLOWS)
                .map_err(err("listing workflows"))?;
            // In key order: by name, versions ascending; keep each name's last.
            let mut out: Vec<SavedWorkflow> = Vec::new();
            for entry in saved.iter().map_err(err("listing workflows"))? {
                let (k, v) = entry.map_err(err("listing workflows"))?;
                let ((name, version), (saved_at, source)) = (k.value(), v.value());
                let workflow = SavedWorkflow {
                    name: name.to_string(),
                    version,
                    source: source.to_string(),
                    saved_at,
                };
                match out.last_mut() {
                    Some(last) if last.name == name => *last = workflow,
                    _ => out.push(workflow),
                }
            }
            Ok(out)
        })
        .await
    }
}

/// The newest version of `name`: (version, saved at, source).
fn latest(
    saved: &impl ReadableTable<(&'static str, u32), (u64, &'static str)>,
    name: &str,
) -> Result<Option<(u32, u64, String)>, Error> {
    let newest = saved
        .range((name, 0)..=(name, u32::MAX))
        .map_err(err("reading a workflow"))?
        .next_back()
        .transpose()
        .map_err(err("reading a workflow"))?;
    Ok(newest.map(|(k, v)| {
        let (at, source) = v.value();
        (k.value().1, at, source.to_string())
    }))
}
