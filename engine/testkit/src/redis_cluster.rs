//! A Redis Cluster for tests: three primaries with a replica each, on
//! fixed local ports, started on first use by whichever test asks first
//! (under a file lock) and left running for the rest, as the shared Redis
//! on 6379 is. Tests share it as they share that one: each under its own
//! prefix. A test that kills nodes starts a cluster of its own
//! ([`RedisCluster::start_private`]) on other ports.

use std::process::{Command, Stdio};

/// Client ports of the shared cluster; each node's cluster bus is the
/// port + 1000. Outside the 20000–32000 range the other private servers
/// of the tests take ports from, and below the kernel's ephemeral ports.
const SHARED_PORTS: [u16; 6] = [17101, 17102, 17103, 17104, 17105, 17106];

/// Starts the nodes (unless the cluster answers already), makes the
/// cluster, and waits until every node sees it whole. A replica stands in
/// for its primary however long ago it last heard from it (validity factor
/// 0): by default a replica that reads its link as stale refuses, and a
/// test's young cluster would then never fail over. Replicas sync at once
/// (no diskless delay), and the start waits until they have.
const START: &str = r#"
set -eu
base=$1; shift
ok() {
  for p in "$@"; do
    redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok' || return 1
  done
}
if ok "$@"; then exit 0; fi
for p in "$@"; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
rm -rf "$base"
for p in "$@"; do
  mkdir -p "$base/$p"
  redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
    --cluster-port $((p + 1000)) --cluster-node-timeout 2000 \
    --cluster-replica-validity-factor 0 --repl-diskless-sync-delay 0 \
    --cluster-config-file "$base/$p/nodes.conf" --dir "$base/$p" \
    --save '' --appendonly no --daemonize yes --logfile "$base/$p/log"
done
for p in "$@"; do
  n=0
  until redis-cli -p "$p" ping >/dev/null 2>&1; do
    n=$((n + 1)); [ $n -lt 100 ] || { echo "redis on $p did not start" >&2; exit 1; }
    sleep 0.1
  done
done
nodes=""
for p in "$@"; do nodes="$nodes 127.0.0.1:$p"; done
redis-cli --cluster create $nodes --cluster-replicas 1 --cluster-yes >/dev/null
n=0
until ok "$@"; do
  n=$((n + 1)); [ $n -lt 300 ] || { echo "the cluster never became ok" >&2; exit 1; }
  sleep 0.1
done
# Every replica holds its primary's data (a failover before the first
# sync would lose everything, which no client can help).
synced() {
  for p in "$@"; do
    info=$(redis-cli -p "$p" info replication 2>/dev/null)
    case "$info" in
      *role:slave*) echo "$info" | grep -q 'master_link_status:up' || return 1 ;;
      *) echo "$info" | grep -q 'wait_bgsave\|send_bulk' && return 1 ;;
    esac
  done
  return 0
}
n=0
until synced "$@"; do
  n=$((n + 1)); [ $n -lt 300 ] || { echo "the replicas never synced" >&2; exit 1; }
  sleep 0.1
done
"#;

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
        // `flock -o`: the lock is held by flock while the script runs, and
        // not passed to it, so the daemonised servers do not keep it.
        let said = tempfile::NamedTempFile::new().expect("a temporary file");
        let status = Command::new("flock")
            .args(["-o", lock, "sh", "-c", START, "start"])
            .arg(&self.base)
            .args(self.ports.iter().map(u16::to_string))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(said.reopen().expect("reopening a temporary file"))
            .status()
            .expect("running flock and sh to start a Redis Cluster");
        assert!(
            status.success(),
            "starting the Redis Cluster on {:?}: {}",
            self.ports,
            std::fs::read_to_string(said.path()).unwrap_or_default()
        );
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
