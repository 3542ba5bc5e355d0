//! A Redis Cluster for tests: three primaries with a replica each, on
//! fixed local ports, started on first use by whichever test asks first
//! (under a file lock) and left running for the rest, as the shared Redis
//! on 6379 is. Tests share it as they share that one: each under its own
//! prefix. A test that kills nodes starts a cluster of its own
//! ([`RedisCluster::start_private`]) on other ports.

use std::process::Command;

/// Client ports of the shared cluster; each node's cluster bus is the
/// port + 1000. Outside the 20000–32000 range the other private servers
/// of the tests take ports from, and below the kernel's ephemeral ports.
const SHARED_PORTS: [u16; 6] = [17101, 17102, 17103, 17104, 17105, 17106];

/// Starts the nodes (unless the cluster answers already), makes the
/// cluster, and waits until every node sees it whole and every replica
/// has synced: `scripts/redis-cluster`, shared with `bench/scale`.
const START: &str = include_str!("../../../scripts/redis-cluster");

/// A Redis Cluster's nodes, by client port.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    base: String,
    private: bool,
}

impl RedisCluster {
    /// The shared test cluster, started if it is not running.
    pub fn shared() -> Self {
        let cluster = Self {
            ports: SHARED_PORTS.to_vec(),
            base: "/tmp/weft-test-redis-cluster".into(),
            private: false,
        };
        cluster.start("/tmp/weft-test-redis-cluster.lock");
        cluster
    }

    /// A cluster of this test's own on the six ports from `first_port`
    /// (buses at + 1000), stopped when dropped.
    pub fn start_private(first_port: u16) -> Self {
        let ports: Vec<u16> = (first_port..first_port + 6).collect();
        let cluster = Self {
            base: format!("/tmp/weft-test-redis-cluster-{first_port}"),
            ports,
            private: true,
        };
        let lock = format!("{}.lock", cluster.base);
        cluster.start(&lock);
        cluster
    }

    fn start(&self, lock: &str) {
        let args: Vec<String> = std::iter::once(self.base.clone())
            .chain(self.ports.iter().map(u16::to_string))
            .collect();
        let what = format!("the Redis Cluster on {:?}", self.ports);
        crate::locked_script::run_locked(lock, START, &args, &what);
    }

    /// Every node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect()
    }

    /// The ports of the nodes that are primaries now.
    pub fn primaries(&self) -> Vec<u16> {
        self.ports
            .iter()
            .copied()
            .filter(|p| {
                Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "role"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).starts_with("master"))
            })
            .collect()
    }

    /// Kills node `port` with SIGKILL, as when its machine dies.
    pub fn kill9(&self, port: u16) {
        kill9(port);
    }
}

/// Kills the Redis on `port` with SIGKILL.
pub(crate) fn kill9(port: u16) {
    let pid = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "info", "server"])
        .output()
        .expect("redis-cli");
    let pid = String::from_utf8_lossy(&pid.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .map(|p| p.trim().to_string())
        .expect("the node's process id");
    let killed = Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill");
    assert!(killed.success(), "killing redis on {port}");
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        if !self.private {
            return;
        }
        for p in &self.ports {
            let _ = Command::new("redis-cli")
                .args(["-p", &p.to_string(), "shutdown", "nosave"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
