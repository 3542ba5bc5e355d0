//! A private weft cluster for one test: `weft serve` and `weft worker`
//! processes on the shared RabbitMQ and Redis, under a prefix no other test
//! uses; its queues and keys expire after the test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weft_api::views::{RunView, StepView, SubmitRequest, TaskView};
use weft_api::Client;

use crate::support::{repo, weft_bin};

pub struct Cluster {
    pub prefix: String,
    pub redis_url: String,
    pub dir: tempfile::TempDir,
    config: PathBuf,
    pub serve: Option<Child>,
    pub url: String,
    /// The admin token the first `weft serve` printed.
    pub admin_token: String,
    pub workers: Vec<Child>,
    /// More `weft serve` processes on the same configuration.
    pub more_serves: Vec<Child>,
    /// Where each process's log goes, when the setup asked for files.
    log_dir: Option<PathBuf>,
}

/// Starts `cmd` and reads its stdout until it prints the address it serves
/// on; returns the process, that URL, and the lines before it.
pub fn start(mut cmd: Command, what: &str) -> (Child, String, Vec<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Keep draining after the URL so the process never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut before = Vec::new();
    loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not start within 30s; it printed {before:?}");
        };
        if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            return (child, url.to_string(), before);
        }
        before.push(line);
    }
}

/// How a test's cluster differs from the default one.
pub struct Setup<'a> {
    pub workers: usize,
    pub broker_url: &'a str,
    pub redis_url: &'a str,
    /// Deliveries of a job before it is dead-lettered.
    pub delivery_limit: u32,
    /// Lines added to `[broker]`, `[orchestrator]`, `[redis]`, `[worker]` and `[server]`.
    pub broker: &'a str,
    pub orchestrator: &'a str,
    pub redis: &'a str,
    pub worker: &'a str,
    pub server: &'a str,
    /// Tables appended to the configuration (`[policy]`, say).
    pub tables: &'a str,
    /// Each process logs at debug level to a file of its own (read with
    /// [`Cluster::logs`]) instead of the test's output.
    pub log_to_files: bool,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Self {
            workers: 1,
            broker_url: "amqp://guest:guest@127.0.0.1:5672/%2f",
            redis_url: "redis://127.0.0.1:6379/",
            delivery_limit: 3,
            broker: "",
            orchestrator: "lease-ttl-ms = 2000",
            redis: "",
            worker: "concurrency = 2",
            server: "",
            tables: "",
            log_to_files: false,
        }
    }
}

impl Cluster {
    /// A server and `workers` workers (concurrency 2 each) on the shared broker and Redis.
    pub fn start(workers: usize) -> Self {
        Self::start_with(workers, "amqp://guest:guest@127.0.0.1:5672/%2f", 3)
    }

    /// `delivery_limit`: deliveries of a job before it is dead-lettered.
    pub fn start_with(workers: usize, broker_url: &str, delivery_limit: u32) -> Self {
        Self::set_up(Setup {
            workers,
            broker_url,
            delivery_limit,
            ..Setup::default()
        })
    }

    pub fn set_up(setup: Setup<'_>) -> Self {
        let Setup {
            workers,
            broker_url,
            redis_url,
            delivery_limit,
            broker,
            orchestrator,
            redis,
            worker,
            server,
            tables,
            log_to_files,
        } = setup;
        let prefix = weft_testkit::unique("e2e");
        let dir = tempfile::tempdir().unwrap();
        // As an administrator gives a root worker's work-dir (say, under
        // /var/lib/weft): passable by the step users, listable by none.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .unwrap();
        let config = dir.path().join("weft.toml");
        std::fs::write(
            &config,
            format!(
                "[broker]\nurl = \"{broker_url}\"\nprefix = \"{prefix}\"\nexpire-after-ms = 600000\ndelivery-limit = {delivery_limit}\nreconnect-max-delay-ms = 1000\n{broker}\n\n\
                 [redis]\nurl = \"{redis_url}\"\nprefix = \"{prefix}\"\nexpire-after-secs = 900\n{redis}\n\n\
                 [orchestrator]\n{orchestrator}\n\n\
                 [server]\nlisten = \"127.0.0.1:0\"\n{server}\n\n\
                 [worker]\n{worker}\nheartbeat-ms = 500\nwork-dir = \"{}\"\n\n\
                 [worker-http]\nlisten = \"127.0.0.1:0\"\ndrain-grace-ms = 5000\n\n{tables}\n",
                dir.path().join("work").display()
            ),
        )
        .unwrap();
        let mut cluster = Self {
            prefix,
            redis_url: redis_url.to_string(),
            dir,
            config,
            serve: None,
            url: String::new(),
            admin_token: String::new(),
            workers: Vec::new(),
            more_serves: Vec::new(),
            log_dir: None,
        };
        if log_to_files {
            let logs = cluster.dir.path().join("logs");
            std::fs::create_dir_all(&logs).unwrap();
            cluster.log_dir = Some(logs);
        }
        cluster.start_serve();
        for _ in 0..workers {
            cluster.start_worker();
        }
        cluster
    }

    fn command(&self, args: &[&str]) -> Command {
        self.command_of(Command::new(weft_bin()), args)
    }

    /// `weft ARGS` on this cluster's configuration, started by `cmd` (weft
    /// itself, or a wrapper given weft's path).
    fn command_of(&self, mut cmd: Command, args: &[&str]) -> Command {
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(repo())
            .env_remove("WEFT_SERVER")
            .env_remove("WEFT_PREFIX");
        match &self.log_dir {
            Some(logs) => {
                let n = std::fs::read_dir(logs).map_or(0, |d| d.count());
                let file =
                    std::fs::File::create(logs.join(format!("{n}-{}.log", args[0]))).unwrap();
                cmd.env("WEFT_LOG", "debug").stderr(file);
            }
            None => {
                cmd.stderr(Stdio::inherit());
            }
        }
        cmd
    }

    /// Everything the processes have logged so far (with `log_to_files`).
    pub fn logs(&self) -> String {
        let Some(logs) = &self.log_dir else {
            return String::new();
        };
        let mut all = String::new();
        for entry in std::fs::read_dir(logs).unwrap() {
            all.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
        }
        all
    }

    pub fn start_serve(&mut self) {
        let (child, url, before) = start(self.command(&["serve"]), "weft serve");
        self.serve = Some(child);
        self.url = url;
        if let Some(token) = before
            .iter()
            .find_map(|l| l.split_whitespace().find(|w| w.starts_with("weft_")))
        {
            self.admin_token = token.to_string();
        }
    }

    /// Starts another `weft serve` beside the first; returns its URL.
    pub fn start_another_serve(&mut self) -> String {
        let (child, url, _) = start(self.command(&["serve"]), "another weft serve");
        self.more_serves.push(child);
        url
    }

    /// Starts another `weft serve` whose clock reads `offset` (libfaketime's
    /// syntax: `+30s`) off the machine's; its timers still run at the
    /// machine's pace. Returns its URL.
    pub fn start_another_serve_with_clock(&mut self, offset: &str) -> String {
        // The library itself, not the `faketime` program: that one forks,
        // and killing it would leave the server running.
        let library = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
        assert!(
            std::path::Path::new(library).exists(),
            "{library} is missing: scripts/test installs it (package faketime)"
        );
        let mut faked = Command::new(weft_bin());
        faked
            .env("LD_PRELOAD", library)
            .env("FAKETIME", offset)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        let cmd = self.command_of(faked, &["serve"]);
        let (child, url, _) = start(cmd, "weft serve with libfaketime");
        self.more_serves.push(child);
        url
    }

    /// Starts a worker; returns its pid.
    pub fn start_worker(&mut self) -> u32 {
        self.start_worker_with(&[])
    }

    /// Starts a worker named `<prefix>-w<n>` with more arguments; returns its pid.
    pub fn start_worker_with(&mut self, extra: &[&str]) -> u32 {
        let n = self.workers.len();
        let child = self.spawn_worker(n, extra);
        let pid = child.id();
        self.workers.push(child);
        pid
    }

    /// Kills worker `n` with SIGKILL (no clean-up of any kind).
    pub fn kill_worker(&mut self, n: usize) {
        let _ = self.workers[n].kill();
        let _ = self.workers[n].wait();
    }

    /// Starts worker `n` again under its name, as after a crash.
    pub fn restart_worker(&mut self, n: usize) {
        self.workers[n] = self.spawn_worker(n, &[]);
    }

    fn spawn_worker(&self, n: usize, extra: &[&str]) -> Child {
        // Unique across clusters: a worker removes the leftover containers
        // of its name when it starts.
        let name = format!("{}-w{n}", self.prefix);
        let mut args = vec!["worker", "--name", &name];
        args.extend_from_slice(extra);
        start(self.command(&args), "weft worker").0
    }

    pub fn kill_serve(&mut self) {
        if let Some(mut s) = self.serve.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }

    /// A directory steps may write into, for markers the test reads.
    pub fn shared(&self) -> PathBuf {
        crate::support::shared_dir(self.dir.path())
    }

    /// `weft ARGS` against this cluster's server, as the admin, with its
    /// own empty data directory (nothing local is read).
    pub fn weft(&self, args: &[&str]) -> std::process::Output {
        let data = tempfile::tempdir().unwrap();
        Command::new(weft_bin())
            .args(args)
            .args(["--server", &self.url])
            .env("WEFT_TOKEN", &self.admin_token)
            .env("WEFT_DATA_DIR", data.path())
            .output()
            .expect("running weft")
    }

    /// A client with the admin token.
    pub fn client(&self) -> Client {
        Client::new(&self.url).with_token(Some(self.admin_token.clone()))
    }

    pub async fn submit(&self, file: &str, params: &[(&str, &str)]) -> String {
        let source = std::fs::read_to_string(if file.starts_with('/') {
            PathBuf::from(file)
        } else {
            repo().join(file)
        })
        .unwrap();
        let request = SubmitRequest {
            workflow: source,
            file: Some(file.into()),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        self.client().submit(&request).await.expect("submit").id
    }

    /// Submits a workflow given as text; the new run's id.
    pub async fn submit_text(&self, workflow: &str) -> String {
        let request = SubmitRequest {
            workflow: workflow.into(),
            ..Default::default()
        };
        self.client().submit(&request).await.expect("submit").id
    }

    /// Polls the run until it finishes (the server may be restarted meanwhile).
    pub async fn wait(&self, id: &str, limit: Duration) -> RunView {
        let start = Instant::now();
        let mut last = None;
        loop {
            if let Ok(view) = self.client().run(id).await {
                if view.is_finished() {
                    return view;
                }
                last = Some(view);
            }
            assert!(
                start.elapsed() < limit,
                "run {id} did not finish within {limit:?}; where it stood:\n{}",
                last.as_ref().map_or("never read".into(), unfinished)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls run `id` until its approval step `step` waits for a person.
    pub async fn awaiting_approval(&self, id: &str, step_name: &str) -> RunView {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(view) = self.client().run(id).await {
                let waits = step(&view, step_name)
                    .tasks
                    .first()
                    .is_some_and(|t| t.status == "awaiting-approval");
                if waits {
                    return view;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{id} never waited at {step_name}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Approves `step` of run `id`, with `inputs`, as the admin, once it
    /// waits for a person.
    pub async fn approve_when_waiting(&self, id: &str, step: &str, inputs: serde_json::Value) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self
                .call(
                    Some(&self.admin_token),
                    reqwest::Method::POST,
                    &format!("/api/runs/{id}/steps/{step}/decision"),
                    Some(serde_json::json!({"approve": true, "inputs": inputs})),
                )
                .await;
            if status == reqwest::StatusCode::ACCEPTED {
                return;
            }
            // 409 until the step waits.
            assert_eq!(status, reqwest::StatusCode::CONFLICT, "{body}");
            assert!(Instant::now() < deadline, "{id}: {step} never waited");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new token named `name` with `role`, made with the admin token:
    /// its JSON (`id`, `token`, ...).
    pub async fn mint(&self, name: &str, role: &str) -> serde_json::Value {
        let (status, body) = self
            .call(
                Some(&self.admin_token),
                reqwest::Method::POST,
                "/api/tokens",
                Some(serde_json::json!({"name": name, "role": role})),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
        body
    }

    /// Submits `workflow` (as `w.toml`, with `params`) with `token`, and
    /// waits a minute at most for the run to end.
    pub async fn run_as(&self, token: &str, workflow: &str, params: serde_json::Value) -> RunView {
        let (status, run) = self
            .call(
                Some(token),
                reqwest::Method::POST,
                "/api/runs",
                Some(serde_json::json!({"workflow": workflow, "file": "w.toml", "params": params})),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{run}");
        self.wait(run["id"].as_str().unwrap(), Duration::from_secs(60))
            .await
    }

    /// One API call with `token`; the status and the JSON body (`null` if none).
    pub async fn call(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn store(&self) -> weft_store_redis::RedisRunStore {
        weft_store_redis::RedisRunStore::connect(weft_store_redis::Options {
            url: self.redis_url.clone(),
            prefix: self.prefix.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let serves = self.serve.iter_mut().chain(self.more_serves.iter_mut());
        for c in self.workers.iter_mut().chain(serves) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The step `id` of a run view.
pub fn step<'a>(view: &'a RunView, id: &str) -> &'a StepView {
    view.steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id} in {view:?}"))
}

/// What a run that did not finish was waiting on: its unfinished tasks (at
/// most 20) with their attempts, for the message of a failed test.
fn unfinished(view: &RunView) -> String {
    tasks_where(view, |t| {
        !matches!(
            t.status.as_str(),
            "succeeded" | "failed" | "skipped" | "cancelled"
        )
    })
}

/// A run's status and its tasks that `keep` picks (at most 20), each with
/// its attempts (worker, times, kind of failure, reason, executions), for
/// the message of a failed test.
pub fn tasks_where(view: &RunView, keep: impl Fn(&TaskView) -> bool) -> String {
    let mut lines = vec![format!("run status {}", view.run.status)];
    let picked = view.steps.iter().flat_map(|step| {
        step.tasks
            .iter()
            .filter(|t| keep(t))
            .map(move |t| (step, t))
    });
    for (step, task) in picked.take(20) {
        let attempts: Vec<String> = task
            .attempts
            .iter()
            .map(|a| {
                format!(
                    "#{} worker {:?} queued {} started {:?} finished {:?} error {:?} {:?} ({} executions)",
                    a.number,
                    a.worker,
                    a.queued_at,
                    a.started_at,
                    a.finished_at,
                    a.error_kind,
                    a.error,
                    a.executions.len().max(1)
                )
            })
            .collect();
        lines.push(format!(
            "{} {} (step {}; reason {:?}): {}",
            task.id,
            task.status,
            step.status,
            step.reason,
            attempts.join("; ")
        ));
    }
    lines.join("\n")
}
