//! What distributed mode promises when processes die, proven with real
//! `weft serve` and `weft worker` processes, RabbitMQ and Redis.

use std::time::{Duration, Instant};

use weft_core::ports::EventLog;
use weft_core::run::Event;

use crate::cluster::Cluster;
use crate::support::wait_for_lines;

fn kill9(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// Asserts step `id`'s first attempt shows two executions on two workers:
/// the first killed (no result), the second a success.
fn killed_then_succeeded(view: &weft_api::views::RunView, id: &str) {
    let attempt = &crate::cluster::step(view, id).tasks[0].attempts[0];
    let ran: Vec<(&str, Option<&str>)> = attempt
        .executions
        .iter()
        .map(|e| (e.worker.as_str(), e.error.as_deref()))
        .collect();
    assert_eq!(ran.len(), 2, "both executions are shown: {attempt:?}");
    assert_ne!(ran[0].0, ran[1].0, "on two workers: {ran:?}");
    assert_eq!(ran[0].1, None, "the killed one has no result: {ran:?}");
    assert_eq!(ran[1].1, Some(""), "the second succeeded: {ran:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_mid_step_is_redelivered_and_recorded_once() {
    let mut cluster = Cluster::start(1);
    let pids = crate::support::shared_file(&cluster.shared(), "pids");
    let wf = cluster.dir.path().join("kill-worker.toml");
    std::fs::write(
        &wf,
        format!("[workflow]\nname = 'kill-worker'\n[steps.slow]\nrun = \"echo $PPID >> {}; sleep 2; echo '{{\\\"done\\\": true}}' > \\\"$WEFT_OUTPUTS\\\"\"\n", pids.display()),
    )
    .unwrap();
    let id = cluster.submit(wf.to_str().unwrap(), &[]).await;
    let first: i32 = wait_for_lines(&pids, 1, Duration::from_secs(30))[0]
        .parse()
        .unwrap();
    cluster.start_worker();
    kill9(first);

    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let lines = wait_for_lines(&pids, 2, Duration::from_secs(1));
    assert_eq!(lines.len(), 2, "ran once on each worker: {lines:?}");
    assert_ne!(lines[0], lines[1], "the second run was on another worker");
    let events = cluster.store().await.events(&id).await.unwrap();
    let finished = events
        .iter()
        .filter(|e| matches!(e, Event::TaskFinished { .. }))
        .count();
    assert_eq!(
        finished, 1,
        "the step's result is recorded exactly once: {events:?}"
    );
    // It ran twice, and the run says so: both executions of the attempt.
    killed_then_succeeded(&view, "slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_killed_mid_run_resumes_without_rerunning_succeeded_steps() {
    let mut cluster = Cluster::start(1);
    let trace = crate::support::shared_file(&cluster.shared(), "trace");
    let wf = cluster.dir.path().join("chain.toml");
    let t = trace.display();
    std::fs::write(
        &wf,
        format!(
            "[workflow]\nname = 'chain'\n[steps.a]\nrun = 'echo a >> {t}'\n[steps.b]\nneeds = ['a']\nrun = 'echo b >> {t}; sleep 2'\n[steps.c]\nneeds = ['b']\nrun = 'echo c >> {t}'\n[steps.d]\nneeds = ['c']\nrun = 'echo d >> {t}'\n"
        ),
    )
    .unwrap();
    let id = cluster.submit(wf.to_str().unwrap(), &[]).await;
    wait_for_lines(&trace, 2, Duration::from_secs(30));
    // `a` succeeded and `b` is running: the orchestrator dies.
    cluster.kill_serve();
    cluster.start_serve();

    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    let lines = std::fs::read_to_string(&trace).unwrap();
    assert_eq!(lines, "a\nb\nc\nd\n", "every step ran exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_always_crashes_its_worker_is_dead_lettered_and_fails_the_run() {
    // Limit 1: two executions may begin. On a single node the job queue is
    // classic and counts nothing: the third worker to take the job finds
    // its claim past the limit and dead-letters it unrun (on a cluster's
    // quorum queue the broker would at the second crash).
    // The step kills its worker, so it runs as the worker's user: a step
    // user may not signal the worker (isolation::*).
    let cluster = Cluster::set_up(crate::cluster::Setup {
        workers: 3,
        delivery_limit: 1,
        worker: "concurrency = 2\nrun-as = \"worker\"",
        ..Default::default()
    });
    let wf = cluster.dir.path().join("crash.toml");
    std::fs::write(&wf, "[workflow]\nname = 'crash'\n[steps.crash]\nretries = 3\nrun = 'kill -9 $PPID'\n[steps.after]\nneeds = ['crash']\nrun = 'true'\n").unwrap();
    let id = cluster.submit(wf.to_str().unwrap(), &[]).await;
    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "failed", "{view:?}");
    let summary = view.run.summary.clone().unwrap_or_default();
    assert!(summary.contains("dead-lettered"), "{summary}");
    let crash = &view.steps[0];
    assert_eq!(
        crash.tasks[0].attempts.len(),
        1,
        "a poison job is not retried"
    );
    assert_eq!(view.steps[1].status, "skipped");
    // Each crash killed its worker before it could report anything (the
    // step ends within the 50 ms after which a start is reported): the
    // claim told of both executions, through the dead letter. The worker
    // that refused the job is no execution.
    let attempt = &crash.tasks[0].attempts[0];
    let workers: std::collections::BTreeSet<&str> = attempt
        .executions
        .iter()
        .map(|e| e.worker.as_str())
        .collect();
    assert_eq!(
        (attempt.executions.len(), workers.len()),
        (2, 2),
        "both executions are shown, one on each worker: {attempt:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_let_go_of_unstarted_past_its_delivery_limit_is_queued_again_and_runs_once() {
    use weft_core::ports::JobQueue;
    // No worker yet: the test takes the job and hands it back unstarted,
    // which is what a worker holding it (sent ahead of its slots) does when
    // its connection drops. RabbitMQ counts each such return.
    // Quorum job queues (a cluster's), which count returns.
    let mut cluster = Cluster::set_up(crate::cluster::Setup {
        workers: 0,
        delivery_limit: 1,
        broker: "replicated-jobs = true",
        ..Default::default()
    });
    let ran = cluster.shared().join("ran");
    let id = cluster
        .submit_text(&format!(
            "[workflow]\nname = 'held'\n[steps.once]\nrun = 'echo once >> {}'\n",
            ran.display()
        ))
        .await;
    let taker = weft_queue_amqp::AmqpJobQueue::connect(weft_queue_amqp::Options {
        prefix: cluster.prefix.clone(),
        expire_after_ms: Some(600_000),
        delivery_limit: 1,
        replicated_jobs: Some(true),
        ..Default::default()
    })
    .await
    .unwrap();
    // Limit 1: the second return dead-letters the job. Three rounds of
    // that: each time the server finds no execution in its claim and
    // queues it again, counting.
    let mut requeued = Vec::new();
    for _ in 0..6 {
        let held = tokio::time::timeout(Duration::from_secs(30), taker.take("default"))
            .await
            .expect("the job comes back")
            .unwrap();
        assert_eq!(held.job().run_id, id);
        requeued.push(held.job().requeued);
        held.reject(true).await.unwrap();
    }
    assert_eq!(
        requeued,
        vec![0, 0, 1, 1, 2, 2],
        "queued again by the server each time the queue gave up on it"
    );
    drop(taker);
    cluster.start_worker();
    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "once\n");
    let attempts = &view.steps[0].tasks[0].attempts;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(
        attempts[0].executions.is_empty(),
        "one execution, the attempt's own: the returns were none: {attempts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_its_quick_step_killed_unheard_is_shown_by_the_next_execution() {
    // The step kills its worker, so it runs as the worker's user.
    let cluster = Cluster::set_up(crate::cluster::Setup {
        workers: 2,
        worker: "concurrency = 1\nrun-as = \"worker\"",
        ..Default::default()
    });
    let marker = cluster.shared().join("killed-one");
    let wf = cluster.dir.path().join("quick-crash.toml");
    // The first execution kills its worker at once, before the 50 ms after
    // which a start is reported: nothing but the claim knows it ran.
    std::fs::write(
        &wf,
        format!(
            "[workflow]\nname = 'quick-crash'\n[steps.once]\nrun = '[ -e {m} ] || {{ touch {m}; kill -9 $PPID; }}'\n",
            m = marker.display()
        ),
    )
    .unwrap();
    let id = cluster.submit(wf.to_str().unwrap(), &[]).await;
    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");
    assert!(marker.exists(), "the first execution ran");
    killed_then_succeeded(&view, "once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_run_completes_without_help() {
    let mut rabbit = crate::rabbit::PrivateRabbit::start();
    let cluster = Cluster::start_with(2, &rabbit.url(), 3);
    let wf = cluster.dir.path().join("many.toml");
    let items: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    std::fs::write(&wf, format!("[workflow]\nname = 'many'\n[steps.each]\nfor-each = [{}]\nrun = 'sleep 0.02'\n[steps.join]\nneeds = ['each']\n", items.join(","))).unwrap();
    let id = cluster.submit(wf.to_str().unwrap(), &[]).await;
    // Wait for the run to be under way, then take the broker away.
    let start = Instant::now();
    loop {
        let view = cluster.client().run(&id).await.unwrap();
        let done = view.steps[0]
            .tasks
            .iter()
            .filter(|t| t.status == "succeeded")
            .count();
        if done >= 30 {
            assert!(done < 300, "the run finished before the broker restart");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run never got going"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rabbit.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    rabbit.start_again();

    let view = cluster.wait(&id, Duration::from_secs(180)).await;
    assert_eq!(view.run.status, "succeeded", "{:?}", view.run);
    assert_eq!(view.steps[0].tasks.len(), 300);
    assert!(view.steps[0].tasks.iter().all(|t| t.status == "succeeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_report_their_slots_and_leave_when_drained() {
    let mut cluster = Cluster::start(2);
    let start = Instant::now();
    let listed = loop {
        let w = cluster.client().workers().await.unwrap();
        if w.len() == 2 {
            break w;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "workers never showed up: {w:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(listed.iter().all(|w| w.slots.cpus >= 1
        && w.slots.concurrency == 2
        && w.pools == vec!["default".to_string()]));
    let status = listed[0].status_url.clone().expect("a status url");
    let metrics = reqwest::get(format!("{status}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("weft_worker_slots 2"), "{metrics}");
    // SIGTERM drains and leaves the registry at once.
    let pid = cluster.workers[0].id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = cluster.workers[0].wait().unwrap();
    assert!(
        status.success(),
        "a drained worker exits cleanly: {status:?}"
    );
    let left = cluster.client().workers().await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_kills_its_step_on_the_worker() {
    let cluster = Cluster::start(1);
    let pid_file = cluster.shared().join("pid");
    let wf = cluster.dir.path().join("long.toml");
    std::fs::write(&wf, format!("[workflow]\nname = 'long'\n[steps.sleep]\nrun = 'echo $$ > {}; exec sleep 120'\n[steps.after]\nneeds = ['sleep']\nrun = 'true'\n", pid_file.display())).unwrap();
    let id = cluster.submit(wf.to_str().unwrap(), &[]).await;
    let pid: i32 = wait_for_lines(&pid_file, 1, Duration::from_secs(30))[0]
        .parse()
        .unwrap();
    // Through the CLI, by a prefix of the run's id, as an operator would.
    let weft_cancel = || {
        std::process::Command::new(crate::support::weft_bin())
            .args(["--server", &cluster.url, "--token", &cluster.admin_token])
            .args(["cancel", &id[..12], "--wait"])
            .output()
            .unwrap()
    };
    let out = weft_cancel();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("run {id} cancelled")), "{text}");
    let view = cluster.wait(&id, Duration::from_secs(30)).await;
    assert_eq!(view.run.status, "cancelled");
    assert_eq!(view.steps[1].status, "cancelled");
    let again = weft_cancel();
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already finished (cancelled)"),
        "{again:?}"
    );
    let start = Instant::now();
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the step still runs after the cancel"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_longer_than_the_consumer_timeout_never_runs_twice_at_once() {
    // The broker gives up on an unacked delivery after 5 s (checked about
    // once a minute) and hands the job to the other worker while it runs.
    let rabbit = crate::rabbit::PrivateRabbit::start_with("consumer_timeout = 5000");
    let cluster = Cluster::start_with(2, &rabbit.url(), 5);
    let trace = crate::support::shared_file(&cluster.shared(), "trace");
    let wf = cluster.dir.path().join("long.toml");
    let t = trace.display();
    std::fs::write(&wf, format!("[workflow]\nname = 'long'\n[steps.long]\nrun = 'echo start >> {t}; sleep 75; echo end >> {t}'\n")).unwrap();
    let id = cluster.submit(wf.to_str().unwrap(), &[]).await;
    let view = cluster.wait(&id, Duration::from_secs(240)).await;
    assert_eq!(view.run.status, "succeeded", "{:?}", view.run);
    // Let any redelivered copy settle, then check nothing ran beside it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        std::fs::read_to_string(&trace).unwrap(),
        "start\nend\n",
        "the step ran once, never twice at the same time"
    );
    // And the broker did hand the running job out again: a worker deferred it.
    let mut deferred = 0;
    for w in cluster.client().workers().await.unwrap() {
        let metrics = reqwest::get(format!("{}/metrics", w.status_url.unwrap()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        deferred += metrics
            .lines()
            .find_map(|l| l.strip_prefix("weft_worker_deferred_total "))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    assert!(
        deferred >= 1,
        "the consumer timeout never redelivered the job; the test proved nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_prints_a_step_log_live_until_it_finishes() {
    let cluster = Cluster::start(1);
    let wf = cluster.dir.path().join("talk.toml");
    std::fs::write(&wf, "[workflow]\nname = 'talk'\n[steps.talk]\nrun = 'for i in 1 2 3 4; do echo line $i; sleep 0.4; done'\n").unwrap();
    let id = cluster.submit(wf.to_str().unwrap(), &[]).await;
    let started = Instant::now();
    let follow = std::process::Command::new(crate::support::weft_bin())
        .args([
            "logs",
            "--server",
            &cluster.url,
            "--token",
            &cluster.admin_token,
            &id,
            "talk",
            "-f",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&follow.stdout);
    assert!(
        follow.status.success(),
        "{}",
        String::from_utf8_lossy(&follow.stderr)
    );
    assert_eq!(text, "line 1\nline 2\nline 3\nline 4\n");
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "it followed the step to its end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_step_finish_before_the_worker_exits() {
    let mut cluster = Cluster::start(1);
    let marker = cluster.shared().join("started");
    let wf = cluster.dir.path().join("drain.toml");
    std::fs::write(&wf, format!("[workflow]\nname = 'drain'\n[steps.slow]\nrun = \"touch {}; sleep 1.5; echo '{{\\\"finished\\\": true}}' > \\\"$WEFT_OUTPUTS\\\"\"\n", marker.display())).unwrap();
    let id = cluster.submit(wf.to_str().unwrap(), &[]).await;
    let start = Instant::now();
    while !marker.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the step never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = cluster.workers[0].id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = cluster.workers[0].wait().unwrap();
    assert!(status.success(), "{status:?}");
    let view = cluster.wait(&id, Duration::from_secs(30)).await;
    assert_eq!(
        view.run.status, "succeeded",
        "the draining worker finished the step: {:?}",
        view.run
    );
    assert_eq!(
        view.steps[0].outputs,
        Some(serde_json::json!({"finished": true}))
    );
    assert_eq!(view.steps[0].tasks[0].attempts.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_reruns_what_failed_and_reuses_what_succeeded() {
    let cluster = Cluster::start(1);
    let (trace, flag) = (
        crate::support::shared_file(&cluster.shared(), "trace"),
        cluster.shared().join("fixed"),
    );
    let wf = cluster.dir.path().join("retry.toml");
    let (t, f) = (trace.display(), flag.display());
    std::fs::write(
        &wf,
        format!("[workflow]\nname = 'retry'\n[steps.a]\nrun = \"echo a >> {t}; echo '{{\\\"n\\\": 7}}' > \\\"$WEFT_OUTPUTS\\\"\"\n[steps.b]\nneeds = ['a']\nrun = 'echo b >> {t}; test -f {f} && echo got {{{{ steps.a.outputs.n }}}}'\n[steps.c]\nneeds = ['b']\nrun = 'echo c >> {t}'\n"),
    )
    .unwrap();
    let first = cluster.submit(wf.to_str().unwrap(), &[]).await;
    assert_eq!(
        cluster
            .wait(&first, Duration::from_secs(60))
            .await
            .run
            .status,
        "failed"
    );
    std::fs::write(&flag, "").unwrap();

    let out = std::process::Command::new(crate::support::weft_bin())
        .args([
            "--server",
            &cluster.url,
            "--token",
            &cluster.admin_token,
            "retry",
            &first,
            "--wait",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("reused from run {first}")), "{text}");
    assert_eq!(
        std::fs::read_to_string(&trace).unwrap(),
        "a\nb\nb\nc\n",
        "a ran once; b and c after the fix"
    );
    let second = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("retrying {first} as run ")))
        .unwrap()
        .trim()
        .to_string();
    let log = cluster.client().logs(&second, "b", None).await.unwrap();
    assert!(
        String::from_utf8_lossy(&log).contains("got 7"),
        "b saw a's reused outputs"
    );

    // From a chosen step, that step runs again too.
    let third = cluster.client().retry(&second, Some("a")).await.unwrap().id;
    assert_eq!(
        cluster
            .wait(&third, Duration::from_secs(60))
            .await
            .run
            .status,
        "succeeded"
    );
    assert_eq!(
        std::fs::read_to_string(&trace).unwrap(),
        "a\nb\nb\nc\na\nb\nc\n"
    );
    let (status, _) = (cluster.client().retry(&third, Some("nope")).await, ());
    assert!(
        matches!(status, Err(weft_api::Error::Api { status: 422, .. })),
        "{status:?}"
    );
}
