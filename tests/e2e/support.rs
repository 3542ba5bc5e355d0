//! Finding the binary and the repository, running commands, reading what
//! an embedded run left.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// The `weft` binary built beside this test (`cargo build --workspace` or nextest builds it).
pub fn weft_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/..");
    let bin = dir.join("weft");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`)",
        bin.display()
    );
    bin
}

pub fn weft(args: &[&str], data_dir: &Path) -> Output {
    Command::new(weft_bin())
        .args(args)
        .env("WEFT_DATA_DIR", data_dir)
        .env("NO_COLOR", "1")
        .current_dir(repo())
        .output()
        .expect("running weft")
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// No Rust panic message in the output of a command given bad input.
pub fn assert_no_panic(out: &Output) {
    let t = text(out);
    assert!(!t.contains("panicked"), "weft panicked:\n{t}");
    assert!(out.status.code().is_some(), "weft died by a signal:\n{t}");
}

/// A component built by `plugins/build` (which `scripts/test` runs first).
pub fn plugin_wasm(name: &str) -> Vec<u8> {
    let path = repo().join("plugins/dist").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the plugins with plugins/build",
            path.display()
        )
    })
}

/// The plugins `workflows/plugins.toml` uses, as version 0.1.0.
pub const EXAMPLE_PLUGINS: &[&str] = &[
    "validate-inputs",
    "metrics-extract",
    "redact-secrets",
    "text-stats",
];

/// Pushes the example plugins into the embedded store in `data_dir`.
pub fn push_example_plugins(data_dir: &Path) {
    for name in EXAMPLE_PLUGINS {
        let file = format!("plugins/dist/{name}.wasm");
        let out = weft(
            &[
                "plugin",
                "push",
                &file,
                "--name",
                name,
                "--version",
                "0.1.0",
            ],
            data_dir,
        );
        assert!(out.status.success(), "{}", text(&out));
    }
}

/// The newest run in the embedded data directory `data_dir`, read back
/// from its store: the store (for logs), the run's record, its replayed state.
pub async fn newest_embedded_run(
    data_dir: &Path,
) -> (
    weft_store_embedded::EmbeddedRunStore,
    weft_core::ports::RunRecord,
    weft_core::run::RunState,
) {
    let store = weft_store_embedded::EmbeddedRunStore::open(data_dir).unwrap();
    let runs = weft_core::ports::RunIndex::list_runs(&store, 1)
        .await
        .unwrap();
    let newest = &runs.first().expect("a run in the data directory").id;
    let (record, state) = weft_orchestrator::load_run(&store, newest)
        .await
        .unwrap()
        .unwrap();
    (store, record, state)
}

/// A directory every user may write into (1777, as /tmp), for what steps
/// leave for a test to read: a root worker runs them as step users, who
/// cannot write into the test's own directories.
pub fn shared_dir(parent: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent.join("shared");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    // Passable (not listable) for the step users on the way there.
    let mode = std::fs::metadata(parent).unwrap().permissions().mode();
    std::fs::set_permissions(parent, std::fs::Permissions::from_mode(mode | 0o111)).unwrap();
    dir
}

/// An empty file in `dir` every user may append to, for what several
/// steps (each perhaps a user of its own) write a line into.
pub fn shared_file(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let file = dir.join(name);
    std::fs::write(&file, "").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    file
}

/// Lines of `path`, counted: how many times each effect happened.
pub fn counted(path: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        *seen.entry(line.to_string()).or_default() += 1;
    }
    seen
}

/// What became of effects that should each have happened once, written
/// as lines of `path`: `(lost, twice)`, those of `expected` missing, and
/// every line seen more than once.
pub fn lost_and_twice(
    path: &Path,
    expected: impl IntoIterator<Item = String>,
) -> (Vec<String>, Vec<String>) {
    let seen = counted(path);
    let lost = expected
        .into_iter()
        .filter(|e| !seen.contains_key(e))
        .collect();
    let twice = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(e, _)| e)
        .collect();
    (lost, twice)
}

/// The lines of `path` once it has at least `n` (a step's effects, its
/// pid), failing the test after `limit`.
pub fn wait_for_lines(path: &Path, n: usize, limit: std::time::Duration) -> Vec<String> {
    let start = std::time::Instant::now();
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            start.elapsed() < limit,
            "{} never had {n} lines",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Every path under `dir`, directories and files.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
            found.push(entry.path());
        }
    }
    found
}

/// What is left in a running worker's `work` directory of run `run_id`'s
/// scratch directories, once they have had the time to go: a worker
/// removes a run's directory after the run has been idle there a few
/// seconds (`weft_worker`'s `ScratchDirs`), so this waits up to 20 s.
pub async fn scratch_left(work: &Path, run_id: &str) -> Vec<PathBuf> {
    let left = || -> Vec<PathBuf> {
        std::fs::read_dir(work)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(run_id))
            .map(|e| e.path())
            .collect()
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !left().is_empty() && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    left()
}
