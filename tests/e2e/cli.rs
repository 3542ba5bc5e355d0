//! The CLI around runs: params, history, logs per attempt, Ctrl-C.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{text, weft, weft_bin};

fn last_run_id(data: &std::path::Path) -> String {
    let out = weft(&["runs"], data);
    text(&out)
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("a run")
        .to_string()
}

#[test]
fn params_override_defaults_and_unknown_params_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let out = weft(
        &[
            "run",
            "workflows/hello.toml",
            "--plain",
            "--param",
            "who=weft",
        ],
        data.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("hello, weft"), "{}", text(&out));
    let out = weft(
        &["run", "workflows/hello.toml", "--param", "whom=x"],
        data.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("unknown parameter `whom`"),
        "{}",
        text(&out)
    );
}

#[test]
fn history_and_logs_survive_the_process() {
    let data = tempfile::tempdir().unwrap();
    let out = weft(&["run", "workflows/retries.toml", "--plain"], data.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = last_run_id(data.path());
    let runs = text(&weft(&["runs"], data.path()));
    assert!(
        runs.contains("retries") && runs.contains("succeeded"),
        "{runs}"
    );
    let first = text(&weft(
        &["logs", &id, "flaky", "--attempt", "1"],
        data.path(),
    ));
    assert!(
        first.contains("attempt 1") && first.contains("not yet"),
        "{first}"
    );
    let last = text(&weft(&["logs", &id[..10], "flaky"], data.path()));
    assert!(
        last.contains("attempt 3") && !last.contains("not yet"),
        "{last}"
    );
    let show = text(&weft(&["show", &id], data.path()));
    assert!(
        show.contains("flaky") && show.contains("exited with code 1") && show.contains("succeeded"),
        "{show}"
    );
}

#[test]
fn fan_out_instances_have_their_own_logs() {
    let data = tempfile::tempdir().unwrap();
    assert_eq!(
        weft(&["run", "workflows/fan-out.toml", "--plain"], data.path())
            .status
            .code(),
        Some(0)
    );
    let id = last_run_id(data.path());
    assert_eq!(
        text(&weft(&["logs", &id, "prepare[2]"], data.path())).trim(),
        "preparing s2"
    );
    assert!(text(&weft(&["logs", &id, "prepare"], data.path())).contains("name an instance"));
}

/// Ctrl-C to a `weft run`: it cancels its run and exits with 130.
fn interrupt(child: &mut std::process::Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
}

#[test]
fn ctrl_c_cancels_the_run_and_kills_the_step_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let wf = dir.path().join("long.toml");
    std::fs::write(
        &wf,
        format!(
            "[workflow]\nname = 'long'\n[steps.sleep]\nrun = 'sleep 60 & echo $! > {}; wait'\n",
            pid_file.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(weft_bin())
        .args(["run", wf.to_str().unwrap(), "--plain"])
        .env("WEFT_DATA_DIR", dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !pid_file.exists()
        || std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the step never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sleeper: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    interrupt(&mut child);
    std::thread::sleep(Duration::from_millis(200));
    // A zombie (dead, not yet reaped by this container's init) counts as gone.
    let stat = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
    let alive = stat
        .rsplit(')')
        .next()
        .is_some_and(|rest| !rest.trim_start().starts_with('Z'));
    assert!(!alive, "the step's background sleep survived the cancel");
    let runs = text(&weft(&["runs"], &dir.path().join("data")));
    assert!(runs.contains("cancelled"), "{runs}");
}

/// On one slot, `weft run` claims and prepares the next step while the
/// slot is busy (its directory made aside); cancelled meanwhile, that
/// step never runs.
#[test]
fn a_step_prepared_ahead_of_its_slot_never_runs_once_its_run_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let (marks, data) = (dir.path().join("marks"), dir.path().join("data"));
    let wf = dir.path().join("two.toml");
    std::fs::write(
        &wf,
        format!(
            "[workflow]\nname = 'two'\n[steps.s]\nfor-each = [1, 2]\n\
             run = 'echo $WEFT_ITEM >> {}; sleep 60'\n",
            marks.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(weft_bin())
        .args(["run", wf.to_str().unwrap(), "--plain", "--concurrency", "1"])
        .env("WEFT_DATA_DIR", &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // One runs; the other's directory waits aside.
    let aside = || weft_testkit::prepared_aside(&data.join("work"), "s[");
    let start = Instant::now();
    while !(marks.exists() && aside()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no step ran with another prepared ahead"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    interrupt(&mut child);
    let ran = std::fs::read_to_string(&marks).unwrap();
    assert_eq!(
        ran.lines().count(),
        1,
        "only the step in the slot ran: {ran}"
    );
    let runs = text(&weft(&["runs"], &data));
    assert!(runs.contains("cancelled"), "{runs}");
}

#[test]
fn inputs_too_big_for_the_environment_come_in_their_file() {
    let data = tempfile::tempdir().unwrap();
    // 200 KB of outputs: more than one environment variable may hold.
    let file = data.path().join("big-inputs.toml");
    std::fs::write(
        &file,
        r#"[workflow]
name = "big-inputs"
[steps.big]
run = "printf '{\"blob\": \"%0200000d\"}' 0 > \"$WEFT_OUTPUTS\""
[steps.next]
needs = ["big"]
run = "test -z \"${WEFT_INPUTS+set}\" && wc -c < \"$WEFT_INPUTS_FILE\""
"#,
    )
    .unwrap();
    let out = weft(&["run", file.to_str().unwrap(), "--plain"], data.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = last_run_id(data.path());
    let log = text(&weft(&["logs", &id, "next"], data.path()));
    assert!(
        log.contains("$WEFT_INPUTS is not set: the inputs are 196 KiB"),
        "{log}"
    );
    let bytes: usize = log
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("the size of the inputs file");
    assert!(bytes > 200_000, "{log}");
}

#[test]
fn a_for_each_over_big_params_says_once_that_its_inputs_are_not_in_the_environment() {
    let data = tempfile::tempdir().unwrap();
    // 80 KB of params: every instance's inputs are over the environment's limit.
    let blob = "x".repeat(80_000);
    let file = data.path().join("big-params.toml");
    std::fs::write(
        &file,
        format!(
            r#"[workflow]
name = "big-params"
[params]
blob = "{blob}"
items = ["a", "b", "c", "d"]
[steps.each]
for-each = "{{{{ params.items }}}}"
run = "test -z \"${{WEFT_INPUTS+set}}\" && grep -c {{{{ item }}}} \"$WEFT_INPUTS_FILE\""
"#
        ),
    )
    .unwrap();
    let out = weft(&["run", file.to_str().unwrap(), "--plain"], data.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = last_run_id(data.path());
    let told = (0..4)
        .filter(|i| {
            let log = text(&weft(&["logs", &id, &format!("each[{i}]")], data.path()));
            assert!(
                log.contains('1'),
                "each[{i}] read its item from the file: {log}"
            );
            log.contains("$WEFT_INPUTS is not set")
        })
        .count();
    assert_eq!(told, 1, "one instance's log says why $WEFT_INPUTS is unset");
}

#[test]
fn a_server_that_is_not_there_or_not_weft_is_named_plainly() {
    let data = tempfile::tempdir().unwrap();
    // A port nothing listens on: bind one, then free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = weft(&["runs", "--server", &url], data.path());
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "cannot reach the weft server at {url}: Connection refused"
        )),
        "{said}"
    );
    assert_eq!(
        said.matches(&url).count(),
        1,
        "the URL is named once: {said}"
    );

    // Something that answers HTTP, but not as weft does.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", other.local_addr().unwrap());
    let answering = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = other.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = conn.read(&mut request).unwrap();
        conn.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
    });
    let out = weft(&["runs", "--server", &url], data.path());
    answering.join().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "{url} answered 404 Not Found with no weft error message; is it a weft server?"
        )),
        "{said}"
    );
}

#[test]
fn a_worker_given_a_pool_no_queue_can_carry_says_so_before_connecting() {
    let data = tempfile::tempdir().unwrap();
    let long = "p".repeat(101);
    for (pool, says) in [
        (
            "a.b",
            "pool name `a.b` may hold only letters, digits, `_` and `-`",
        ),
        (long.as_str(), "is 101 characters; at most 100"),
    ] {
        let out = weft(
            &["worker", "--pool", "default", "--pool", pool],
            data.path(),
        );
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains(says), "{said}");
    }
}

/// Lines of a child's standard output as they come, on a channel.
fn lines_of(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn run_logs_prints_each_steps_output_while_it_runs_and_before_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let wf = dir.path().join("talk.toml");
    std::fs::write(
        &wf,
        format!(
            r#"[workflow]
name = "talk"
[steps.talk]
timeout = "60s"
run = "echo first; while [ ! -e {go} ]; do sleep 0.05; done; echo second >&2; sleep 0.2; printf 'no newline'"
[steps.after]
needs = ["talk"]
run = "echo done"
"#,
            go = go.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(weft_bin())
        .args(["run", "--logs", "--plain", wf.to_str().unwrap()])
        .env("WEFT_DATA_DIR", dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // (stderr and stdout are two pipes read side by side: the pause keeps
    // `second` whole before the unterminated stdout text arrives.)
    let lines = lines_of(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    // The step waits for `go`, so its first line can only have come live.
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no `talk | first` while the step ran: {seen:?}"));
        seen.push(line);
        if seen.last().unwrap().ends_with("talk | first") {
            break;
        }
    }
    std::fs::write(&go, "").unwrap();
    seen.extend(lines.iter());
    assert!(child.wait().unwrap().success(), "{seen:#?}");
    let at = |wanted: &str| {
        seen.iter()
            .position(|l| l.contains(wanted))
            .unwrap_or_else(|| panic!("no line with `{wanted}`: {seen:#?}"))
    };
    assert!(at("talk | first") < at("talk | second"), "{seen:#?}");
    assert!(at("talk | second") < at("talk | no newline"), "{seen:#?}");
    assert!(at("talk | no newline") < at("talk succeeded"), "{seen:#?}");
    assert!(at("after started") < at("after | done"), "{seen:#?}");
    assert!(at("after | done") < at("after succeeded"), "{seen:#?}");
}

#[test]
fn steps_run_side_by_side_up_to_the_concurrency() {
    // Each step waits for the other to have started: they finish only if
    // both run at once. A worker's idle GPU-queue taker once held one of
    // the two slots, so they ran one after the other and timed out here.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let step = |mine: &std::path::Path, other: &std::path::Path| {
        format!(
            "timeout = \"20s\"\nrun = \"touch {}; while [ ! -e {} ]; do sleep 0.05; done\"\n",
            mine.display(),
            other.display()
        )
    };
    let wf = dir.path().join("pair.toml");
    std::fs::write(
        &wf,
        format!(
            "[workflow]\nname = \"pair\"\n[steps.a]\n{}[steps.b]\n{}",
            step(&a, &b),
            step(&b, &a)
        ),
    )
    .unwrap();
    let out = weft(
        &["run", "--plain", "--concurrency", "2", wf.to_str().unwrap()],
        &dir.path().join("data"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_closed_standard_output_ends_listings_quietly_and_runs_go_on() {
    let data = tempfile::tempdir().unwrap();
    let closed = |args: &[&str]| {
        // Nobody reads: the reading end is closed before weft starts, so
        // its first write finds the pipe closed however soon it writes
        // (closed after the spawn, a quick `weft schema` could fill the
        // pipe's buffer first and exit 0).
        let (reader, writer) = nix::unistd::pipe().unwrap();
        drop(reader);
        Command::new(weft_bin())
            .args(args)
            .env("WEFT_DATA_DIR", data.path())
            .current_dir(crate::support::repo())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
            .wait_with_output()
            .unwrap()
    };
    let out = closed(&["run", "--plain", "workflows/hello.toml"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "the run still succeeds: {said}");
    assert!(!said.contains("panicked"), "{said}");
    assert!(
        text(&weft(&["runs"], data.path())).contains("succeeded"),
        "the run was kept"
    );
    for args in [&["runs"][..], &["schema"][..]] {
        let out = closed(args);
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(141), "weft {args:?}: {said}");
        assert!(!said.contains("panicked"), "weft {args:?}: {said}");
    }
}

#[test]
fn retry_without_a_server_runs_again_here_reusing_what_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let wf = dir.path().join("flaky.toml");
    std::fs::write(
        &wf,
        r#"[workflow]
name = "flaky"
[steps.prep]
run = "echo ran >> prep-ran; echo '{\"n\": 7}' > \"$WEFT_OUTPUTS\""
[steps.flaky]
needs = ["prep"]
run = "test -e fixed || exit 3; echo 'fixed, n={{ steps.prep.outputs.n }}'"
[steps.after]
needs = ["flaky"]
run = "echo after"
"#,
    )
    .unwrap();
    let prep_runs = || {
        std::fs::read_to_string(dir.path().join("prep-ran"))
            .unwrap()
            .lines()
            .count()
    };
    let out = weft(&["run", "--plain", wf.to_str().unwrap()], &data);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = last_run_id(&data);

    std::fs::write(dir.path().join("fixed"), "").unwrap();
    let out = weft(&["retry", &failed[..10], "--plain", "--logs"], &data);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains(&format!("retrying run {failed}")), "{said}");
    assert!(
        said.contains(&format!("prep reused from run {failed}")),
        "{said}"
    );
    assert!(said.contains("flaky | fixed, n=7"), "{said}");
    assert_eq!(prep_runs(), 1, "prep ran again: {said}");
    let retried = last_run_id(&data);
    assert_ne!(retried, failed);

    let out = weft(&["retry", &retried, "--from", "prep", "--plain"], &data);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(prep_runs(), 2, "--from prep runs prep again");

    let out = weft(&["retry", &retried, "--from", "nostep"], &data);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("has no step `nostep`"),
        "{}",
        text(&out)
    );
    let out = weft(&["retry", "nope"], &data);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no run `nope`"), "{}", text(&out));
}

#[test]
fn a_step_sees_a_minimal_environment_and_leaves_no_scratch_behind() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("env.toml");
    std::fs::write(
        &file,
        "[workflow]\nname = \"env\"\n[steps.show]\nfor-each = [1, 2, 3]\nenv = { MINE = \"mine\" }\nrun = \"env | sort\"\n",
    )
    .unwrap();
    let out = Command::new(weft_bin())
        .args(["run", file.to_str().unwrap(), "--plain", "--logs"])
        .env("WEFT_DATA_DIR", data.path())
        .env("WEFT_TOKEN", "weft_secret_token")
        .env("REDIS_URL", "redis://:hunter2@db:6379/")
        .env("AWS_SECRET_ACCESS_KEY", "not-for-steps")
        .output()
        .unwrap();
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    // Its own variables and what programs expect...
    assert!(printed.contains("MINE=mine"), "{printed}");
    assert!(printed.contains("PATH="), "{printed}");
    assert!(printed.contains("WEFT_RUN_ID="), "{printed}");
    // ...and nothing the worker was started with.
    for secret in [
        "weft_secret_token",
        "hunter2",
        "not-for-steps",
        "WEFT_DATA_DIR",
    ] {
        assert!(
            !printed.contains(secret),
            "a step saw `{secret}`:\n{printed}"
        );
    }
    // Every attempt's scratch directory is gone, and its run's with it.
    let work = data.path().join("work");
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n == "plugin-cache" || n == "ptx-cache"),
        "left in {}: {left:?}",
        work.display()
    );
}
