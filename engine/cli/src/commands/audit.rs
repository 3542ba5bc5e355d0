//! `weft audit`: the server's audit log, newest first.

use std::process::ExitCode;

use weft_api::Client;

use crate::table;

pub async fn audit(client: Client, limit: usize) -> anyhow::Result<ExitCode> {
    let entries = client.audit(limit).await?;
    if entries.is_empty() {
        println!("nothing recorded yet");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                super::inspect::ago(e.at),
                e.who.clone().unwrap_or_else(|| "-".into()),
                e.role.as_str().to_string(),
                serde_json::to_value(e.action)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                e.target.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["SEQ", "WHEN", "WHO", "ROLE", "ACTION", "TARGET"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}
