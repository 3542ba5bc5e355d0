//! Container steps against the real Docker engine (`scripts/test` starts one
//! and builds the local image `weft-test/busybox:1`).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::{step, Cluster};
use crate::support::{newest_embedded_run, text, weft};

const IMAGE: &str = "weft-test/busybox:1";

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Containers of this run still on the engine, running or not.
fn containers_of(run_id: &str) -> String {
    docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=dev.weft.run={run_id}"),
    ])
}

/// Runs `workflow` on the embedded engine; the run's view and the output.
async fn run(workflow: &str) -> (weft_api::views::RunView, String) {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("w.toml");
    std::fs::write(&file, workflow.replace("IMAGE", IMAGE)).unwrap();
    let out = weft(&["run", file.to_str().unwrap(), "--plain"], data.path());
    let (store, record, state) = newest_embedded_run(data.path()).await;
    let mut output = text(&out);
    for s in &state.plan.workflow.steps {
        let log = weft_core::ports::StepLogs::read_log(
            &store,
            &weft_core::ports::AttemptId {
                run_id: record.id.clone(),
                task: weft_core::run::TaskId::new(&s.id, None),
                attempt: 1,
            },
        )
        .await
        .unwrap();
        output.push_str(&format!(
            "\n--- log of {}\n{}",
            s.id,
            String::from_utf8_lossy(&log)
        ));
    }
    (weft_api::views::RunView::new(&record, &state), output)
}

#[tokio::test]
async fn container_steps_pass_outputs_report_exit_codes_and_run_unprivileged() {
    let (view, out) = run(r#"
[workflow]
name = "containers"
[steps.make]
container = { image = "IMAGE", command = ["sh", "-c", "echo '{\"n\": 42}' > \"$WEFT_OUTPUTS\"; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; echo nets: $(ls /sys/class/net); touch /etc/x || echo root is read-only; echo scratch > /tmp/ok && echo tmp is writable"] }
[steps.use]
needs = ["make"]
container = { image = "IMAGE", command = "echo got {{ steps.make.outputs.n }}; exit 3" }
"#)
    .await;
    assert_eq!(step(&view, "make").status, "succeeded", "{out}");
    assert_eq!(step(&view, "make").outputs.as_ref().unwrap()["n"], 42);
    // No capabilities, no new privileges, no network but loopback.
    let lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        lines.contains(&"CapEff:0000000000000000".to_string()),
        "{out}"
    );
    assert!(lines.contains(&"NoNewPrivs:1".to_string()), "{out}");
    // `ls /sys/class/net`: loopback only (stdout and stderr may interleave).
    assert!(lines.contains(&"nets:lo".to_string()), "{out}");
    assert!(
        out.contains("root is read-only") && out.contains("tmp is writable"),
        "{out}"
    );
    // What the container wrote to stderr is marked as such in its log.
    assert!(out.contains("\u{1e}touch: /etc/x"), "{out}");
    assert!(!out.contains("\u{1e}root is read-only"), "{out}");
    let used = step(&view, "use");
    assert_eq!(used.status, "failed");
    assert_eq!(used.reason.as_deref(), Some("exited with code 3"));
    assert!(out.contains("got 42"), "{out}");
    assert!(
        containers_of(&view.run.id).trim().is_empty(),
        "containers left behind"
    );
}

#[tokio::test]
async fn a_timeout_kills_the_container_and_an_oom_kill_is_reported_as_such() {
    let started = Instant::now();
    let (view, out) = run(r#"
[workflow]
name = "limits"
[steps.slow]
# Room for a slow engine to start the container on a loaded machine.
timeout = "6s"
container = { image = "IMAGE", command = "echo sleeping; sleep 60" }
[steps.greedy]
resources = { memory = "32MiB" }
container = { image = "IMAGE", command = "tail /dev/zero" }
"#)
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the sleep was not killed"
    );
    let slow = step(&view, "slow");
    assert_eq!(slow.status, "failed", "{out}");
    assert!(
        slow.reason
            .as_deref()
            .unwrap()
            .starts_with("timed out after 6"),
        "{out}"
    );
    assert!(out.contains("sleeping"), "{out}");
    let greedy = step(&view, "greedy");
    assert_eq!(greedy.status, "failed", "{out}");
    assert_eq!(
        greedy.reason.as_deref(),
        Some("oom-killed: the container went over its memory limit of 32 MiB"),
        "{out}"
    );
    assert!(
        containers_of(&view.run.id).trim().is_empty(),
        "containers left behind"
    );
}

#[tokio::test]
async fn a_missing_image_fails_the_step_with_a_clear_message() {
    let (view, out) = run(r#"
[workflow]
name = "no-image"
[steps.a]
container = { image = "weft-test/no-such-image:0", command = "true" }
"#)
    .await;
    let a = step(&view, "a");
    assert_eq!(a.status, "failed");
    let reason = a.reason.as_deref().unwrap();
    assert!(
        reason
            .contains("image weft-test/no-such-image:0 is not on this worker and cannot be pulled"),
        "{out}"
    );
    assert!(
        out.contains("[weft] pulling image weft-test/no-such-image:0"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_logs_stream_live_and_cancel_stops_the_container() {
    let cluster = Cluster::start(1);
    let file = cluster.dir.path().join("long.toml");
    std::fs::write(
        &file,
        format!(
            "[workflow]\nname = \"long\"\n[steps.tick]\ncontainer = {{ image = \"{IMAGE}\", command = \"for i in 1 2 3 4 5 6 7 8 9 10; do echo tick $i; sleep 1; done; sleep 60\" }}\n"
        ),
    )
    .unwrap();
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    // A line arrives while the container still runs.
    let started = Instant::now();
    loop {
        let log = cluster
            .client()
            .logs(&id, "tick", None)
            .await
            .unwrap_or_default();
        if String::from_utf8_lossy(&log).contains("tick 2") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no live log");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !containers_of(&id).trim().is_empty(),
        "the container should be running"
    );
    assert!(!cluster.client().run(&id).await.unwrap().is_finished());
    cluster.client().cancel(&id).await.unwrap();
    let view = cluster.wait(&id, Duration::from_secs(30)).await;
    assert_eq!(view.run.status, "cancelled");
    let gone = Instant::now();
    while !containers_of(&id).trim().is_empty() {
        assert!(
            gone.elapsed() < Duration::from_secs(20),
            "cancel left the container running"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_removes_containers_left_by_its_earlier_life() {
    let mut cluster = Cluster::start(0);
    let name = format!("{}-w0", cluster.prefix);
    let orphan = docker(&[
        "run",
        "-d",
        "--label",
        &format!("dev.weft.worker={name}"),
        IMAGE,
        "sleep",
        "300",
    ]);
    let other = docker(&[
        "run",
        "-d",
        "--label",
        "dev.weft.worker=someone-else",
        IMAGE,
        "sleep",
        "300",
    ]);
    cluster.start_worker();
    let started = Instant::now();
    loop {
        let left = docker(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=dev.weft.worker={name}"),
        ]);
        if left.trim().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "orphan {orphan} still there"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Another worker's containers are not this worker's to remove.
    assert!(docker(&["ps", "-q", "--no-trunc"]).contains(other.trim()));
    docker(&["rm", "-f", other.trim()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_steps_go_only_to_workers_with_a_free_gpu() {
    let mut cluster = Cluster::start(1);
    cluster.start_worker_with(&["--gpu", "0:FakeGPU"]);
    let gpu_worker = format!("{}-w1", cluster.prefix);
    let file = cluster.dir.path().join("gpus.toml");
    let gpu_step = |n: u32| {
        format!(
            "[steps.g{n}]\nresources = {{ gpus = 1 }}\nrun = 'echo \"devices=$CUDA_VISIBLE_DEVICES\"; sleep 1'\n"
        )
    };
    std::fs::write(
        &file,
        format!(
            "[workflow]\nname = \"gpus\"\n{}{}{}[steps.plain]\nrun = \"true\"\n[steps.greedy]\nresources = {{ gpus = 2 }}\nrun = \"true\"\n",
            gpu_step(1),
            gpu_step(2),
            gpu_step(3)
        ),
    )
    .unwrap();
    // The GPU worker is listed with its GPU before anything is submitted.
    let started = Instant::now();
    loop {
        let workers = cluster.client().workers().await.unwrap();
        if workers
            .iter()
            .any(|w| w.name == gpu_worker && w.slots.gpus.iter().any(|g| g.name == "FakeGPU"))
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{workers:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    let mut spans = Vec::new();
    for n in 1..=3 {
        let s = step(&view, &format!("g{n}"));
        assert_eq!(s.status, "succeeded", "{view:?}");
        let attempt = &s.tasks[0].attempts[0];
        assert_eq!(attempt.worker.as_deref(), Some(gpu_worker.as_str()));
        spans.push((attempt.started_at.unwrap(), attempt.finished_at.unwrap()));
        let log = cluster
            .client()
            .logs(&id, &format!("g{n}"), None)
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&log).trim(), "devices=0");
    }
    // One GPU: the three steps never overlapped.
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "GPU steps overlapped: {spans:?}");
    }
    assert_eq!(step(&view, "plain").status, "succeeded");
    let greedy = step(&view, "greedy");
    assert_eq!(greedy.status, "failed");
    assert!(
        greedy
            .reason
            .as_deref()
            .unwrap()
            .starts_with("unschedulable: the step asks for 2 GPU(s)"),
        "{greedy:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gpu_step_no_live_worker_can_take_says_why_it_waits() {
    let mut cluster = Cluster::start(1);
    let file = cluster.dir.path().join("waits.toml");
    std::fs::write(
        &file,
        "[workflow]\nname = \"waits\"\n[steps.train]\nresources = { gpus = 1 }\nrun = \"echo trained\"\n",
    )
    .unwrap();
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    let started = Instant::now();
    loop {
        let view = cluster.client().run(&id).await.unwrap();
        let reason = step(&view, "train").reason.clone().unwrap_or_default();
        if reason == "waiting: the step needs 1 GPU(s), and no live worker of pool `default` has more than 0" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{view:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A worker with a GPU joins: the step runs, and the reason is gone.
    cluster.start_worker_with(&["--gpu", "0:FakeGPU"]);
    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    let train = step(&view, "train");
    assert_eq!(train.status, "succeeded", "{view:?}");
    assert_eq!(train.reason, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_step_leaves_no_container_once_restarted() {
    let mut cluster = Cluster::start(1);
    let file = cluster.dir.path().join("crash.toml");
    std::fs::write(
        &file,
        format!(
            "[workflow]\nname = \"crash\"\n[steps.long]\ncontainer = {{ image = \"{IMAGE}\", command = \"echo started; sleep 4; echo finished\" }}\n"
        ),
    )
    .unwrap();
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    let started = Instant::now();
    let first = loop {
        // Running, not just created: the kill must catch it mid-step.
        let running = docker(&["ps", "-q", "--filter", &format!("label=dev.weft.run={id}")]);
        if !running.trim().is_empty() {
            break running.trim().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no container started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // SIGKILL: the worker gets no chance to stop its container.
    cluster.kill_worker(0);
    assert!(
        docker(&["ps", "-q"]).contains(&first[..12]),
        "the container should outlive its killed worker"
    );
    cluster.restart_worker(0);
    let view = cluster.wait(&id, Duration::from_secs(90)).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let all = docker(&["ps", "-aq"]);
    assert!(
        !all.contains(&first[..12]),
        "the orphan {first} is still there"
    );
    assert!(
        containers_of(&id).trim().is_empty(),
        "containers of the run left behind"
    );
}

#[tokio::test]
async fn a_templated_mount_of_the_docker_socket_fails_the_step_before_any_container() {
    // `weft check` cannot see what a parameter will hold...
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("w.toml");
    std::fs::write(
        &file,
        format!(
            "[workflow]\nname = \"sneaky\"\n[params]\nsrc = \"/data\"\n\
             [steps.peek]\ncontainer = {{ image = \"{IMAGE}\", command = \"ls /x\", mounts = [\"{{{{ params.src }}}}:/x\"] }}\n"
        ),
    )
    .unwrap();
    let checked = weft(&["check", file.to_str().unwrap()], data.path());
    assert!(checked.status.success(), "{}", text(&checked));
    // ...so the rendered value is checked where the step is dispatched.
    let out = weft(
        &[
            "run",
            file.to_str().unwrap(),
            "--plain",
            "--param",
            "src=/var/run/../run/docker.sock",
        ],
        data.path(),
    );
    assert!(!out.status.success(), "{}", text(&out));
    let (_, record, state) = newest_embedded_run(data.path()).await;
    let view = weft_api::views::RunView::new(&record, &state);
    let peek = step(&view, "peek");
    assert_eq!(peek.status, "failed");
    let reason = peek.tasks[0].attempts[0].error.clone().unwrap_or_default();
    assert!(
        reason.contains("mounting `/var/run/../run/docker.sock` is refused"),
        "{reason}"
    );
    assert_eq!(
        peek.tasks[0].attempts[0].error_kind,
        Some(weft_core::run::FailureKind::Policy)
    );
    assert!(containers_of(&record.id).trim().is_empty());
}

#[tokio::test]
async fn host_paths_are_mounted_only_where_the_worker_allows() {
    let data = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("hello"), "from the host\n").unwrap();
    let file = data.path().join("w.toml");
    std::fs::write(
        &file,
        format!(
            "[workflow]\nname = \"mounts\"\n[params]\nsrc = \"/etc\"\n\
             [steps.read]\ncontainer = {{ image = \"{IMAGE}\", command = \"cat /x/hello || ls /x\", mounts = [\"{{{{ params.src }}}}:/x:ro\"] }}\n"
        ),
    )
    .unwrap();
    let shared_dir = shared.path().display().to_string();
    // The host's /etc: refused, as anything is by default.
    let out = weft(
        &[
            "run",
            file.to_str().unwrap(),
            "--plain",
            "--allow-mount",
            &shared_dir,
        ],
        data.path(),
    );
    assert!(!out.status.success(), "{}", text(&out));
    let (_, record, state) = newest_embedded_run(data.path()).await;
    let view = weft_api::views::RunView::new(&record, &state);
    let attempt = &step(&view, "read").tasks[0].attempts[0];
    let reason = attempt.error.clone().unwrap_or_default();
    assert!(
        reason
            .contains("mounting host path `/etc` is refused: this worker allows only paths inside"),
        "{reason}"
    );
    assert_eq!(
        attempt.error_kind,
        Some(weft_core::run::FailureKind::Policy)
    );
    assert!(containers_of(&record.id).trim().is_empty());
    // The directory the worker allows: mounted, read.
    let src = format!("src={shared_dir}");
    let out = weft(
        &[
            "run",
            file.to_str().unwrap(),
            "--plain",
            "--logs",
            "--param",
            &src,
            "--allow-mount",
            &shared_dir,
        ],
        data.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("from the host"), "{}", text(&out));
    // And with no --allow-mount, not even that.
    let out = weft(
        &["run", file.to_str().unwrap(), "--plain", "--param", &src],
        data.path(),
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("allows container steps no host paths"),
        "{}",
        text(&out)
    );
}
