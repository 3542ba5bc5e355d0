//! The example deployment files in `deploy/` are real: systemd accepts the
//! units (with the binary where this build put it), and the worker's unit
//! gives a draining worker more time than its grace before it is killed.

use crate::support::weft_bin;

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `key=value` of a unit's `[Service]`, in seconds for `*Sec` values.
fn setting<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

#[test]
fn the_systemd_units_verify_and_the_worker_is_given_time_to_drain() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for name in ["weft-server.service", "weft-worker.service"] {
        let text = std::fs::read_to_string(repo().join("deploy/systemd").join(name)).unwrap();
        assert!(text.contains("/usr/local/bin/weft --config /etc/weft/weft.toml"));
        let here = text.replace("/usr/local/bin/weft", weft_bin().to_str().unwrap());
        let path = dir.path().join(name);
        std::fs::write(&path, here).unwrap();
        paths.push(path);
    }
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .output()
        .expect("systemd-analyze (package systemd) runs here");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        !said.contains(".service:"),
        "systemd found something to say about a unit: {said}"
    );

    let worker =
        std::fs::read_to_string(repo().join("deploy/systemd/weft-worker.service")).unwrap();
    let stop: u64 = setting(&worker, "TimeoutStopSec").unwrap().parse().unwrap();
    let grace_ms = weft_worker_grace_ms();
    assert!(
        stop * 1000 > grace_ms,
        "systemd kills after {stop}s, before the {grace_ms} ms drain"
    );
    assert_eq!(setting(&worker, "KillMode"), Some("mixed"));
}

/// The default `[worker-http] drain-grace-ms`, as `weft` documents it.
fn weft_worker_grace_ms() -> u64 {
    let docs = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    docs.lines()
        .find_map(|l| l.trim().strip_prefix("drain-grace-ms = "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("docs/configuration.md names drain-grace-ms")
}
