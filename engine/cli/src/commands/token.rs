//! `weft token`: create, list and revoke API tokens (admin role).

use std::process::ExitCode;

use weft_api::Client;

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
    }
    Ok(ExitCode::SUCCESS)
}
