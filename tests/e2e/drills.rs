//! Drills: real `weft serve` and `weft worker` processes while what they
//! stand on fails for real (Redis stopped and started again, a step that
//! floods its output), checking the promises: every step's effect exactly
//! once, the run showing what ran, nothing recorded lost, memory bounded.

use std::time::{Duration, Instant};

use crate::cluster::{step, Cluster, Setup};
use crate::private_redis::PrivateRedis;
use crate::support::counted;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_twice_for_20s_mid_run_every_effect_once_and_no_log_lost() {
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let cluster = Cluster::set_up(Setup {
        workers: 2,
        redis_url: &url,
        ..Setup::default()
    });
    // Appended to by every step, each perhaps a user of its own.
    let effects = crate::support::shared_file(&cluster.shared(), "effects");
    let items: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let file = cluster.dir.path().join("outage.toml");
    std::fs::write(
        &file,
        format!(
            "[workflow]\nname = \"outage\"\n[steps.fan]\nfor-each = [{}]\n\
             run = \"for i in 1 2 3; do echo {{{{ item }}}}-line-$i; sleep 0.1; done; echo {{{{ run.id }}}}-{{{{ item }}}} >> {}; sleep 0.7\"\n",
            items.join(","),
            effects.display()
        ),
    )
    .unwrap();
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    for round in 0..2 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        redis.stop();
        eprintln!(
            "round {round}: Redis stopped with {} effects",
            counted(&effects).len()
        );
        tokio::time::sleep(Duration::from_secs(20)).await;
        redis.start_again();
    }
    let view = cluster.wait(&id, Duration::from_secs(300)).await;
    assert_eq!(view.run.status, "succeeded", "{view:?}");

    let seen = counted(&effects);
    assert_eq!(seen.len(), 100, "every step's effect: {seen:?}");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "effects written more than once: {twice:?}"
    );
    let fan = step(&view, "fan");
    for task in &fan.tasks {
        assert_eq!(task.status, "succeeded", "{task:?}");
        assert_eq!(
            task.attempts.len(),
            1,
            "one attempt, as one effect: {task:?}"
        );
        assert!(
            task.attempts[0].executions.is_empty(),
            "one execution, as one effect: {task:?}"
        );
    }
    // Every step's log whole: each of its lines once, in order.
    for (i, task) in fan.tasks.iter().enumerate() {
        let log = cluster.client().logs(&id, &task.id, None).await.unwrap();
        let log = String::from_utf8_lossy(&log);
        let want: String = (1..=3).map(|n| format!("{i}-line-{n}\n")).collect();
        assert_eq!(log, want, "the log of {}", task.id);
    }
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_printing_200_mb_keeps_the_worker_small_and_its_log_reads_back() {
    let cluster = Cluster::set_up(Setup {
        workers: 1,
        ..Setup::default()
    });
    let worker = cluster.workers[0].id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss(worker);
    let file = cluster.dir.path().join("flood.toml");
    std::fs::write(
        &file,
        "[workflow]\nname = \"flood\"\n[steps.flood]\nrun = \"yes 'a line of output, over and over, until 200 MB' | head -c 200000000; echo done > /dev/null\"\n",
    )
    .unwrap();
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    let started = Instant::now();
    let mut peak = idle;
    loop {
        peak = peak.max(rss(worker));
        if let Ok(view) = cluster.client().run(&id).await {
            if view.is_finished() {
                assert_eq!(view.run.status, "succeeded", "{view:?}");
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the flood never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "worker: {} MiB idle, {} MiB at the peak of a 200 MB output ({:?})",
        idle >> 20,
        peak >> 20,
        started.elapsed()
    );
    assert!(
        peak < idle + (64 << 20),
        "the worker grew from {} MiB to {} MiB",
        idle >> 20,
        peak >> 20
    );
    // `weft logs` reads back all that was kept (the 64 MiB cap), page by page.
    let out = std::process::Command::new(crate::support::weft_bin())
        .args(["--server", &cluster.url, "--token", &cluster.admin_token])
        .args(["logs", &id, "flood"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cap = 64 << 20;
    assert!(out
        .stdout
        .starts_with(b"a line of output, over and over, until 200 MB\n"));
    assert!(
        out.stdout
            .ends_with(format!("\n[weft: log truncated at {cap} bytes]\n").as_bytes()),
        "{}",
        String::from_utf8_lossy(&out.stdout[out.stdout.len() - 200..])
    );
    assert_eq!(
        out.stdout.len(),
        cap + format!("\n[weft: log truncated at {cap} bytes]\n").len()
    );
}

/// Processes killed when dropped.
struct Hogs(Vec<std::process::Child>);

impl Drop for Hogs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_server_on_a_stalling_redis_keeps_its_runs_and_takes_every_submit() {
    let redis = PrivateRedis::start();
    let url = redis.url();
    let cluster = Cluster::set_up(Setup {
        workers: 1,
        redis_url: &url,
        // Shorter than the stalls below: commands time out and are retried.
        redis: "response-timeout-ms = 800",
        ..Setup::default()
    });
    // Two busy loops on the server's one CPU.
    let serve = cluster.serve.as_ref().unwrap().id();
    let pinned = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &serve.to_string()])
        .output()
        .unwrap();
    assert!(pinned.status.success(), "{pinned:?}");
    let _hogs = Hogs(
        (0..2)
            .map(|_| {
                std::process::Command::new("taskset")
                    .args(["-c", "0", "sh", "-c", "while :; do :; done"])
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    // Redis stalls for 1.5 s every 3 s.
    let stalls = {
        let port = redis.port;
        std::thread::spawn(move || {
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(1500));
                let _ = std::process::Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "DEBUG", "SLEEP", "1.5"])
                    .output();
            }
        })
    };
    let file = cluster.dir.path().join("chain.toml");
    std::fs::write(
        &file,
        "[workflow]\nname = \"chain\"\n[steps.a]\nrun = \"true\"\n[steps.b]\nneeds = [\"a\"]\nrun = \"true\"\n[steps.c]\nneeds = [\"b\"]\nrun = \"true\"\n",
    )
    .unwrap();
    let mut ids = Vec::new();
    for _ in 0..8 {
        // Each submit must succeed as it is: no retry here.
        ids.push(cluster.submit(file.to_str().unwrap(), &[]).await);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    for id in &ids {
        let view = cluster.wait(id, Duration::from_secs(180)).await;
        assert_eq!(view.run.status, "succeeded", "{view:?}");
    }
    stalls.join().unwrap();
    // Nothing was taken over or cancelled by anyone.
    let store = cluster.store().await;
    for id in &ids {
        let events = weft_core::ports::EventLog::events(&store, id)
            .await
            .unwrap();
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, weft_core::run::Event::CancelRequested { .. })),
            "{events:?}"
        );
    }
}

/// `weft_jobs_published_total` of the server at `url`.
async fn jobs_published(url: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("weft_jobs_published_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no jobs counter in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_with_a_5s_lease_publish_each_of_20000_steps_once_and_never_cancel() {
    const STEPS: usize = 20_000;
    let mut cluster = Cluster::set_up(Setup {
        workers: 2,
        orchestrator: "lease-ttl-ms = 5000\nmax-steps-per-run = 20000",
        worker: "concurrency = 8",
        ..Setup::default()
    });
    let second = cluster.start_another_serve();
    let mut source = String::from("[workflow]\nname = \"wide\"\n");
    for i in 0..STEPS {
        source.push_str(&format!("[steps.s{i}]\nrun = \"true\"\n"));
    }
    let file = cluster.dir.path().join("wide.toml");
    std::fs::write(&file, source).unwrap();
    let started = Instant::now();
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    let status = loop {
        let runs = cluster.client().runs(20).await.unwrap();
        if let Some(run) = runs.iter().find(|r| r.id == id) {
            if !matches!(run.status.as_str(), "running" | "pending") {
                break run.status.clone();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the run did not end"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let took = started.elapsed();
    assert_eq!(status, "succeeded");

    let published = jobs_published(&cluster.url).await + jobs_published(&second).await;
    let store = cluster.store().await;
    let events = weft_core::ports::EventLog::events(&store, &id)
        .await
        .unwrap();
    let cancels: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, weft_core::run::Event::CancelRequested { .. }))
        .collect();
    assert!(cancels.is_empty(), "nobody cancelled the run: {cancels:?}");
    // Every job beyond one per step is a new attempt the run asked for.
    let started_attempts = events
        .iter()
        .filter_map(|e| match e {
            weft_core::run::Event::TaskStarted { task, attempt, .. } => Some((task, *attempt)),
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>();
    let retries = started_attempts.iter().filter(|(_, a)| *a > 1).count();
    eprintln!(
        "two servers, 5 s lease, {STEPS} steps: {published} jobs published \
         ({retries} retried attempts) in {took:?}"
    );
    assert!(
        published as usize <= STEPS + retries,
        "{published} jobs published for {STEPS} steps and {retries} retries"
    );
}
