//! `weft check`: every problem of every file, compiler style.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, termcolor};
use weft_core::diagnostic::Diagnostic;
use weft_core::spec::{self, Workflow};

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

pub fn check(files: &[std::path::PathBuf]) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for path in files {
        match load_or_report(path) {
            Ok(Some((_, w))) => println!("{}: ok ({} steps)", path.display(), w.steps.len()),
            Ok(None) => failed = true,
            Err(e) => {
                eprintln!("error: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
