//! Flow control with real processes: `max-parallel` bounds a for-each
//! step's instances at once, proven by the times they ran; a run's
//! `timeout` fails it and stops its step.

use crate::support::{text, weft};

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
    let started = std::time::Instant::now();
    let out = weft(
        &["run", "--plain", file.to_str().unwrap()],
        &dir.path().join("data"),
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("the run timed out after 2"), "{said}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{said}"
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(!marker.exists(), "the step was stopped");
}
