//! `weft secret`: set, list, remove and re-seal secrets (admins, on a
//! server; or in the embedded store), and make a key. A value is read
//! from standard input or a file, never from an argument (which `ps` and
//! shell history would show), and is never printed.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use weft_api::views::{SecretScopeView, SecretView, SetSecret};
use weft_api::Client;
use weft_core::ports::{Clock, SecretStore};
use weft_core::secrets::{check_secret_name, check_secret_value, SecretInfo, SecretScope};
use weft_orchestrator::SystemClock;
use weft_secrets::Keyring;

use crate::config::Config;
use crate::table;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Set a secret; its value comes from standard input (one trailing
    /// newline dropped) or `--from-file`.
    Set {
        /// Letters, digits and `_`; workflows write `{{ secrets.NAME }}`.
        name: String,
        /// Read the value from this file, as it is.
        #[arg(long, value_name = "PATH")]
        from_file: Option<PathBuf>,
        /// Only workflows of this name, or a prefix ending in `*` (repeatable; default any).
        #[arg(long = "workflow", value_name = "PATTERN")]
        workflows: Vec<String>,
        /// Only steps in this pool (repeatable; default any).
        #[arg(long = "pool")]
        pools: Vec<String>,
    },
    /// List secrets: names, scopes, who set them and when (never values).
    List,
    /// Remove a secret.
    Rm { name: String },
    /// Seal every secret again under the first key of the keyring (after
    /// putting a new key first); then the old key may go.
    Rotate,
    /// Print a new random key, for `[secrets] key-file` or $WEFT_SECRET_KEY.
    Keygen,
}

/// Where secrets are: a server, or the embedded store in `data_dir`.
pub enum Target {
    Server(Client),
    Embedded(PathBuf),
}

pub async fn secret(target: Target, config: &Config, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Keygen => {
            println!("{}", Keyring::generate_key()?);
        }
        Command::Set {
            name,
            from_file,
            workflows,
            pools,
        } => {
            check_secret_name(&name).map_err(anyhow::Error::msg)?;
            let value = read_value(from_file.as_deref())?;
            check_secret_value(value.as_bytes()).map_err(anyhow::Error::msg)?;
            let shown = match target {
                Target::Server(client) => {
                    let request = SetSecret {
                        value,
                        scope: Some(SecretScopeView { workflows, pools }),
                    };
                    client.set_secret(&name, &request).await?
                }
                Target::Embedded(data_dir) => {
                    let (store, ring) = embedded(config, &data_dir, true)?;
                    let ring = ring.ok_or_else(|| anyhow::anyhow!("no secret key"))?;
                    let scope = SecretScope { workflows, pools };
                    scope.check().map_err(anyhow::Error::msg)?;
                    let sealed =
                        ring.seal(&name, value.as_bytes(), scope, None, SystemClock.now())?;
                    store.put_secret(&sealed).await?;
                    SecretInfo::from(&sealed).into()
                }
            };
            println!(
                "set secret {} ({}; sealed under key {})",
                shown.name,
                scope_text(&shown),
                shown.key_id
            );
        }
        Command::List => {
            let all: Vec<SecretView> = match target {
                Target::Server(client) => client.secrets().await?,
                Target::Embedded(data_dir) => {
                    let (store, _) = embedded(config, &data_dir, false)?;
                    let all = store.secrets().await?;
                    all.iter().map(|s| SecretInfo::from(s).into()).collect()
                }
            };
            if all.is_empty() {
                println!("no secrets set");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        scope_text(s),
                        s.set_by.clone().unwrap_or_else(|| "-".into()),
                        super::inspect::ago(s.set_at),
                        s.key_id.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(&["NAME", "SCOPE", "SET BY", "SET", "KEY"], &rows)
            );
        }
        Command::Rm { name } => {
            match target {
                Target::Server(client) => client.remove_secret(&name).await?,
                Target::Embedded(data_dir) => {
                    let (store, _) = embedded(config, &data_dir, false)?;
                    if !store.remove_secret(&name).await? {
                        anyhow::bail!("no secret `{name}`");
                    }
                }
            }
            println!("removed secret {name}");
        }
        Command::Rotate => {
            let (resealed, total, key) = match target {
                Target::Server(client) => {
                    let r = client.rotate_secrets().await?;
                    (r.resealed, r.total, r.key_id)
                }
                Target::Embedded(data_dir) => {
                    let (store, ring) = embedded(config, &data_dir, false)?;
                    let ring = ring.ok_or_else(|| {
                        anyhow::anyhow!(
                            "no secret key: set $WEFT_SECRET_KEY or `[secrets] key-file`"
                        )
                    })?;
                    let (resealed, total) = ring.reseal_all(store.as_ref()).await?;
                    (resealed, total, ring.ids().remove(0))
                }
            };
            println!("sealed {resealed} of {total} secret(s) again; all are under key {key}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn scope_text(s: &SecretView) -> String {
    SecretScope {
        workflows: s.scope.workflows.clone(),
        pools: s.scope.pools.clone(),
    }
    .describe()
}

/// The value: a file's bytes as they are, or standard input without one
/// trailing newline (what `echo` and a terminal add).
fn read_value(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let bytes = match file {
        Some(path) => {
            std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("value (then Enter and Ctrl-D):");
            }
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes)?;
            if bytes.ends_with(b"\n") {
                bytes.pop();
                if bytes.ends_with(b"\r") {
                    bytes.pop();
                }
            }
            bytes
        }
    };
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("a secret's value is UTF-8 text (base64 a binary one)"))
}

type Embedded = (
    Arc<weft_store_embedded::EmbeddedRunStore>,
    Option<Arc<Keyring>>,
);

fn embedded(
    config: &Config,
    data_dir: &std::path::Path,
    create_key: bool,
) -> anyhow::Result<Embedded> {
    let store = crate::embedded::open_store(data_dir)?;
    let ring = crate::embedded::keyring(config, data_dir, create_key)?;
    Ok((store, ring))
}
