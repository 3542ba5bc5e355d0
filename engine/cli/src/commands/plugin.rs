//! `weft plugin`: push, list, show and remove plugins, in the embedded
//! store or on a server.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use weft_api::views::PluginView;
use weft_api::Client;
use weft_core::ports::PluginStore;

use crate::{embedded, table};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Validate a component and add it to the registry as NAME@VERSION.
    #[command(disable_version_flag = true)]
    Push {
        /// The component (`.wasm`).
        file: PathBuf,
        #[arg(long)]
        name: String,
        /// A semantic version, X.Y.Z; a pushed version never changes.
        #[arg(long)]
        version: String,
    },
    /// List every version of every plugin.
    List,
    /// Show a plugin's versions, or the one NAME@VERSION (or @^1.2) picks.
    Show { plugin: String },
    /// Remove one version (NAME@VERSION) or every version (NAME). Runs that
    /// used it keep their copy.
    Rm { plugin: String },
}

/// Where the registry is.
pub enum Registry {
    Server(Client),
    Embedded(PathBuf),
}

fn split(plugin: &str) -> (&str, Option<&str>) {
    match plugin.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (plugin, None),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `compile_ms`: the longest a push to the embedded store may compile.
pub async fn plugin(
    registry: Registry,
    command: Command,
    compile_ms: u64,
) -> anyhow::Result<ExitCode> {
    match command {
        Command::Push {
            file,
            name,
            version,
        } => {
            let wasm = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            let pushed = match &registry {
                Registry::Server(c) => c.push_plugin(&name, &version, wasm).await?,
                Registry::Embedded(dir) => {
                    let store = embedded::open_store(dir)?;
                    // The cache `weft run` reads: a pushed plugin is compiled once.
                    let host = Arc::new(weft_wasm_host::Host::new(weft_wasm_host::Options {
                        max_instances: 1,
                        cache_dir: Some(dir.join("work").join("plugin-cache")),
                        max_compile_ms: compile_ms,
                        ..Default::default()
                    })?);
                    let record = weft_wasm_host::register(
                        &host,
                        store.as_ref(),
                        &name,
                        &version,
                        wasm,
                        now(),
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("plugin refused: {e}"))?;
                    PluginView::from(record)
                }
            };
            println!(
                "pushed {}@{}: a {} plugin, {} bytes, sha256 {}",
                pushed.name, pushed.version, pushed.world, pushed.size, pushed.sha256
            );
        }
        Command::List => {
            let all = match &registry {
                Registry::Server(c) => c.plugins().await?,
                Registry::Embedded(dir) => views(embedded_store(dir)?.plugins().await?),
            };
            print!("{}", list(&all));
        }
        Command::Show { plugin } => {
            let (name, version) = split(&plugin);
            let found = match &registry {
                Registry::Server(c) => c.plugin(name, version).await?,
                Registry::Embedded(dir) => {
                    let versions = embedded_store(dir)?.plugin_versions(name).await?;
                    match version {
                        None => views(versions),
                        Some(_) => {
                            let reference = weft_core::spec::PluginRef::parse(&plugin)
                                .map_err(|e| anyhow::anyhow!(e))?;
                            weft_core::plugins::pick(&reference, &versions)
                                .cloned()
                                .map(PluginView::from)
                                .into_iter()
                                .collect()
                        }
                    }
                }
            };
            if found.is_empty() {
                anyhow::bail!("no plugin `{plugin}`; `weft plugin list` lists them");
            }
            for p in found {
                println!("{}@{}", p.name, p.version);
                println!("  world    {}", p.world);
                println!("  size     {} bytes", p.size);
                println!("  sha256   {}", p.sha256);
                println!("  exports  {}", p.exports.join(", "));
                if !p.imports.is_empty() {
                    println!("  imports  {}", p.imports.join(", "));
                }
            }
        }
        Command::Rm { plugin } => {
            let (name, version) = split(&plugin);
            match &registry {
                Registry::Server(c) => c.remove_plugin(name, version).await?,
                Registry::Embedded(dir) => {
                    if embedded_store(dir)?.remove_plugin(name, version).await? == 0 {
                        anyhow::bail!("no plugin `{plugin}`");
                    }
                }
            }
            println!("removed {plugin}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn embedded_store(dir: &Path) -> anyhow::Result<Arc<weft_store_embedded::EmbeddedRunStore>> {
    embedded::open_store(dir)
}

fn views(records: Vec<weft_core::plugins::PluginRecord>) -> Vec<PluginView> {
    records.into_iter().map(PluginView::from).collect()
}

fn list(all: &[PluginView]) -> String {
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.version.clone(),
                p.world.clone(),
                p.size.to_string(),
                p.sha256.chars().take(12).collect(),
            ]
        })
        .collect();
    table::render(&["NAME", "VERSION", "WORLD", "BYTES", "SHA256"], &rows)
}
