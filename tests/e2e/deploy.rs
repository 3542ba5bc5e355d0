//! The example deployment files in `deploy/` are real: systemd accepts the
//! units (with the binary where this build put it), and the worker's unit
//! gives a draining worker more time than its grace before it is killed;
//! the image builds from `deploy/docker/Dockerfile`, and the compose stack
//! (RabbitMQ, Redis, a server, two workers) runs `workflows/hello.toml`,
//! then, with `docker-steps.yml` over it, container steps.

use crate::support::{walk, weft_bin};

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

/// The Debian image `scripts/test` makes with debootstrap (no registry is
/// reachable here): the runtime base, and RabbitMQ's and Redis's image.
const CI_BASE: &str = "weft-ci/bookworm:1";

fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs here (scripts/test installs it)")
}

/// Builds the Dockerfile's `target` from the binary under test, in a
/// context of its own (the binary alone), on the debootstrap base; returns
/// the image's name without and with its tag. A build runs on the host's
/// network: the GPU image installs Debian's NVRTC.
fn build_image(target: &str) -> (String, String) {
    assert!(
        docker(&["image", "inspect", CI_BASE]).status.success(),
        "the image {CI_BASE} is missing: scripts/test makes it with debootstrap"
    );
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(weft_bin(), context.path().join("weft")).unwrap();
    let tag = weft_testkit::unique("weft-ci/weft").to_lowercase();
    let image = format!("{tag}:test");
    let built = docker(&[
        "build",
        "-q",
        "--network",
        "host",
        "-f",
        repo().join("deploy/docker/Dockerfile").to_str().unwrap(),
        "--target",
        target,
        "--build-arg",
        &format!("BASE={CI_BASE}"),
        "--build-arg",
        "BINARY=weft",
        "-t",
        &image,
        context.path().to_str().unwrap(),
    ]);
    assert!(
        built.status.success(),
        "docker build --target {target}: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    (tag, image)
}

/// `docker-compose` on the example stack, as project `project`.
fn compose(project: &str, env: &[(&str, String)], args: &[&str]) -> std::process::Output {
    compose_with(&[], project, env, args)
}

/// `docker-compose` on the example stack with the overrides `over` (file
/// names in `deploy/compose`), as project `project`.
fn compose_with(
    over: &[&str],
    project: &str,
    env: &[(&str, String)],
    args: &[&str],
) -> std::process::Output {
    let mut files = vec!["docker-compose.yml"];
    files.extend(over);
    std::process::Command::new("docker-compose")
        .args(files.iter().flat_map(|f| {
            [
                "-f".into(),
                repo().join("deploy/compose").join(f).into_os_string(),
            ]
        }))
        .args(["-p", project])
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("docker-compose (Debian's package) runs here; scripts/test installs it")
}

/// Takes the stack down, volumes and all, however the test ends.
struct Stack {
    project: String,
    env: Vec<(&'static str, String)>,
    image: String,
}

impl Stack {
    /// The last lines every service logged, for a failure's message.
    fn tail(&self) -> String {
        let logs = compose(
            &self.project,
            &self.env,
            &["logs", "--no-color", "--tail", "40"],
        );
        String::from_utf8_lossy(&logs.stdout).into_owned()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = compose(&self.project, &self.env, &["down", "-v", "--timeout", "5"]);
        let _ = docker(&["image", "rm", "-f", &self.image]);
    }
}

/// Removes an image however the test ends.
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        let _ = docker(&["image", "rm", "-f", &self.0]);
    }
}

/// The GPU worker's image: Debian's NVRTC compiles a kernel in it without
/// a GPU (its build checks that too). The driver is the host's, mounted by
/// NVIDIA's container toolkit, so a container started without `--gpus`
/// has none: `weft gpus` says so, and `--need driver` fails.
#[test]
fn the_gpu_image_compiles_a_kernel_with_its_nvrtc_and_names_a_missing_driver() {
    let image = Image(build_image("gpu-prebuilt").1);
    let gpus = |need: &str| {
        let out = docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            &image.0,
            "gpus",
            "--need",
            need,
        ]);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };
    let (ok, out, err) = gpus("nvrtc");
    assert!(ok, "weft gpus --need nvrtc: {out}{err}");
    assert!(
        out.contains("NVRTC: 11.8, compiles `source` kernels"),
        "{out}"
    );
    let (ok, out, err) = gpus("driver");
    assert!(!ok, "no driver without --gpus, yet: {out}{err}");
    assert!(out.contains("CUDA driver: not found"), "{out}");
    assert!(err.contains("needed here but missing: driver"), "{err}");
    // The stack's override for it is a valid compose file, on this image.
    let env = [("WEFT_GPU_IMAGE", image.0.clone())];
    let config = compose_with(&["gpu-worker.yml"], "weftgpuconfig", &env, &["config"]);
    let text = String::from_utf8_lossy(&config.stdout);
    assert!(
        config.status.success() && text.contains("worker-gpu") && text.contains(&image.0),
        "docker-compose config: {text}{}",
        String::from_utf8_lossy(&config.stderr)
    );
    let cmd = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Cmd}}",
        &image.0,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&cmd.stdout).trim(),
        r#"["worker"]"#,
        "the GPU image starts a worker"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_runs_hello_then_with_the_socket_container_steps() {
    // The image, from the binary under test (`--target prebuilt`).
    let (tag, image) = build_image("prebuilt");
    let port = crate::rabbit::free_port();
    let project = tag.replace(['/', '-'], "");
    let stack = Stack {
        project: project.clone(),
        env: vec![
            ("WEFT_IMAGE", image.clone()),
            ("WEFT_PORT", port.to_string()),
            ("WEFT_RABBITMQ_IMAGE", CI_BASE.to_string()),
            ("WEFT_REDIS_IMAGE", CI_BASE.to_string()),
        ],
        image,
    };
    let up = compose(&project, &stack.env, &["up", "-d"]);
    assert!(
        up.status.success(),
        "docker-compose up: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    // The server waits for RabbitMQ and Redis, then prints the first admin
    // token and serves.
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let start = std::time::Instant::now();
    let token = loop {
        let logs = compose(&project, &stack.env, &["logs", "--no-color", "serve"]);
        let text = String::from_utf8_lossy(&logs.stdout).to_string();
        let token = text
            .split_whitespace()
            .find(|w| w.starts_with("weft_"))
            .map(str::to_string);
        let healthy = http
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if let (Some(token), true) = (token, healthy) {
            break token;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(180),
            "the stack did not come up; the server said:\n{text}\n{}",
            stack.tail()
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };

    let data = tempfile::tempdir().unwrap();
    let said = submit(
        &url,
        &token,
        data.path(),
        &repo().join("workflows/hello.toml"),
    )
    .await;
    assert!(said.0, "{}\n{}", said.1, stack.tail());
    assert!(said.1.contains("succeeded"), "{}", said.1);

    // With docker-steps.yml over it, the workers get the host's engine and
    // a work directory at the same path on both sides: a container step's
    // outputs reach the step after it.
    let work = tempfile::tempdir().unwrap();
    // Step users pass through it to their scratch directories.
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let mut env = stack.env.clone();
    env.push(("WEFT_WORK_DIR", work.path().display().to_string()));
    let up = compose_with(&["docker-steps.yml"], &project, &env, &["up", "-d"]);
    assert!(
        up.status.success(),
        "docker-compose up with docker-steps.yml: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let boxed = data.path().join("boxed.toml");
    std::fs::write(&boxed, BOXED.replace("IMAGE", BOX)).unwrap();
    let said = submit(&url, &token, data.path(), &boxed).await;
    assert!(said.0, "{}\n{}", said.1, stack.tail());
    assert!(said.1.contains("succeeded"), "{}", said.1);
    // The attempts' scratch directories went with them.
    let left: Vec<_> = walk(work.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains('@'))
        .collect();
    assert!(left.is_empty(), "scratch directories left: {left:?}");
    drop(stack);
}

/// The image `scripts/test` builds for container steps.
const BOX: &str = "weft-test/busybox:1";

/// A container step whose output a shell step after it checks.
const BOXED: &str = r#"[workflow]
name = "compose-boxed"

[steps.make]
container = { image = "IMAGE", command = "echo '{\"n\": 42}' > \"$WEFT_OUTPUTS\"" }

[steps.check]
needs = ["make"]
run = "test {{ steps.make.outputs.n }} = 42"
"#;

/// `weft submit FILE --wait` against the stack: whether it succeeded, and
/// what it said.
async fn submit(
    url: &str,
    token: &str,
    data: &std::path::Path,
    file: &std::path::Path,
) -> (bool, String) {
    let run = tokio::process::Command::new(weft_bin())
        .arg("submit")
        .arg(file)
        .args(["--wait", "--server", url])
        .env("WEFT_TOKEN", token)
        .env("WEFT_DATA_DIR", data)
        .env_remove("WEFT_CONFIG")
        .current_dir(repo())
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the run finished within two minutes")
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
