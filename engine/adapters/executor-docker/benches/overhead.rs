//! Container step overhead: weft's runtime (bollard, straight to the engine)
//! against `docker run --rm` of the same image and command, interleaved in
//! one run so both see the same machine. Needs a Docker engine and the
//! image `weft-test/busybox:1` (scripts/test builds it).
//!
//! `cargo bench -p weft-executor-docker`

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use weft_core::ports::{ContainerRun, ContainerRuntime, LogSink};
use weft_executor_docker::DockerRuntime;

const IMAGE: &str = "weft-test/busybox:1";
const ROUNDS: usize = 30;

struct Discard;

#[async_trait::async_trait]
impl LogSink for Discard {
    async fn write(&self, _: &[u8]) {}
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let runtime = DockerRuntime::connect().await.expect("a Docker engine");
    let scratch = tempfile::tempdir().unwrap();
    let request = |i: usize| ContainerRun {
        name: format!("weft-bench-{}-{i}", std::process::id()),
        labels: BTreeMap::new(),
        image: IMAGE.into(),
        command: Some(vec!["echo".into(), "hi".into()]),
        args: None,
        env: BTreeMap::new(),
        workdir: None,
        user: None,
        mounts: Vec::new(),
        scratch: scratch.path().display().to_string(),
        cpus: None,
        memory_bytes: None,
        pids_limit: 1024,
        network: false,
        gpus: Vec::new(),
    };
    // Warm both paths (image cache, engine).
    runtime.run(&request(0), &Discard).await.unwrap();
    let cli = || {
        let out = Command::new("docker")
            .args(["run", "--rm", "--network", "none", IMAGE, "echo", "hi"])
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    cli();
    let (mut weft, mut docker) = (Vec::new(), Vec::new());
    for i in 1..=ROUNDS {
        let t = Instant::now();
        runtime.run(&request(i), &Discard).await.unwrap();
        weft.push(t.elapsed());
        let t = Instant::now();
        cli();
        docker.push(t.elapsed());
    }
    let (w, d) = (median(weft), median(docker));
    println!("container `echo hi`, {ROUNDS} rounds, medians:");
    println!("  weft (bollard, with the hardening): {w:>10.2?}");
    println!("  docker run --rm:                    {d:>10.2?}");
    println!(
        "  ratio weft / docker run:            {:>10.2}",
        w.as_secs_f64() / d.as_secs_f64()
    );
}
