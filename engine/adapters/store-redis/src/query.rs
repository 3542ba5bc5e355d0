//! Finding runs by a prefix of their id without reading every run: the run
//! index is scanned in Redis (`ZSCAN … MATCH`), and only the newest matches
//! are read, a page at a time, until the query has its `limit`.

use weft_core::ports::{RunQuery, RunRecord};
use weft_core::Error;

use crate::retry::retrying;
use crate::store::{decode, RedisRunStore};

/// Runs read per round trip while a query is filled.
const BATCH: usize = 100;

/// `text` as a Redis glob that matches only itself.
fn glob_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl RedisRunStore {
    /// The runs `query` asks for, when it names an id prefix.
    pub(crate) async fn runs_by_prefix(
        &self,
        prefix: &str,
        query: &RunQuery,
    ) -> Result<Vec<RunRecord>, Error> {
        let index = self.key(&["runs"]);
        let pattern = format!("{}*", glob_escaped(prefix));
        let mut found: Vec<(f64, String)> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, flat): (u64, Vec<String>) =
                retrying(self.retry_for(), "scanning runs", || {
                    let mut cmd = redis::cmd("ZSCAN");
                    cmd.arg(&index)
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000);
                    let mut conn = self.conn();
                    async move { cmd.query_async(&mut conn).await }
                })
                .await?;
            for pair in flat.chunks_exact(2) {
                found.push((pair[1].parse().unwrap_or(0.0), pair[0].clone()));
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        found.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        let mut runs = Vec::new();
        for batch in found.chunks(BATCH) {
            let keys: Vec<String> = batch
                .iter()
                .map(|(_, id)| self.run_key("run", id, &[]))
                .collect();
            let raws: Vec<Option<String>> = retrying(self.retry_for(), "reading runs", || {
                let (mut conn, keys) = (self.conn(), keys.clone());
                async move { redis::AsyncCommands::mget(&mut conn, keys).await }
            })
            .await?;
            for raw in raws.into_iter().flatten() {
                let run: RunRecord = decode(&raw)?;
                if query.matches(&run) {
                    runs.push(run);
                }
            }
            if runs.len() >= query.limit {
                break;
            }
        }
        Ok(query.pick(runs))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(super::glob_escaped("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
