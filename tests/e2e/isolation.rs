//! Steps isolated from the worker and from each other: by default a root
//! worker's shell steps run as users of their own and cannot read another
//! running step's scratch directory, the worker's environment or its
//! configuration file (the drill of the trust issue).

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::cluster::{step, Cluster, Setup};

/// `holder` (a shell step) and `boxed` (a container) keep a password in
/// their inputs while `snoop` looks for it, and for the worker's secrets,
/// every way the drill did.
const WORKFLOW: &str = r#"
[workflow]
name = "snoop"
[params]
password = "hunter2-e2e"
config = ""
work = ""

[steps.holder]
run = "sleep 6"

[steps.boxed]
container = { image = "weft-test/busybox:1", command = "sleep 6" }

[steps.snoop]
run = '''
sleep 2
mine=$(id -u)
theirs=$(cat "{{ params.work }}/$WEFT_RUN_ID/holder@1/inputs.json" \
  "{{ params.work }}/$WEFT_RUN_ID/boxed@1/inputs.json" 2>/dev/null | grep -c hunter2)
listed=$(ls "{{ params.work }}" "{{ params.work }}/$WEFT_RUN_ID" 2>/dev/null | wc -l)
environ=$(tr '\0' '\n' < /proc/$PPID/environ 2>/dev/null | grep -c .)
config=$(cat "{{ params.config }}" 2>/dev/null | grep -c .)
own=$(grep -c hunter2 "$WEFT_INPUTS_FILE")
printf '{"uid": %s, "theirs": %s, "listed": %s, "environ": %s, "config": %s, "own": %s}' \
  "$mine" "$theirs" "$listed" "$environ" "$config" "$own" > "$WEFT_OUTPUTS"
'''
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_run_as_users_of_their_own_and_read_nothing_of_the_worker_or_each_other() {
    // No `run-as` or `step-uids`: what a root worker does by default.
    let cluster = Cluster::set_up(Setup {
        workers: 0,
        worker: "concurrency = 3",
        ..Setup::default()
    });
    // As an administrator would: the configuration (with the Redis and
    // broker URLs) readable by the worker alone, its directory passable.
    let config = cluster.dir.path().join("weft.toml");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cluster = cluster;
    cluster.start_worker();
    let work = cluster.dir.path().join("work");
    let params = json!({
        "config": config.display().to_string(),
        "work": work.display().to_string(),
    });
    let view = cluster.run_as(&cluster.admin_token, WORKFLOW, params).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let seen = step(&view, "snoop").outputs.clone().unwrap();
    let uid = seen["uid"].as_u64().unwrap();
    let uids = weft_worker::default_step_uids(&format!("{}-w0", cluster.prefix), 3);
    let first = u64::from(uids.first);
    assert!((first..first + 3).contains(&uid), "{seen}");
    // Its own inputs it reads; nothing of the other step or the worker.
    assert_eq!(seen["own"], 1, "{seen}");
    assert_eq!(seen["theirs"], 0, "{seen}");
    assert_eq!(seen["listed"], 0, "{seen}");
    assert_eq!(seen["environ"], 0, "{seen}");
    assert_eq!(seen["config"], 0, "{seen}");
    // And the worker, as root, still cleaned up after both.
    let left = crate::support::scratch_left(&work, &view.run.id).await;
    assert!(left.is_empty(), "{left:?}");
}

/// `first` leaves what a step may in its directory, and opens it to all;
/// `second`, run next by the same step user, reports what it finds in its
/// own. Between them a person approves (on the server, no worker's step),
/// once the worker has kept `first`'s directory: it keeps it after the
/// report of its end is acked, and the next job could otherwise come first.
const ONE_AFTER_ANOTHER: &str = r#"
[workflow]
name = "one-after-another"
[steps.first]
run = '''
echo "the first's" > left.txt; mkdir -p d/e; echo x > d/e/f; echo y > .hidden
head -c 3000 /dev/zero | tr '\0' x > inputs.json; chmod 777 .
printf '{"uid": %s, "inode": %s}' "$(id -u)" "$(stat -c %i .)" > "$WEFT_OUTPUTS"
'''
[steps.gate]
needs = ["first"]
approve = { timeout = "10m" }
[steps.second]
needs = ["first", "gate"]
run = '''
printf '{"uid": %s, "inode": %s, "names": "%s", "mode": "%s", "inputs": %s}' \
  "$(id -u)" "$(stat -c %i .)" "$(ls -A | tr '\n' ' ')" "$(stat -c %a .)" \
  "$(cat inputs.json)" > "$WEFT_OUTPUTS"
'''
"#;

/// A step's directory, emptied, is the next directory of the same step
/// user (a new inode each is what a fan-out spends its time on, see
/// `docs/performance.md`): the next step finds its own inputs in it and
/// nothing else of the step before, and it is closed to others again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_finds_nothing_of_the_step_before_in_a_directory_it_left() {
    let cluster = Cluster::set_up(Setup {
        worker: "concurrency = 1",
        ..Setup::default()
    });
    let id = cluster.submit_text(ONE_AFTER_ANOTHER).await;
    // `first` has ended once the gate waits; its directory leaves its
    // place (kept among the spares) once its end is reported and acked.
    cluster.awaiting_approval(&id, "gate").await;
    let first_dir = cluster.dir.path().join("work").join(&id).join("first@1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while first_dir.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} was never kept",
            first_dir.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    cluster.approve_when_waiting(&id, "gate", json!({})).await;
    let view = cluster.wait(&id, std::time::Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let first = step(&view, "first").outputs.clone().unwrap();
    let second = step(&view, "second").outputs.clone().unwrap();
    assert_eq!(first["uid"], second["uid"], "{first} {second}");
    assert_eq!(first["inode"], second["inode"], "the same directory");
    assert_eq!(second["names"], "inputs.json ", "{second}");
    assert_eq!(second["mode"], "700", "{second}");
    // Its own inputs (the first's outputs in them), whole, with nothing of
    // the longer file the first left (its outputs would not be JSON).
    let inputs = second["inputs"].to_string();
    assert!(second["inputs"].is_object(), "{second}");
    assert!(inputs.contains(&first["inode"].to_string()), "{inputs}");
    assert!(!inputs.contains("xxx"), "{inputs}");
}

/// What a step saw of itself: its uid and its working directory.
const WHERE: &str = r#"
[workflow]
name = "where"
[steps.here]
run = '''printf '{"uid": %s, "dir": "%s"}' "$(id -u)" "$PWD" > "$WEFT_OUTPUTS"'''
"#;

/// A root worker whose work-dir is closed to others (a private directory
/// above it) still runs steps as users of their own, in scratch
/// directories it makes in the temp directory and removes when it stops;
/// `run-as` names one user for every step instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_work_dir_moves_step_users_scratch_to_the_temp_directory() {
    let mut cluster = Cluster::set_up(Setup {
        workers: 0,
        ..Setup::default()
    });
    std::fs::set_permissions(cluster.dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let worker = cluster.start_worker();
    let view = cluster.run_as(&cluster.admin_token, WHERE, json!({})).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let seen = step(&view, "here").outputs.clone().unwrap();
    assert_ne!(seen["uid"], 0, "{seen}");
    // <root>/<run>/<task>@<attempt>
    let dir = std::path::PathBuf::from(seen["dir"].as_str().unwrap());
    let root = dir.ancestors().nth(2).unwrap().to_path_buf();
    assert!(
        root.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("weft-steps-"),
        "{seen}"
    );
    assert!(root.exists());
    // Stopped (SIGTERM), the worker takes its scratch root away.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while root.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!root.exists(), "{} is still there", root.display());
}

/// `run-as` names one user for every step: `nobody` is on every machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_names_one_user_for_every_step() {
    let cluster = Cluster::set_up(Setup {
        worker: "run-as = \"nobody\"",
        ..Setup::default()
    });
    let view = cluster.run_as(&cluster.admin_token, WHERE, json!({})).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let seen = step(&view, "here").outputs.clone().unwrap();
    assert_eq!(seen["uid"], nobody.uid.as_raw(), "{seen}");
}

/// `resources.memory` holds for a shell step too: going over it, the step
/// is killed and its attempt says `oom-killed`, as a container's would.
#[tokio::test]
async fn a_shell_step_over_its_memory_is_oom_killed() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("hog.toml");
    std::fs::write(
        &file,
        "[workflow]\nname = \"hog\"\n\
         [steps.small]\nresources = { memory = \"64MiB\" }\nrun = \"python3 -c 'b = bytearray(16 << 20)'\"\n\
         [steps.hog]\nneeds = [\"small\"]\nresources = { memory = \"64MiB\" }\n\
         run = \"python3 -c 'b = bytearray(256 << 20); print(len(b))'\"\n",
    )
    .unwrap();
    let out = crate::support::weft(&["run", file.to_str().unwrap(), "--plain"], data.path());
    assert!(!out.status.success(), "{}", crate::support::text(&out));
    let (_, record, state) = crate::support::newest_embedded_run(data.path()).await;
    let view = weft_api::views::RunView::new(&record, &state);
    assert_eq!(step(&view, "small").status, "succeeded", "{view:?}");
    let hog = &step(&view, "hog").tasks[0].attempts[0];
    assert!(
        hog.error
            .as_deref()
            .unwrap_or_default()
            .contains("oom-killed: the step went over its memory limit of 64 MiB"),
        "{hog:?}"
    );
    assert_eq!(
        hog.error_kind,
        Some(weft_core::run::FailureKind::OutOfMemory)
    );
}

/// `resources.cpus` holds for a shell step too: a busy loop for two
/// seconds with a fifth of a CPU gets about 0.4 s of it.
#[tokio::test]
async fn a_shell_step_gets_no_more_cpu_than_it_asked_for() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("spin.toml");
    std::fs::write(
        &file,
        "[workflow]\nname = \"spin\"\n\
         [steps.spin]\nresources = { cpus = 0.2 }\n\
         run = \"\"\"\n\
         timeout 2 sh -c 'while :; do :; done'\n\
         times > \"$WEFT_OUTPUTS.t\"\n\
         printf '{\"times\": \"%s\"}' \"$(tail -n 1 \"$WEFT_OUTPUTS.t\")\" > \"$WEFT_OUTPUTS\"\n\
         \"\"\"\n",
    )
    .unwrap();
    let out = crate::support::weft(&["run", file.to_str().unwrap(), "--plain"], data.path());
    assert!(out.status.success(), "{}", crate::support::text(&out));
    let (_, record, state) = crate::support::newest_embedded_run(data.path()).await;
    let view = weft_api::views::RunView::new(&record, &state);
    // `times` (run in the shell itself: a subshell would count its own
    // children): the children's user and system time, `0m0.42s 0m0.00s`.
    // Measured here: 0.42 s with the quota, 1.98 s without.
    let times = step(&view, "spin").outputs.clone().unwrap()["times"]
        .as_str()
        .unwrap()
        .to_string();
    let ms: f64 = times
        .split_whitespace()
        .map(|t| {
            let (m, s) = t.trim_end_matches('s').split_once('m').unwrap();
            m.parse::<f64>().unwrap() * 60_000.0 + s.parse::<f64>().unwrap() * 1000.0
        })
        .sum();
    // Unlimited, the loop would use about 2,000 ms of an idle core.
    assert!(
        ms < 1_000.0,
        "the loop used {ms} ms of CPU in 2 s with cpus = 0.2 ({times})"
    );
}
