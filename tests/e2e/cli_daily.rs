//! The CLI as a person uses it every day: `weft run` of a big workflow on
//! a terminal shows one bar with counts and the failures by name; `weft
//! serve` says where its dashboard is; a lost admin token is recovered on
//! the server's machine.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{text, weft_bin};

/// 10 layers of 30 chains; `l4_s7` fails.
fn layers() -> String {
    let mut text = String::from("[workflow]\nname = \"big\"\n");
    for k in 0..10 {
        for i in 0..30 {
            let run = if (k, i) == (4, 7) { "exit 3" } else { "true" };
            text.push_str(&format!("\n[steps.l{k}_s{i}]\nrun = \"{run}\"\n"));
            if k > 0 {
                text.push_str(&format!("needs = [\"l{}_s{i}\"]\n", k - 1));
            }
        }
    }
    text
}

#[test]
fn weft_run_of_300_steps_on_a_terminal_shows_one_bar_with_counts_and_failures_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.toml");
    std::fs::write(&file, layers()).unwrap();
    // `script` gives the run a terminal, as a person's shell would.
    let command = format!(
        "stty rows 50 cols 200; {} run --data-dir {} {}",
        weft_bin().display(),
        dir.path().join("d").display(),
        file.display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("COLUMNS", "160")
        .env("TERM", "xterm")
        .output()
        .expect("script (util-linux) runs a command on a terminal");
    let said = text(&out).replace('\r', "\n");
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("300/300 steps"),
        "one bar for the run: {said}"
    );
    assert!(
        said.contains("1 failed · 5 skipped · 294 succeeded"),
        "counts by state: {said}"
    );
    assert!(
        said.contains("running: l"),
        "the running steps by name: {said}"
    );
    assert!(
        said.contains("l4_s7 failed: exited with code 3"),
        "the failure by name: {said}"
    );
    // No bar per step: a line that starts with a step's id is its row in
    // the summary table (status, then attempts), never a bar.
    for line in said
        .lines()
        .filter(|l| l.trim_start().starts_with("l0_s0 "))
    {
        assert!(
            line.contains("succeeded  1"),
            "a bar of its own: {line:?}\n{said}"
        );
    }
}

/// `weft serve --embedded` in `dir`: the process, and its lines up to the
/// dashboard's address.
fn serve(dir: &Path) -> (Child, Vec<String>) {
    std::fs::write(
        dir.join("weft.toml"),
        "[broker]\nurl = \"amqp://guest:guest@127.0.0.1:1/%2f\"\n[redis]\nurl = \"redis://127.0.0.1:1/\"\n",
    )
    .unwrap();
    let mut child = Command::new(weft_bin())
        .args(["serve", "--embedded", "--listen", "127.0.0.1:0"])
        .env("WEFT_DATA_DIR", dir.join(".weft"))
        .current_dir(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("weft serve said no dashboard address: {lines:?}");
        };
        let done = line.contains("dashboard: http://");
        lines.push(line);
        if done {
            return (child, lines);
        }
    }
}

/// The address `weft serve` said it listens on.
fn served_at(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("http://")))
        .expect("weft serve says its address")
        .trim_end_matches('/')
        .to_string()
}

fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_says_where_its_dashboard_is_and_a_lost_admin_token_is_recovered_on_its_machine() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines) = serve(dir.path());
    let url = served_at(&lines);
    let dashboard = lines.last().unwrap();
    assert!(
        dashboard.ends_with(&format!("dashboard: {url}/")),
        "{lines:?}"
    );
    let first = lines
        .iter()
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("weft_")))
        .expect("the first admin token")
        .to_string();

    // While the server holds its store, recovering says so and writes nothing.
    let data = dir.path().join(".weft");
    let recover = |data: &Path| {
        Command::new(weft_bin())
            .args(["token", "recover", "--embedded", "--data-dir"])
            .arg(data)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let busy = recover(&data);
    assert!(!busy.status.success());
    assert!(
        text(&busy).contains("in use by another weft process"),
        "{}",
        text(&busy)
    );
    stop(child);

    // Stopped: a new admin token, and the first one still works.
    let out = recover(&data);
    assert!(out.status.success(), "{}", text(&out));
    let recovered = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("weft_"))
        .expect("the new token, printed once")
        .to_string();
    let (child, lines) = serve(dir.path());
    let url = served_at(&lines);
    let http = reqwest::Client::new();
    for token in [&recovered, &first] {
        let tokens: serde_json::Value = http
            .get(format!("{url}/api/tokens"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .expect("an admin's call")
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = tokens
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"recovered admin") && names.contains(&"first admin"),
            "{tokens}"
        );
    }
    stop(child);
}
