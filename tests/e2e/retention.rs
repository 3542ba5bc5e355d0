//! Retention: `weft gc` on the embedded store removes old finished runs
//! and the artifacts nothing kept refers to (a live cache entry keeps its
//! artifact), and a server applying `[retention]` keeps Redis's memory flat
//! under a steady stream of runs.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, Setup};
use crate::support::{repo, text, weft_bin};

/// `weft` with the configuration file `config` and data directory `data`.
fn weft_with(config: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(weft_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("WEFT_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .current_dir(repo())
        .output()
        .expect("running weft")
}

fn objects(dir: &Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flat_map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p)
            } else {
                vec![p]
            }
        })
        .collect()
}

#[test]
fn weft_gc_removes_old_runs_and_unreferenced_artifacts_but_not_cached_ones() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        "[retention]\nruns = \"1ms\"\nkeep-last = 1\nupload-grace = \"0s\"\n",
    )
    .unwrap();
    let plain = dir.path().join("plain.toml");
    std::fs::write(
        &plain,
        "[workflow]\nname = \"plain\"\n[params]\nn = \"1\"\n[steps.a]\nrun = 'echo \"data {{ params.n }}\" > out.txt'\nartifacts = { out = \"out.txt\" }\n",
    )
    .unwrap();
    let cached = dir.path().join("cached.toml");
    std::fs::write(
        &cached,
        "[workflow]\nname = \"cached\"\n[params]\np = \"x\"\n[steps.a]\ncache = true\nrun = 'echo \"cached {{ params.p }}\" > out.txt'\nartifacts = { out = \"out.txt\" }\n",
    )
    .unwrap();
    let run = |file: &Path, param: &str| {
        let out = weft_with(
            &config,
            &data,
            &["run", "--plain", file.to_str().unwrap(), "-p", param],
        );
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    for n in ["n=1", "n=2", "n=3"] {
        run(&plain, n);
    }
    run(&cached, "p=x");
    run(&cached, "p=y");
    let store = data.join("artifacts");
    assert_eq!(objects(&store), 5);
    std::thread::sleep(Duration::from_millis(20));

    let dry = weft_with(&config, &data, &["gc", "--dry-run"]);
    let said = text(&dry);
    assert!(dry.status.success(), "{said}");
    assert!(said.contains("would remove 3 run(s)"), "{said}");
    assert!(said.contains("2 artifact(s)"), "{said}");
    assert_eq!(objects(&store), 5, "a dry run removes nothing");

    let gc = weft_with(&config, &data, &["gc"]);
    let said = text(&gc);
    assert!(gc.status.success(), "{said}");
    assert!(said.contains("removed 3 run(s)"), "{said}");
    // The newest run of each workflow stays; its artifact, and the one a
    // live cache entry (of the removed `p=x` run) refers to, stay too.
    let runs = text(&weft_with(&config, &data, &["runs"]));
    assert_eq!(
        runs.lines().filter(|l| l.contains("succeeded")).count(),
        2,
        "{runs}"
    );
    assert_eq!(objects(&store), 3);
    let again = run(&cached, "p=x");
    assert!(again.contains("cached from run"), "{again}");

    // Without `[retention]`, `weft gc` says what is missing.
    let bare = dir.path().join("bare.toml");
    std::fs::write(&bare, "").unwrap();
    let refused = weft_with(&bare, &data, &["gc"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("no `[retention]`"),
        "{}",
        text(&refused)
    );
}

/// Bytes Redis holds under the cluster's prefix, the audit log apart (it
/// has its own bound, the newest 100,000 entries), and how many runs.
async fn redis_bytes(cluster: &Cluster) -> (u64, usize) {
    let client = redis::Client::open(cluster.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", cluster.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut bytes = 0;
    let mut runs = 0;
    for key in keys.iter().filter(|k| !k.contains(":audit")) {
        let used: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        bytes += used.unwrap_or(0);
        if key.starts_with(&format!("{}:run:", cluster.prefix)) {
            runs += 1;
        }
    }
    (bytes, runs)
}

/// Submits `n` runs, 25 at a time, each waited for.
async fn runs(cluster: &Cluster, n: usize) {
    let source = "[workflow]\nname = \"steady\"\n[steps.a]\nrun = 'echo a line of log'\n[steps.b]\nneeds = [\"a\"]\n";
    for _ in 0..n / 25 {
        let mut ids = Vec::new();
        for _ in 0..25 {
            ids.push(cluster.submit_text(source).await);
        }
        for id in ids {
            let view = cluster.wait(&id, Duration::from_secs(120)).await;
            assert_eq!(view.run.status, "succeeded", "{view:?}");
        }
    }
}

/// After enough sweeps that every finished run but the kept ones is gone.
async fn settled(cluster: &Cluster, keep: usize) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (bytes, runs) = redis_bytes(cluster).await;
        if runs <= keep {
            return bytes;
        }
        assert!(Instant::now() < deadline, "{runs} runs still stored");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_memory_stays_flat_over_500_runs_with_retention() {
    let cluster = Cluster::set_up(Setup {
        workers: 1,
        worker: "concurrency = 4",
        tables: "[retention]\nruns = \"3s\"\nkeep-last = 5\nevery = \"500ms\"\n",
        ..Setup::default()
    });
    runs(&cluster, 100).await;
    let first_window = settled(&cluster, 5).await;
    runs(&cluster, 400).await;
    let after_500 = settled(&cluster, 5).await;
    println!("Redis bytes under the prefix: {first_window} after 100 runs, {after_500} after 500");
    // Flat: 400 more runs leave no more than noise (an index's encoding
    // changing once it has held more than 128 runs, the registry's
    // heartbeats), where each run kept would add several KiB.
    assert!(
        after_500 < first_window + 32 * 1024,
        "{first_window} bytes after 100 runs, {after_500} after 500"
    );
}
