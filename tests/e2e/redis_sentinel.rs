//! weft on a Redis primary watched by Sentinels: the primary is killed
//! with SIGKILL mid-run, the Sentinels promote its replica, and the server
//! and the workers, told where it is, go on: the run ends with every
//! step's effect once.

use std::time::Duration;

use weft_testkit::redis_sentinel::{RedisSentinel, MASTER};

use crate::cluster::{step, Cluster, Setup};
use crate::support::{counted, lost_and_twice, wait_for_lines};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_mid_run_is_replaced_by_sentinel_and_every_effect_happens_once() {
    let set = RedisSentinel::start_private(17411);
    let urls = set.urls();
    let lines = format!(
        "sentinel-master = \"{MASTER}\"\nurls = [\"{}\", \"{}\"]",
        urls[1], urls[2]
    );
    let cluster = Cluster::set_up(Setup {
        workers: 2,
        redis_url: &urls[0],
        redis: &lines,
        ..Setup::default()
    });
    let effects = crate::support::shared_file(&cluster.shared(), "effects");
    let items: Vec<String> = (0..120).map(|i| i.to_string()).collect();
    let file = cluster.dir.path().join("sentinel.toml");
    std::fs::write(
        &file,
        format!(
            "[workflow]\nname = \"sentinel\"\n[steps.fan]\nfor-each = [{}]\n\
             run = \"echo {{{{ run.id }}}}-{{{{ item }}}} >> {}; sleep 0.1\"\n\
             [steps.join]\nneeds = [\"fan\"]\nrun = \"echo joined\"\n",
            items.join(","),
            effects.display()
        ),
    )
    .unwrap();
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    wait_for_lines(&effects, 30, Duration::from_secs(60));
    let primary = set.primary().expect("the Sentinels name a primary");
    set.kill9(primary);
    let at_kill = counted(&effects).len();
    assert!(at_kill < 120, "the run ended before the primary was killed");
    eprintln!("primary {primary} killed after {at_kill} effects");

    let view = cluster.wait(&id, Duration::from_secs(240)).await;
    let now = set.primary();
    assert!(now.is_some_and(|p| p != primary), "no failover: {now:?}");
    let (lost, twice) = lost_and_twice(&effects, (0..120).map(|i| format!("{id}-{i}")));
    eprintln!(
        "report: 120 effects expected, {} lost, {} twice, run {}",
        lost.len(),
        twice.len(),
        view.run.status
    );
    assert!(lost.is_empty(), "effects lost: {lost:?}");
    assert!(twice.is_empty(), "effects twice: {twice:?}");
    assert_eq!(view.run.status, "succeeded", "{:?}", view.run);
    assert!(step(&view, "fan")
        .tasks
        .iter()
        .all(|t| t.status == "succeeded"));
}
