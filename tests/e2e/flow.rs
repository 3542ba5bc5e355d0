//! Flow control with real processes: `max-parallel` bounds a for-each
//! step's instances at once, proven by the times they ran; a run's
//! `timeout` fails it and stops its step; an `on-exit` step runs after a
//! cancel (its failure case is the `on-exit` example).

use std::time::{Duration, Instant};

use crate::cluster::{step, Cluster};
use crate::support::{shared_file, text, weft};

#[test]
fn max_parallel_never_lets_more_instances_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    std::fs::write(&marks, "").unwrap();
    let file = dir.path().join("limited.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[workflow]
name = "limited"
[steps.each]
for-each = [0, 1, 2, 3, 4, 5, 6, 7]
max-parallel = 3
run = 'echo "+ $(date +%s%N)" >> {m}; sleep 0.3; echo "- $(date +%s%N)" >> {m}'
"#,
            m = marks.display()
        ),
    )
    .unwrap();
    let out = weft(
        &[
            "run",
            "--plain",
            "--concurrency",
            "8",
            file.to_str().unwrap(),
        ],
        &dir.path().join("data"),
    );
    assert!(out.status.success(), "{}", text(&out));
    let mut events: Vec<(u128, i32)> = std::fs::read_to_string(&marks)
        .unwrap()
        .lines()
        .map(|l| {
            let (sign, at) = l.split_once(' ').unwrap();
            (at.parse().unwrap(), if sign == "+" { 1 } else { -1 })
        })
        .collect();
    assert_eq!(events.len(), 16);
    // Ends before starts at the same instant: a slot is free before it is taken.
    events.sort();
    let (mut running, mut most) = (0, 0);
    for (_, change) in events {
        running += change;
        most = most.max(running);
    }
    assert_eq!(most, 3, "at most 3 at once, and the limit was used");
}

#[test]
fn a_run_past_its_timeout_fails_and_its_step_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("finished");
    let file = dir.path().join("slow.toml");
    std::fs::write(
        &file,
        format!(
            "[workflow]\nname = \"slow\"\ntimeout = \"2s\"\n[steps.wait]\nrun = 'sleep 20; touch {}'\n[steps.after]\nneeds = [\"wait\"]\nrun = 'true'\n",
            marker.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let out = weft(
        &["run", "--plain", file.to_str().unwrap()],
        &dir.path().join("data"),
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("the run timed out after 2"), "{said}");
    assert!(started.elapsed() < Duration::from_secs(15), "{said}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(!marker.exists(), "the step was stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_stops_its_steps_then_runs_its_on_exit_step() {
    let cluster = Cluster::start(1);
    let marks = shared_file(&cluster.shared(), "marks");
    let file = cluster.dir.path().join("exit.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[workflow]
name = "exit-on-cancel"
on-exit = "tidy"
[steps.long]
run = 'echo long-started >> {m}; sleep 60; echo long-finished >> {m}'
[steps.after]
needs = ["long"]
run = 'echo after >> {m}'
[steps.tidy]
run = 'echo "tidy {{{{ run.status }}}}" >> {m}'
"#,
            m = marks.display()
        ),
    )
    .unwrap();
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    let started = Instant::now();
    while !std::fs::read_to_string(&marks)
        .unwrap()
        .contains("long-started")
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "long never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.client().cancel(&id).await.unwrap();
    let view = cluster.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(view.run.status, "cancelled", "{view:?}");
    assert_eq!(step(&view, "long").status, "cancelled");
    assert_eq!(step(&view, "after").status, "cancelled");
    assert_eq!(step(&view, "tidy").status, "succeeded", "{view:?}");
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "long was not stopped"
    );
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap(),
        "long-started\ntidy cancelled\n",
        "tidy ran once, after long was stopped, told the run was cancelled"
    );
}
