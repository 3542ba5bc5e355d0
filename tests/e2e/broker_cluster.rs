//! weft on a three-node RabbitMQ cluster: one node is killed with SIGKILL
//! mid-run (the node every client is on, and where the queues' leaders
//! are) and is not brought back. The quorum queues elect leaders on the
//! two left, the server and the workers move to them by `[broker] urls`,
//! the run finishes with every step's effect once, and a run submitted
//! afterwards runs on the two nodes alone.

use std::time::Duration;

use crate::cluster::{step, Cluster, Setup};
use crate::rabbit::PrivateRabbitCluster;
use crate::support::{counted, wait_for_lines};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_node_killed_mid_run_loses_nothing_and_runs_nothing_twice() {
    let mut rabbits = PrivateRabbitCluster::start(3);
    let urls = rabbits.urls();
    let others = format!("urls = [\"{}\", \"{}\"]", urls[1], urls[2]);
    let cluster = Cluster::set_up(Setup {
        workers: 2,
        broker_url: &urls[0],
        broker: &others,
        ..Setup::default()
    });
    let effects = crate::support::shared_file(&cluster.shared(), "effects");
    let write = |name: &str, items: usize| {
        let file = cluster.dir.path().join(format!("{name}.toml"));
        let items: Vec<String> = (0..items).map(|i| i.to_string()).collect();
        std::fs::write(
            &file,
            format!(
                "[workflow]\nname = \"{name}\"\n[steps.fan]\nfor-each = [{}]\n\
                 run = \"echo {{{{ run.id }}}}-{{{{ item }}}} >> {}; sleep 0.2\"\n\
                 [steps.after]\nneeds = [\"fan\"]\n\
                 run = \"echo {{{{ run.id }}}}-after >> {}\"\n",
                items.join(","),
                effects.display(),
                effects.display()
            ),
        )
        .unwrap();
        file
    };
    let first = write("before", 200);
    let id = cluster.submit(first.to_str().unwrap(), &[]).await;
    wait_for_lines(&effects, 40, Duration::from_secs(60));
    rabbits.nodes[0].kill9();
    let at_kill = counted(&effects).len();
    assert!(at_kill < 200, "the run ended before the node was killed");
    eprintln!(
        "node {} killed after {at_kill} effects",
        rabbits.nodes[0].node()
    );

    let view = cluster.wait(&id, Duration::from_secs(240)).await;
    // A run submitted now has only the two nodes left.
    let second = write("after-the-kill", 20);
    let id2 = cluster.submit(second.to_str().unwrap(), &[]).await;
    let view2 = cluster.wait(&id2, Duration::from_secs(120)).await;

    // The counts, as a Jepsen-style report: what was lost (an effect
    // missing), done twice, or left unfinished.
    let seen = counted(&effects);
    let mut lost = Vec::new();
    let mut twice = Vec::new();
    for (run, n) in [(&id, 200), (&id2, 20)] {
        let names = (0..n)
            .map(|i| format!("{run}-{i}"))
            .chain([format!("{run}-after")]);
        for name in names {
            match seen.get(&name).copied().unwrap_or(0) {
                0 => lost.push(name),
                1 => {}
                _ => twice.push(name),
            }
        }
    }
    let unfinished: Vec<_> = [&view, &view2]
        .iter()
        .flat_map(|v| v.steps.iter())
        .flat_map(|s| s.tasks.iter())
        .filter(|t| t.status != "succeeded")
        .map(|t| t.id.clone())
        .collect();
    eprintln!(
        "report: {} effects expected, {} lost, {} twice, {} tasks not succeeded",
        222,
        lost.len(),
        twice.len(),
        unfinished.len()
    );
    assert!(lost.is_empty(), "effects lost: {lost:?}");
    assert!(twice.is_empty(), "effects twice: {twice:?}");
    assert!(unfinished.is_empty(), "tasks not succeeded: {unfinished:?}");
    assert_eq!(view.run.status, "succeeded", "{:?}", view.run);
    assert_eq!(view2.run.status, "succeeded", "{:?}", view2.run);
    assert_eq!(step(&view, "fan").tasks.len(), 200);
}
