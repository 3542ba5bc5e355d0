//! A Redis primary with one replica, watched by three Sentinels, for tests:
//! on fixed local ports, the shared one started on first use by whichever
//! test asks first (under a file lock) and left running, as the shared
//! Redis on 6379 is; a test that kills nodes starts its own
//! ([`RedisSentinel::start_private`]). The primary is named
//! [`MASTER`]; a failover takes about two seconds (down after one).

use std::process::Command;

/// The name the Sentinels watch the primary under.
pub const MASTER: &str = "weft";

/// Ports of the shared set: the primary, its replica, three Sentinels.
/// Outside the 20000–32000 range other private servers take ports from.
const SHARED_FIRST_PORT: u16 = 17111;

/// Starts the servers (unless the Sentinels already name a live primary),
/// waits until the replica has synced and each Sentinel knows the replica
/// and the two other Sentinels.
const START: &str = r#"
set -eu
base=$1; p=$2; r=$3; shift 3
ok() {
  for s in "$@"; do
    addr=$(redis-cli -p "$s" sentinel get-master-addr-by-name weft 2>/dev/null | tail -1)
    [ -n "$addr" ] && redis-cli -p "$addr" ping >/dev/null 2>&1 || return 1
  done
}
if ok "$@"; then exit 0; fi
for port in "$p" "$r" "$@"; do redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; done
rm -rf "$base"; mkdir -p "$base"
redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --dir "$base" --dbfilename "$p.rdb" --logfile "$base/$p.log" --repl-diskless-sync-delay 0 \
  --enable-debug-command local
redis-server --port "$r" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --dir "$base" --dbfilename "$r.rdb" --logfile "$base/$r.log" --repl-diskless-sync-delay 0 \
  --enable-debug-command local --replicaof 127.0.0.1 "$p"
n=0
until redis-cli -p "$r" info replication 2>/dev/null | grep -q 'master_link_status:up'; do
  n=$((n + 1)); [ $n -lt 300 ] || { echo "the replica never synced" >&2; exit 1; }
  sleep 0.1
done
for s in "$@"; do
  cat > "$base/sentinel-$s.conf" <<EOF
port $s
bind 127.0.0.1
daemonize yes
logfile $base/sentinel-$s.log
dir $base
sentinel monitor weft 127.0.0.1 $p 2
sentinel down-after-milliseconds weft 1000
sentinel failover-timeout weft 3000
sentinel parallel-syncs weft 1
EOF
  redis-server "$base/sentinel-$s.conf" --sentinel
done
known() {
  for s in "$@"; do
    info=$(redis-cli -p "$s" sentinel master weft 2>/dev/null | tr '\n' ' ')
    echo "$info" | grep -q 'num-slaves 1 ' || return 1
    echo "$info" | grep -q "num-other-sentinels $(( $# - 1 )) " || return 1
  done
}
n=0
until known "$@"; do
  n=$((n + 1)); [ $n -lt 300 ] || { echo "the Sentinels never found each other" >&2; exit 1; }
  sleep 0.1
done
"#;

/// A primary, its replica and three Sentinels, by port.
pub struct RedisSentinel {
    /// The primary at the start, then its replica.
    pub servers: [u16; 2],
    pub sentinels: [u16; 3],
    base: String,
    private: bool,
}

impl RedisSentinel {
    /// The shared set, started if it is not running.
    pub fn shared() -> Self {
        let set = Self::on(SHARED_FIRST_PORT, false);
        set.start("/tmp/weft-test-redis-sentinel.lock");
        set
    }

    /// A set of this test's own on the five ports from `first_port`,
    /// stopped when dropped.
    pub fn start_private(first_port: u16) -> Self {
        let set = Self::on(first_port, true);
        let lock = format!("{}.lock", set.base);
        set.start(&lock);
        set
    }

    fn on(p: u16, private: bool) -> Self {
        Self {
            servers: [p, p + 1],
            sentinels: [p + 2, p + 3, p + 4],
            base: format!("/tmp/weft-test-redis-sentinel-{p}"),
            private,
        }
    }

    fn start(&self, lock: &str) {
        let args: Vec<String> = std::iter::once(self.base.clone())
            .chain(
                self.servers
                    .iter()
                    .chain(&self.sentinels)
                    .map(u16::to_string),
            )
            .collect();
        let what = format!(
            "Redis with Sentinels on {:?} {:?}",
            self.servers, self.sentinels
        );
        crate::locked_script::run_locked(lock, START, &args, &what);
    }

    /// The Sentinels' URLs, for `[redis] url` and `urls`.
    pub fn urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect()
    }

    /// The port of the primary the first live Sentinel names.
    pub fn primary(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let out = Command::new("redis-cli")
                .args(["-p", &s.to_string()])
                .args(["sentinel", "get-master-addr-by-name", MASTER])
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .nth(1)?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Kills the server on `port` with SIGKILL, as when its machine dies.
    pub fn kill9(&self, port: u16) {
        crate::redis_cluster::kill9(port);
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        if !self.private {
            return;
        }
        for p in self.servers.iter().chain(&self.sentinels) {
            let _ = Command::new("redis-cli")
                .args(["-p", &p.to_string(), "shutdown", "nosave"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
