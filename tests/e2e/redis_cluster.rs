//! weft on a Redis Cluster (three primaries, a replica each): runs go
//! through it as through one Redis, and a primary killed mid-run is
//! replaced by its replica without a step's effect happening twice.

use std::time::Duration;

use weft_testkit::redis_cluster::RedisCluster;

use crate::cluster::{step, Cluster, Setup};
use crate::support::{counted, lost_and_twice, wait_for_lines};

fn cluster_lines(redis: &RedisCluster) -> String {
    let urls = redis.urls();
    let others: Vec<String> = urls[1..].iter().map(|u| format!("\"{u}\"")).collect();
    format!("cluster = true\nurls = [{}]", others.join(", "))
}

fn fan_out(cluster: &Cluster, name: &str, items: usize, run: &str) -> std::path::PathBuf {
    let file = cluster.dir.path().join(format!("{name}.toml"));
    let items: Vec<String> = (0..items).map(|i| i.to_string()).collect();
    std::fs::write(
        &file,
        format!(
            "[workflow]\nname = \"{name}\"\n[steps.fan]\nfor-each = [{}]\nrun = \"{run}\"\n\
             [steps.join]\nneeds = [\"fan\"]\nrun = \"echo joined\"\n",
            items.join(",")
        ),
    )
    .unwrap();
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_a_redis_cluster_are_seen_from_every_server() {
    let redis = RedisCluster::shared();
    let urls = redis.urls();
    let lines = cluster_lines(&redis);
    let mut cluster = Cluster::set_up(Setup {
        workers: 2,
        redis_url: &urls[0],
        redis: &lines,
        ..Setup::default()
    });
    // Two servers, each driving the runs submitted to it.
    let other = cluster.start_another_serve();
    let elsewhere = weft_api::Client::new(&other).with_token(Some(cluster.admin_token.clone()));
    let file = fan_out(&cluster, "on-a-cluster", 40, "echo {{ item }}");
    let request = weft_api::views::SubmitRequest {
        workflow: std::fs::read_to_string(&file).unwrap(),
        ..Default::default()
    };
    let ids = [
        cluster.submit(file.to_str().unwrap(), &[]).await,
        elsewhere.submit(&request).await.unwrap().id,
        cluster.submit(file.to_str().unwrap(), &[]).await,
    ];
    for id in &ids {
        let view = cluster.wait(id, Duration::from_secs(120)).await;
        assert_eq!(view.run.status, "succeeded", "{:?}", view.run);
        assert_eq!(step(&view, "fan").tasks.len(), 40);
        let log = cluster
            .client()
            .logs(id, &step(&view, "fan").tasks[7].id, None)
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&log), "7\n");
        // The other server shows each whole from the cluster.
        let there = elsewhere.run(id).await.unwrap();
        assert_eq!(there.run.status, "succeeded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_primary_killed_mid_run_fails_over_and_every_effect_happens_once() {
    let redis = RedisCluster::start_private(17201);
    let urls = redis.urls();
    let lines = cluster_lines(&redis);
    let cluster = Cluster::set_up(Setup {
        workers: 2,
        redis_url: &urls[0],
        redis: &lines,
        ..Setup::default()
    });
    let effects = crate::support::shared_file(&cluster.shared(), "effects");
    let run = format!(
        "echo {{{{ run.id }}}}-{{{{ item }}}} >> {}; sleep 0.1",
        effects.display()
    );
    let file = fan_out(&cluster, "failover", 150, &run);
    let id = cluster.submit(file.to_str().unwrap(), &[]).await;
    wait_for_lines(&effects, 30, Duration::from_secs(60));
    // The primary that holds the run's keys.
    let holder = redis
        .primaries()
        .into_iter()
        .find(|port| {
            std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "exists"])
                .arg(format!("{}:run:{{{id}}}", cluster.prefix))
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "1")
        })
        .expect("a primary holds the run");
    redis.kill9(holder);
    let at_kill = counted(&effects).len();
    assert!(at_kill < 150, "the run ended before the primary was killed");
    eprintln!("primary {holder} killed after {at_kill} effects");

    let view = cluster.wait(&id, Duration::from_secs(240)).await;
    let (lost, twice) = lost_and_twice(&effects, (0..150).map(|i| format!("{id}-{i}")));
    eprintln!(
        "report: 150 effects expected, {} lost, {} twice, run {}",
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
