//! Moving a 1 GiB artifact through S3: `put_file` then `get_file` (what a
//! producing and a consuming worker do, digest checks included) against
//! `curl` uploading and downloading the same file from the same server,
//! and how much this process's peak resident memory grows while it does.
//!
//! `scripts/bench-artifacts` starts a private Garage and runs this; by hand,
//! set WEFT_BENCH_S3_ENDPOINT, _BUCKET, _KEY_ID, _SECRET (and _REGION).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use sha2::{Digest as _, Sha256};
use weft_artifacts_object::{ObjectArtifactStore, S3Options};
use weft_core::artifacts::{ArtifactRef, Digest};
use weft_core::ports::ArtifactStore;

const SIZE: u64 = 1 << 30;

fn env(name: &str) -> Option<String> {
    std::env::var(format!("WEFT_BENCH_S3_{name}")).ok()
}

/// Peak resident memory of this process so far, in KiB.
fn peak_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn write_file(path: &Path) -> ArtifactRef {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    for i in 0..(SIZE >> 20) {
        for (j, b) in block.iter_mut().enumerate() {
            *b = (i as usize * 31 + j * 7 + j / 251) as u8;
        }
        hasher.update(&block);
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
    ArtifactRef {
        digest: Digest::from_bytes(&hasher.finalize().into()),
        size: SIZE,
        dir: false,
    }
}

fn curl(args: &[&str]) -> f64 {
    let started = Instant::now();
    let status = Command::new("curl").args(args).status().expect("curl");
    assert!(status.success(), "curl {args:?}");
    started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let (Some(endpoint), Some(bucket), Some(key_id), Some(secret)) =
        (env("ENDPOINT"), env("BUCKET"), env("KEY_ID"), env("SECRET"))
    else {
        println!("s3 bench: not run (scripts/bench-artifacts starts a Garage and runs it)");
        return;
    };
    let region = env("REGION").unwrap_or_else(|| "garage".into());
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("one-gib");
    let artifact = write_file(&source);
    let options: S3Options = toml::from_str(&format!(
        "bucket = \"{bucket}\"\nregion = \"{region}\"\nendpoint = \"{endpoint}\"\n\
         access-key-id = \"{key_id}\"\nsecret-access-key = \"{secret}\"\nallow-http = true\n\
         prefix = \"bench-{}\"",
        std::process::id()
    ))
    .unwrap();
    let store = ObjectArtifactStore::s3(&options).unwrap();
    let sigv4 = format!("aws:amz:{region}:s3");
    let user = format!("{key_id}:{secret}");
    let url = format!("{endpoint}/{bucket}/bench-curl-{}", std::process::id());
    let fetched = dir.path().join("fetched");
    let curl_copy = dir.path().join("curl-copy");
    let path = |p: &Path| p.to_str().unwrap().to_string();

    let mut weft_runs = Vec::new();
    let mut curl_runs = Vec::new();
    let before = peak_kib();
    for round in 0..3 {
        // curl: one PUT and one GET of the same file.
        let up = curl(&[
            "-sSf",
            "--aws-sigv4",
            &sigv4,
            "--user",
            &user,
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            "-T",
            &path(&source),
            &url,
        ]);
        let down = curl(&[
            "-sSf",
            "--aws-sigv4",
            &sigv4,
            "--user",
            &user,
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            "-o",
            &path(&curl_copy),
            &url,
        ]);
        curl_runs.push(up + down);
        // weft: store it, fetch it (each hashed), as two workers would.
        store.remove(&artifact.digest).await.unwrap();
        let started = Instant::now();
        store.put_file(&artifact, &source).await.unwrap();
        store.get_file(&artifact, &fetched).await.unwrap();
        weft_runs.push(started.elapsed().as_secs_f64());
        println!(
            "round {round}: curl {:.2} s (put {up:.2} + get {down:.2}), weft {:.2} s",
            up + down,
            weft_runs[round]
        );
    }
    let grew = peak_kib().saturating_sub(before);
    store.remove(&artifact.digest).await.unwrap();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (w, c) = (median(&mut weft_runs), median(&mut curl_runs));
    println!(
        "1 GiB through S3 ({endpoint}), medians of 3: weft {w:.2} s, curl {c:.2} s, ratio {:.2}; \
         peak resident memory grew {:.1} MiB while moving it",
        w / c,
        grew as f64 / 1024.0
    );
}
