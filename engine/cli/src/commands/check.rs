//! `weft check`: every problem of every file, compiler style.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, termcolor};
use weft_core::diagnostic::Diagnostic;
use weft_core::plugins::{self, PluginRecord, PluginWorld};
use weft_core::ports::PluginStore;
use weft_core::spec::{self, Workflow};

use super::plugin::Registry;

/// Reads a workflow file, refusing what cannot be a workflow before parsing.
pub fn read_source(path: &Path) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if meta.len() > spec::parse::MAX_SOURCE_BYTES as u64 {
        anyhow::bail!(
            "{}: file is {} bytes; a workflow may be at most {} bytes",
            path.display(),
            meta.len(),
            spec::parse::MAX_SOURCE_BYTES
        );
    }
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..at]);
        let line = text.matches('\n').count() + 1;
        let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        anyhow::anyhow!(
            "{}:{line}:{column}: the file is not UTF-8 text (bad byte at offset {at})",
            path.display()
        )
    })
}

/// Prints diagnostics to stderr, in colour on a terminal.
pub fn print_diagnostics(file: &str, source: &str, diagnostics: &[Diagnostic]) {
    let choice = if std::io::stderr().is_terminal() {
        termcolor::ColorChoice::Auto
    } else {
        termcolor::ColorChoice::Never
    };
    let mut out = termcolor::StandardStream::stderr(choice);
    let files = SimpleFile::new(file, source);
    let config = term::Config::default();
    for d in diagnostics {
        let _ = term::emit_to_write_style(&mut out, &config, &files, &d.to_codespan(source.len()));
    }
}

/// Loads and validates; prints problems and returns `None` if there are any.
pub fn load_or_report(path: &Path) -> anyhow::Result<Option<(String, Workflow)>> {
    let source = read_source(path)?;
    match spec::load(&source) {
        Ok(w) => Ok(Some((source, w))),
        Err(diags) => {
            let name = path.display().to_string();
            print_diagnostics(&name, &source, &diags);
            eprintln!(
                "error: {name}: {} problem{} found",
                diags.len(),
                if diags.len() == 1 { "" } else { "s" }
            );
            Ok(None)
        }
    }
}

/// Checks each file, and its plugin references against `registry` (the
/// server's, or the embedded store's when it exists). Local plugins are
/// compiled once per content, through `plugin_cache` when given (the cache
/// `weft run` reads, so a checked plugin is not compiled again there).
pub async fn check(
    files: &[PathBuf],
    registry: Option<&Registry>,
    plugin_cache: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let files = workflow_files(files)?;
    let mut host = None;
    let mut failed = 0;
    for path in &files {
        let path = path.as_path();
        match load_or_report(path) {
            Ok(Some((source, w))) => {
                let diags = plugin_problems(path, &w, registry, &plugin_cache, &mut host).await;
                if diags.is_empty() {
                    let steps = w.steps.len();
                    let s = if steps == 1 { "" } else { "s" };
                    println!("{}: ok ({steps} step{s})", path.display());
                } else {
                    let name = path.display().to_string();
                    print_diagnostics(&name, &source, &diags);
                    eprintln!("error: {name}: {} plugin problem(s) found", diags.len());
                    failed += 1;
                }
            }
            Ok(None) => failed += 1,
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    if files.len() > 1 {
        println!("{} files checked, {failed} with problems", files.len());
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The files named, with each directory replaced by the workflow files
/// under it: every `*.toml` but configuration (`weft.toml`, `Cargo.toml`)
/// and hidden entries, in path order.
fn workflow_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
                .path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                walk(&path, found)?;
            } else if name.ends_with(".toml") && name != "weft.toml" && name != "Cargo.toml" {
                found.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            if found.is_empty() {
                anyhow::bail!(
                    "{}: no workflow files (*.toml) in this directory",
                    path.display()
                );
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Unknown plugins, versions that match nothing, and plugins of the wrong
/// world; local `.wasm` paths are read and inspected.
async fn plugin_problems(
    path: &Path,
    workflow: &Workflow,
    registry: Option<&Registry>,
    plugin_cache: &Option<PathBuf>,
    host: &mut Option<weft_wasm_host::Host>,
) -> Vec<Diagnostic> {
    let references = plugins::references(workflow);
    if references.is_empty() {
        return Vec::new();
    }
    let mut diags = Vec::new();
    let records = match registry {
        Some(Registry::Server(c)) => c
            .plugins()
            .await
            .map(|all| {
                all.into_iter()
                    .filter_map(|p| {
                        let world = match p.world.as_str() {
                            "hook" => PluginWorld::Hook,
                            "step" => PluginWorld::Step,
                            "admission" => PluginWorld::Admission,
                            _ => return None,
                        };
                        Some(PluginRecord {
                            name: p.name,
                            version: p.version,
                            sha256: p.sha256,
                            size: p.size,
                            world,
                            exports: p.exports,
                            imports: p.imports,
                            uploaded_at: p.uploaded_at,
                        })
                    })
                    .collect()
            })
            .map_err(|e| e.to_string()),
        Some(Registry::Embedded(dir)) => match crate::embedded::open_store(dir) {
            Ok(store) => store.plugins().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        None => Err("no server and no embedded store".into()),
    };
    let has_registry_refs = references.iter().any(|(r, _)| !plugins::is_local(&r.value));
    match records {
        Ok(records) => diags.extend(plugins::check(workflow, &records)),
        Err(e) if has_registry_refs => {
            eprintln!(
                "{}: note: plugin references not checked: {e}",
                path.display()
            )
        }
        Err(_) => {}
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    // Refusals by file, so a plugin referenced twice is refused once.
    let mut refused: std::collections::HashMap<PathBuf, String> = Default::default();
    for (r, need) in references
        .iter()
        .filter(|(r, _)| plugins::is_local(&r.value))
    {
        let file = dir.join(&r.value.name);
        let loaded = match refused.get(&file) {
            Some(e) => Err(e.clone()),
            None => {
                let wasm = match std::fs::read(&file) {
                    Ok(w) => w,
                    Err(e) => {
                        diags.push(
                            Diagnostic::at(
                                r.span.clone(),
                                format!("cannot read plugin {}: {e}", file.display()),
                            )
                            .with_label("no such plugin file"),
                        );
                        continue;
                    }
                };
                if host.is_none() {
                    *host = weft_wasm_host::Host::new(weft_wasm_host::Options {
                        max_instances: 1,
                        cache_dir: plugin_cache.clone(),
                        ..Default::default()
                    })
                    .ok();
                }
                let Some(h) = host.as_ref() else { continue };
                // Loaded, not just inspected: a second reference to the same
                // plugin (its pre and post hooks, another file) costs nothing.
                h.load(&wasm)
                    .map(|p| p.inspection.clone())
                    .map_err(|e| e.to_string())
            }
        };
        match loaded {
            Ok(found) if found.world.as_str() != need.as_str() => diags.push(
                Diagnostic::at(
                    r.span.clone(),
                    format!(
                        "{} is a {} plugin; this needs a {} plugin",
                        r.value.name,
                        found.world.as_str(),
                        need.as_str()
                    ),
                )
                .with_label(format!("not a {} plugin", need.as_str())),
            ),
            Ok(_) => {}
            Err(e) => {
                diags.push(
                    Diagnostic::at(r.span.clone(), format!("{}: {e}", r.value.name))
                        .with_label("not a usable plugin"),
                );
                refused.insert(file, e);
            }
        }
    }
    diags
}
