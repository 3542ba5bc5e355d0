//! `weft token`: create, list and revoke API tokens (admin role), and
//! `weft token recover`: a new admin token written straight into the
//! server's store, for whoever runs the server and lost every admin token.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use weft_api::Client;
use weft_core::ports::{Role, TokenStore};

use crate::config::Config;

use crate::table;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a token; its secret is printed once.
    Create {
        /// What it is for, e.g. `ci` or `alice`.
        #[arg(long)]
        name: String,
        /// viewer (read), operator (also submit and cancel) or admin (also tokens).
        #[arg(long)]
        role: String,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { id: String },
    /// On the server's machine: write a new admin token straight into the
    /// server's store (Redis from the configuration, or with `--embedded`
    /// the store in `--data-dir`, once `weft serve --embedded` is stopped),
    /// without a token. For when every admin token is lost.
    Recover {
        /// What it is for; recorded with the token.
        #[arg(long, default_value = "recovered admin")]
        name: String,
        /// The embedded store in `--data-dir` rather than Redis.
        #[arg(long)]
        embedded: bool,
        #[command(flatten)]
        data: crate::DataDir,
    },
}

/// `weft token recover`: needs no server, only the server's store.
pub async fn recover(
    config: &Config,
    name: &str,
    embedded: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let tokens: Arc<dyn TokenStore> = match embedded {
        Some(dir) => crate::embedded::open_store(dir)?,
        None => Arc::new(
            weft_store_redis::RedisRunStore::connect(config.redis.clone())
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "connecting to the server's Redis ({}): {e}",
                        config.redis.url
                    )
                })?,
        ),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (token, record) = weft_api::mint(name, Role::Admin, now)?;
    tokens.add_token(&record).await?;
    println!(
        "created admin token {} ({name}) in the server's store; it is shown only now:",
        record.id
    );
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

pub async fn token(client: Client, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Create { name, role } => {
            let t = client.create_token(&name, &role).await?;
            println!(
                "created {} token {} ({}); it is shown only now:",
                t.role, t.id, t.name
            );
            println!("{}", t.token.unwrap_or_default());
        }
        Command::List => {
            let rows: Vec<Vec<String>> = client
                .tokens()
                .await?
                .into_iter()
                .map(|t| vec![t.id, t.role, t.name])
                .collect();
            print!("{}", table::render(&["ID", "ROLE", "NAME"], &rows));
        }
        Command::Revoke { id } => {
            client.revoke_token(&id).await?;
            println!("revoked {id}");
        }
        Command::Recover { .. } => unreachable!("handled without a server"),
    }
    Ok(ExitCode::SUCCESS)
}
