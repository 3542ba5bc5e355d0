//! `weft artifacts`: a run's artifacts listed, and one downloaded (from a
//! server, or from the embedded store's directory), its digest checked.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sha2::{Digest as _, Sha256};
use weft_api::views::ArtifactView;
use weft_core::artifacts::{ArtifactRef, Digest};
use weft_core::ports::ArtifactStore;

use super::inspect::{view, Source};

#[derive(clap::Subcommand)]
pub enum Command {
    /// List a run's artifacts (of one step, or one artifact: STEP/NAME).
    List {
        /// Run id (or a unique prefix of one).
        run: String,
        /// A step, or STEP/NAME.
        filter: Option<String>,
    },
    /// Download one artifact (a directory comes as a tar).
    Get {
        /// Run id (or a unique prefix of one).
        run: String,
        /// STEP/NAME.
        artifact: String,
        /// Where to write it; `-` for standard output.
        #[arg(short, long)]
        output: PathBuf,
    },
}

pub async fn artifacts(source: &Source, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List { run, filter } => {
            let v = view(source, &run).await?;
            let (step, name) = match filter.as_deref().map(|f| f.split_once('/')) {
                Some(Some((s, n))) => (Some(s.to_string()), Some(n.to_string())),
                Some(None) => (filter.clone(), None),
                None => (None, None),
            };
            let listed: Vec<&ArtifactView> = v
                .steps
                .iter()
                .flat_map(|s| &s.artifacts)
                .filter(|a| step.as_ref().is_none_or(|s| *s == a.step))
                .filter(|a| name.as_ref().is_none_or(|n| *n == a.name))
                .collect();
            if listed.is_empty() {
                println!(
                    "run {} has no artifacts{}",
                    v.run.id,
                    match &filter {
                        Some(f) => format!(" matching {f}"),
                        None => String::new(),
                    }
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<24} {:>12}  {:<12}  KIND", "ARTIFACT", "SIZE", "DIGEST");
            for a in listed {
                println!(
                    "{:<24} {:>12}  {:<12}  {}",
                    format!("{}/{}", a.step, a.name),
                    a.size,
                    &a.digest[..12.min(a.digest.len())],
                    if a.dir { "directory (tar)" } else { "file" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Get {
            run,
            artifact,
            output,
        } => {
            let (step, name) = artifact.split_once('/').ok_or_else(|| {
                anyhow::anyhow!("name the artifact as STEP/NAME, not `{artifact}`")
            })?;
            let v = view(source, &run).await?;
            let found = v
                .steps
                .iter()
                .flat_map(|s| &s.artifacts)
                .find(|a| a.step == step && a.name == name)
                .ok_or_else(|| anyhow::anyhow!("run {} has no artifact {step}/{name}", v.run.id))?;
            let reference = ArtifactRef {
                digest: Digest::parse(&found.digest).map_err(anyhow::Error::msg)?,
                size: found.size,
                dir: found.dir,
            };
            get(source, &v.run.id, found, &reference, &output).await?;
            if output != Path::new("-") {
                eprintln!("wrote {} ({} bytes)", output.display(), found.size);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn get(
    source: &Source,
    run: &str,
    found: &ArtifactView,
    reference: &ArtifactRef,
    output: &Path,
) -> anyhow::Result<()> {
    let to_stdout = output == Path::new("-");
    match source {
        Source::Embedded(dir) if !to_stdout => {
            let store = weft_artifacts_object::ObjectArtifactStore::local(&dir.join("artifacts"))?;
            store.get_file(reference, output).await?;
            Ok(())
        }
        Source::Embedded(dir) => {
            let store = weft_artifacts_object::ObjectArtifactStore::local(&dir.join("artifacts"))?;
            let temp = tempfile::NamedTempFile::new()?;
            store.get_file(reference, temp.path()).await?;
            std::io::copy(
                &mut std::fs::File::open(temp.path())?,
                &mut std::io::stdout(),
            )?;
            Ok(())
        }
        Source::Server(client) => {
            // Written beside the destination and renamed once checked.
            let (mut file, temp): (Box<dyn Write>, Option<tempfile::NamedTempFile>) = if to_stdout {
                (Box::new(std::io::stdout().lock()), None)
            } else {
                let parent = output.parent().filter(|p| !p.as_os_str().is_empty());
                let temp = tempfile::NamedTempFile::new_in(parent.unwrap_or(Path::new(".")))?;
                (Box::new(temp.reopen()?), Some(temp))
            };
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            client
                .download_artifact(run, &found.step, &found.name, |piece| {
                    hasher.update(piece);
                    size += piece.len() as u64;
                    file.write_all(piece)
                })
                .await?;
            file.flush()?;
            let digest = Digest::from_bytes(&hasher.finalize().into());
            if digest != reference.digest || size != reference.size {
                anyhow::bail!(
                    "artifact {}/{}: the download ({size} bytes, digest {}) is not the artifact \
                     ({} bytes, digest {})",
                    found.step,
                    found.name,
                    digest.short(),
                    reference.size,
                    reference.digest.short()
                );
            }
            if let Some(temp) = temp {
                temp.persist(output)?;
            }
            Ok(())
        }
    }
}
