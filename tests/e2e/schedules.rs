//! Schedules with real servers: a fire starts one run however many
//! `weft serve` see it, one of them killed mid-way; a restarted server
//! starts what it missed (catch-up); `weft backfill` starts each past fire
//! once, done twice.

use std::collections::BTreeSet;
use std::time::Duration;

use weft_api::Client;
use weft_core::schedule::{fire_run_id, format_time};

use crate::cluster::{Cluster, Setup};
use crate::support::{text, weft_bin};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn every_second(name: &str) -> String {
    format!(
        "[workflow]\nname = \"{name}\"\n[params]\nwho = \"a person\"\n[steps.tick]\nrun = 'echo {{{{ params.who }}}}'\n\
         [[triggers.schedule]]\ncron = \"* * * * * *\"\nparams = {{ who = \"the schedule\" }}\noverlap = \"allow\"\n"
    )
}

/// The ids of the scheduled runs `client` lists.
async fn scheduled(client: &Client, name: &str) -> BTreeSet<String> {
    client
        .runs(1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.submitted_by.as_deref() == Some(&format!("schedule:{name}#0")))
        .map(|r| r.id)
        .collect()
}

/// Asserts that every whole second in `(after, until]` had its run, and
/// that no scheduled run is of another time.
fn every_fire_once(runs: &BTreeSet<String>, name: &str, after: u64, until: u64) {
    let first = after / 1000 * 1000 + 1000;
    let mut expected = BTreeSet::new();
    for fire in (first..=until).step_by(1000) {
        let id = fire_run_id(name, 0, fire);
        assert!(
            runs.contains(&id),
            "no run for the fire at {} ({id}); runs: {runs:?}",
            format_time(fire)
        );
        expected.insert(id);
    }
    assert!(expected.len() >= 10, "{} fires only", expected.len());
    for id in runs {
        let fire = ulid::Ulid::from_string(&id.to_uppercase())
            .unwrap()
            .timestamp_ms();
        assert!(
            fire > after && fire % 1000 == 0,
            "run {id} is not of a fire time after the save ({fire})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fires_once_a_second_across_two_servers_with_one_killed() {
    let mut cluster = Cluster::set_up(Setup {
        workers: 1,
        worker: "concurrency = 8",
        ..Setup::default()
    });
    let second = cluster.start_another_serve();
    let name = "every-second";
    let saved = cluster
        .client()
        .save_workflow(&every_second(name), None)
        .await
        .unwrap();
    assert_eq!(saved.version, 1);
    // The server's time of the save (a fire just before it is not the
    // schedule's), not the test's from before it sent it.
    let saved_at = saved.saved_at;
    tokio::time::sleep(Duration::from_secs(8)).await;
    cluster.kill_serve();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let client = Client::new(&second).with_token(Some(cluster.admin_token.clone()));
    let until = now_ms() - 2_000;
    let runs = scheduled(&client, name).await;
    every_fire_once(&runs, name, saved_at, until);
    // Each run ends, those the killed server drove taken over by the other.
    for id in &runs {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let view = client.run(id).await.unwrap();
            if view.is_finished() {
                assert_eq!(view.run.status, "succeeded", "{view:?}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{id} never ended");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The schedule's params reached the step.
    let some = runs.iter().next().unwrap();
    let log = client.logs(some, "tick", None).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&log), "the schedule\n");
    // The API lists the schedule with its next fire times, a second apart.
    let schedules = client.schedules().await.unwrap();
    let listed = schedules.iter().find(|s| s.workflow == name).unwrap();
    assert_eq!(listed.cron, "* * * * * *");
    assert_eq!(listed.next.len(), 5);
    assert_eq!(listed.next[1] - listed.next[0], 1000);
}

fn backfill(cluster: &Cluster, args: &[&str]) -> std::process::Output {
    std::process::Command::new(weft_bin())
        .args([
            "--server",
            &cluster.url,
            "--token",
            &cluster.admin_token,
            "backfill",
        ])
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_starts_what_it_missed_and_a_backfill_starts_each_fire_once() {
    let mut cluster = Cluster::set_up(Setup {
        workers: 1,
        worker: "concurrency = 8",
        ..Setup::default()
    });
    let name = "catch-up";
    let saved_at = cluster
        .client()
        .save_workflow(&every_second(name), None)
        .await
        .unwrap()
        .saved_at;
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.kill_serve();
    let down = now_ms();
    tokio::time::sleep(Duration::from_secs(6)).await;
    cluster.start_serve();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let until = now_ms() - 2_000;
    let runs = scheduled(&cluster.client(), name).await;
    every_fire_once(&runs, name, saved_at, until);
    let missed = (down / 1000 + 1..(down + 5_000) / 1000)
        .filter(|s| runs.contains(&fire_run_id(name, 0, s * 1000)))
        .count();
    assert!(missed >= 4, "the fires of the downtime were started");

    // Backfill: the fires before the save, each once, done twice.
    let (from, to) = (
        format_time(saved_at - 20_000),
        format_time(saved_at - 16_000),
    );
    let out = backfill(&cluster, &[name, "--from", &from, "--to", &to]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("5 run(s) started, 0 fire time(s) already had one"),
        "{}",
        text(&out)
    );
    let again = backfill(&cluster, &[name, "--from", &from, "--to", &to]);
    assert!(
        text(&again).contains("0 run(s) started, 5 fire time(s) already had one"),
        "{}",
        text(&again)
    );
    // The times are given to the second: the fires from its start.
    let first = (saved_at - 20_000) / 1000 * 1000;
    for fire in (first..first + 5_000).step_by(1000) {
        let id = fire_run_id(name, 0, fire);
        let view = cluster.wait(&id, Duration::from_secs(60)).await;
        assert_eq!(view.run.status, "succeeded");
    }
    // Mistakes are named, and start nothing.
    let backwards = backfill(&cluster, &[name, "--from", &to, "--to", &from]);
    assert!(!backwards.status.success());
    assert!(
        text(&backwards).contains("is before `from`"),
        "{}",
        text(&backwards)
    );
    let garbled = backfill(&cluster, &[name, "--from", "last tuesday", "--to", &to]);
    assert!(
        text(&garbled).contains("`last tuesday` is not a time"),
        "{}",
        text(&garbled)
    );
    let no_schedule = backfill(
        &cluster,
        &[name, "--from", &from, "--to", &to, "--schedule", "3"],
    );
    assert!(
        text(&no_schedule).contains("there is no schedule 3"),
        "{}",
        text(&no_schedule)
    );
}

/// Start and end times (ms) of the runs that appended `+ <run> <ns>` and
/// `- <run> <ns>` lines to `marks`, and how late each began after its fire.
fn spans(marks: &std::path::Path) -> Vec<(u64, u64, u64)> {
    let text = std::fs::read_to_string(marks).unwrap_or_default();
    let mut open = std::collections::BTreeMap::new();
    let mut spans = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let (sign, run, at) = (
            parts[0],
            parts[1],
            parts[2].parse::<u64>().unwrap() / 1_000_000,
        );
        if sign == "+" {
            open.insert(run.to_string(), at);
        } else if let Some(start) = open.remove(run) {
            let fire = ulid::Ulid::from_string(&run.to_uppercase())
                .unwrap()
                .timestamp_ms();
            spans.push((start, at, start.saturating_sub(fire)));
        }
    }
    spans.sort();
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_skip_and_queue_never_let_a_schedule_s_runs_overlap() {
    let cluster = Cluster::set_up(Setup {
        workers: 1,
        worker: "concurrency = 8",
        ..Setup::default()
    });
    let mut marks = Vec::new();
    for policy in ["skip", "queue"] {
        let file = crate::support::shared_file(&cluster.shared(), policy);
        let source = format!(
            "[workflow]\nname = \"slow-{policy}\"\n[steps.work]\n\
             run = 'echo \"+ {{{{ run.id }}}} $(date +%s%N)\" >> {m}; sleep 2.2; echo \"- {{{{ run.id }}}} $(date +%s%N)\" >> {m}'\n\
             [[triggers.schedule]]\ncron = \"* * * * * *\"\noverlap = \"{policy}\"\n",
            m = file.display()
        );
        cluster.client().save_workflow(&source, None).await.unwrap();
        marks.push(file);
    }
    tokio::time::sleep(Duration::from_secs(14)).await;
    for (policy, file) in ["skip", "queue"].iter().zip(&marks) {
        let spans = spans(file);
        assert!(spans.len() >= 3, "{policy}: {spans:?}");
        for pair in spans.windows(2) {
            assert!(
                pair[1].0 >= pair[0].1,
                "{policy}: a run began at {} before the one before it ended at {}",
                pair[1].0,
                pair[0].1
            );
        }
    }
    // Skipped fires start no run, so a run begins as it fires; queued
    // ones wait, so the queue's runs follow one another with no gap but
    // the time to start one, each later after its fire than the last.
    let skipped_spans = spans(&marks[0]);
    // (The first may wait for the scheduler to read the new version.)
    assert!(
        skipped_spans.iter().skip(1).all(|s| s.2 < 2_000),
        "skip: a run began long after its fire: {skipped_spans:?}"
    );
    let queued = spans(&marks[1]);
    for pair in queued.windows(2) {
        assert!(
            pair[1].0 - pair[0].1 < 1_500,
            "queue: a fire waited, then started late: {queued:?}"
        );
    }
    assert!(
        queued.last().unwrap().2 > 3_000,
        "queue: fires wait their turn, so later ones start long after they fire: {queued:?}"
    );
    let skipped = scheduled(&cluster.client(), "slow-skip").await;
    assert!(
        skipped.len() <= 6,
        "skip started {} runs in 14 s of 2.2 s runs",
        skipped.len()
    );
}
