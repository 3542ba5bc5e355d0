//! Everything scaled out at once, and everything broken once: a three-node
//! RabbitMQ cluster, a Redis Cluster of three primaries with a replica
//! each, three servers and ten workers run a mixed load of fan-outs and
//! chains while one broker node, one Redis primary, one server and two
//! workers are killed with SIGKILL, one after another. The counts are
//! printed as a Jepsen-style report: effects lost, effects twice, runs
//! stuck, runs failed; each must be zero. A step a killed worker was
//! running runs again (at least once, as documented): its effect twice is
//! counted apart, and only where the run records the killed worker's
//! execution as unfinished; any other copy is a step that succeeded
//! running again.

use std::time::{Duration, Instant};

use weft_testkit::redis_cluster::RedisCluster;

use crate::cluster::{tasks_where, Cluster, Setup};
use crate::rabbit::PrivateRabbitCluster;
use crate::support::{counted, wait_for_lines};

const FAN: usize = 60;
const CHAIN: usize = 10;

fn fan_out(effects: &std::path::Path) -> String {
    let items: Vec<String> = (0..FAN).map(|i| i.to_string()).collect();
    format!(
        "[workflow]\nname = \"scale-fan\"\n[steps.fan]\nfor-each = [{}]\n\
         run = \"echo {{{{ run.id }}}}-{{{{ item }}}} >> {e}; sleep 0.2\"\n\
         [steps.join]\nneeds = [\"fan\"]\nrun = \"echo {{{{ run.id }}}}-join >> {e}\"\n",
        items.join(","),
        e = effects.display()
    )
}

fn chain(effects: &std::path::Path) -> String {
    let mut text = "[workflow]\nname = \"scale-chain\"\n".to_string();
    for i in 0..CHAIN {
        text.push_str(&format!(
            "[steps.c{i}]\nrun = \"echo {{{{ run.id }}}}-c{i} >> {}; sleep 0.1\"\n",
            effects.display()
        ));
        if i > 0 {
            text.push_str(&format!("needs = [\"c{}\"]\n", i - 1));
        }
    }
    text
}

/// The effects a run of each kind leaves, each exactly once.
fn expected(id: &str, fan: bool) -> Vec<String> {
    if fan {
        (0..FAN)
            .map(|i| format!("{id}-{i}"))
            .chain([format!("{id}-join")])
            .collect()
    } else {
        (0..CHAIN).map(|i| format!("{id}-c{i}")).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_of_everything_lose_one_of_each_and_every_run_ends_losing_nothing_and_running_no_success_again(
) {
    let mut rabbits = PrivateRabbitCluster::start(3);
    let redis = RedisCluster::start_private(17301);
    let (amqp, redis_urls) = (rabbits.urls(), redis.urls());
    let broker = format!(
        "urls = [\"{}\", \"{}\"]\nmailbox-ttl-ms = 2000",
        amqp[1], amqp[2]
    );
    let others: Vec<String> = redis_urls[1..].iter().map(|u| format!("\"{u}\"")).collect();
    let redis_lines = format!("cluster = true\nurls = [{}]", others.join(", "));
    let mut cluster = Cluster::set_up(Setup {
        workers: 10,
        broker_url: &amqp[0],
        broker: &broker,
        redis_url: &redis_urls[0],
        redis: &redis_lines,
        worker: "concurrency = 1",
        ..Setup::default()
    });
    let servers = [
        cluster.url.clone(),
        cluster.start_another_serve(),
        cluster.start_another_serve(),
    ];
    let clients: Vec<weft_api::Client> = servers
        .iter()
        .map(|url| weft_api::Client::new(url).with_token(Some(cluster.admin_token.clone())))
        .collect();
    let effects = crate::support::shared_file(&cluster.shared(), "effects");

    // Two fan-outs and two chains on each server.
    let mut runs = Vec::new();
    for (n, client) in clients.iter().enumerate() {
        for fan in [true, false, true, false] {
            let request = weft_api::views::SubmitRequest {
                workflow: if fan {
                    fan_out(&effects)
                } else {
                    chain(&effects)
                },
                ..Default::default()
            };
            let id = client.submit(&request).await.unwrap().id;
            runs.push((id, fan, n));
        }
    }
    let total: usize = runs
        .iter()
        .map(|(id, fan, _)| expected(id, *fan).len())
        .sum();

    // One of each, one after another, each once the load has moved on.
    let limit = Duration::from_secs(120);
    wait_for_lines(&effects, 30, limit);
    rabbits.nodes[0].kill9();
    eprintln!(
        "killed rabbitmq node 1 at {} effects",
        counted(&effects).len()
    );
    wait_for_lines(&effects, 70, limit);
    let primary = redis.primaries()[0];
    redis.kill9(primary);
    eprintln!(
        "killed redis primary {primary} at {} effects",
        counted(&effects).len()
    );
    wait_for_lines(&effects, 110, limit);
    cluster.kill_serve();
    eprintln!(
        "killed the first server at {} effects",
        counted(&effects).len()
    );
    wait_for_lines(&effects, 150, limit);
    cluster.kill_worker(0);
    cluster.kill_worker(1);
    let at_last = counted(&effects).len();
    eprintln!("killed two workers at {at_last} effects");
    assert!(at_last < total, "the load ended before the last kill");

    // Every run, as the servers left see it.
    let alive = &clients[1..];
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut stuck = Vec::new();
    let mut failed = Vec::new();
    let mut views = std::collections::HashMap::new();
    for (id, _, n) in &runs {
        let client = &alive[n % alive.len()];
        loop {
            let view = client.run(id).await.ok();
            let status = view
                .as_ref()
                .map(|v| v.run.status.clone())
                .unwrap_or_default();
            if ["succeeded", "failed", "cancelled"].contains(&status.as_str()) {
                if status != "succeeded" {
                    failed.push(format!("{id}: {status}"));
                }
                views.insert(id.clone(), view.expect("seen"));
                break;
            }
            if Instant::now() > deadline {
                stuck.push(format!("{id}: {status}"));
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let seen = counted(&effects);
    let killed_workers = [
        format!("{}-w0", cluster.prefix),
        format!("{}-w1", cluster.prefix),
    ];
    let mut lost = Vec::new();
    let mut twice = Vec::new();
    let mut rerun = Vec::new();
    for (id, fan, _) in &runs {
        for name in expected(id, *fan) {
            match seen.get(&name).copied().unwrap_or(0) {
                0 => lost.push(name),
                1 => {}
                _ if views.get(id).is_some_and(|v| {
                    rerun_after_a_killed_worker(v, &name[id.len() + 1..], &killed_workers)
                }) =>
                {
                    rerun.push(name)
                }
                _ => twice.push(name),
            }
        }
    }
    eprintln!(
        "report: {} runs, {total} effects expected; {} lost, {} twice, {} runs stuck, {} runs failed; \
         {} run again after their worker was killed mid-step (at-least-once, recorded as a second execution)",
        runs.len(),
        lost.len(),
        twice.len(),
        stuck.len(),
        failed.len(),
        rerun.len()
    );
    // Why: each run that did not succeed, with its tasks that did not.
    for (id, view) in views.iter().filter(|(_, v)| v.run.status != "succeeded") {
        eprintln!("{id}: {}", tasks_where(view, |t| t.status != "succeeded"));
    }
    assert!(lost.is_empty(), "effects lost: {lost:?}");
    assert!(twice.is_empty(), "effects twice: {twice:?}");
    assert!(stuck.is_empty(), "runs stuck: {stuck:?}");
    assert!(failed.is_empty(), "runs failed: {failed:?}");
}

/// Whether the task that leaves effect `what` (`join`, `cN`, or a fan-out
/// item) ran twice because a killed worker's execution of it never
/// finished: an honest second execution, recorded as such, of a step that
/// had not succeeded. Any other copy is a step that succeeded running again.
fn rerun_after_a_killed_worker(
    view: &weft_api::views::RunView,
    what: &str,
    killed: &[String],
) -> bool {
    let task = view.steps.iter().flat_map(|s| s.tasks.iter()).find(|t| {
        t.id == what || t.item.as_deref() == Some(what) || t.id == format!("fan[{what}]")
    });
    task.is_some_and(|t| {
        t.attempts.iter().any(|a| {
            a.executions.len() >= 2
                && a.executions
                    .iter()
                    .any(|e| killed.contains(&e.worker) && e.error.as_deref() != Some(""))
        })
    })
}
