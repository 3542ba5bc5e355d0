//! Private RabbitMQ nodes that a test may stop, start and kill (never the
//! shared one), alone or joined into a cluster.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PrivateRabbit {
    dir: tempfile::TempDir,
    pub port: u16,
    dist_port: u16,
    node: String,
    child: Option<Child>,
}

/// A free port below Linux's ephemeral range (32768+): the broker is down
/// for a while during a restart, and a port the kernel hands out for
/// `bind(0)` could meanwhile go to another test's listener.
pub fn free_port() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id().wrapping_mul(2_654_435_761);
    (0..1000u32)
        .map(|i| 20_000 + (seed.wrapping_add(i.wrapping_mul(7919)) % 12_000) as u16)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in 20000..32000")
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

impl PrivateRabbit {
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// `extra`: lines appended to the node's `rabbitmq.conf`.
    pub fn start_with(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (port, dist_port) = (free_port(), free_port());
        let node = format!("weft-test-{}-{port}@localhost", std::process::id());
        std::fs::create_dir_all(dir.path().join("mnesia")).unwrap();
        std::fs::create_dir_all(dir.path().join("log")).unwrap();
        std::fs::write(dir.path().join("plugins"), "[].\n").unwrap();
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n{extra}\n"),
        )
        .unwrap();
        // The server drops to the rabbitmq user: it must own its files.
        let chown = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success(), "chown for the private RabbitMQ failed");
        let mut rabbit = Self {
            dir,
            port,
            dist_port,
            node,
            child: None,
        };
        rabbit.start_again();
        rabbit
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// The node's Erlang name (`name@localhost`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// `rabbitmqctl -n NODE ARGS`; what it said, if it failed.
    fn try_ctl(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("rabbitmqctl")
            .args(["-q", "-n", &self.node])
            .args(args)
            .output()
            .expect("running rabbitmqctl");
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "rabbitmqctl {args:?} on {}: {}",
            self.node,
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Kills the node's Erlang VM with SIGKILL: no goodbye to its peers
    /// or clients, as when its machine dies.
    pub fn kill9(&mut self) {
        let pid_file = self
            .dir
            .path()
            .join("mnesia")
            .join(format!("{}.pid", self.node));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .expect("the node's pid file")
            .trim()
            .parse()
            .expect("a pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("killing the node");
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        let start = Instant::now();
        while port_open(self.port) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the node lives on"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn start_again(&mut self) {
        let d = self.dir.path();
        let child = Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_LOGS", "-")
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("plugins"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", d.join("feature_flags"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting rabbitmq-server");
        self.child = Some(child);
        let start = Instant::now();
        while !port_open(self.port) {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "the private RabbitMQ did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let _ = Command::new("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        let start = Instant::now();
        while port_open(self.port) && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Private nodes joined into one RabbitMQ cluster; the first is the seed
/// the others join.
pub struct PrivateRabbitCluster {
    pub nodes: Vec<PrivateRabbit>,
}

impl PrivateRabbitCluster {
    /// Starts `n` nodes and joins them. A node can die as it starts (a
    /// busy machine running other tests' brokers beside it), which is this
    /// harness's trouble, not the test's: the cluster is made again, at
    /// most three times.
    pub fn start(n: usize) -> Self {
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::try_start(n) {
                Ok(cluster) => return cluster,
                Err(e) if tries < 3 => eprintln!("forming a private RabbitMQ cluster again: {e}"),
                Err(e) => panic!("forming a private RabbitMQ cluster, three times: {e}"),
            }
        }
    }

    fn try_start(n: usize) -> Result<Self, String> {
        let mut nodes = Vec::new();
        for _ in 0..n {
            nodes.push(PrivateRabbit::start());
        }
        let seed = nodes[0].node().to_string();
        for node in &nodes[1..] {
            node.try_ctl(&["stop_app"])?;
            node.try_ctl(&["join_cluster", &seed])?;
            node.try_ctl(&["start_app"])?;
        }
        let cluster = Self { nodes };
        cluster.await_running(n);
        Ok(cluster)
    }

    /// Waits until a live node counts `n` running nodes in its cluster.
    pub fn await_running(&self, n: usize) {
        let start = Instant::now();
        loop {
            let live = self.nodes.iter().find(|node| node.child.is_some());
            let running = live.and_then(|node| {
                let out = Command::new("rabbitmqctl")
                    .args([
                        "-q",
                        "-n",
                        node.node(),
                        "cluster_status",
                        "--formatter",
                        "json",
                    ])
                    .output()
                    .ok()?;
                let status: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
                Some(status["running_nodes"].as_array()?.len())
            });
            if running == Some(n) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the cluster never had {n} running nodes (last seen: {running:?})"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Every node's URL, the seed's first.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(PrivateRabbit::url).collect()
    }
}
