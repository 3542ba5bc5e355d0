"""How weft's distributed mode scales with workers and with servers (see bench/scale).

Workers: one `weft serve` and 2, 5 or 10 `weft worker --concurrency 2`, one
fan-out of 2,000 steps that each sleep 50 ms (workers are the bottleneck, as
they should be): steps per second, against the ideal (slots / 50 ms), and how
busy the machine's CPUs were.

Servers: 1, 2 or 3 `weft serve` sharing the runs by lease, 5 workers, six
runs of 500 no-op steps submitted round-robin to the servers at once: steps
per second over all six, from the first run's creation to the last one's end.

Many workers (`--many N`): N workers of concurrency 1 (separate processes
speaking the real protocol) and one server, a fan-out of 2,000 steps of
50 ms: whether the server, RabbitMQ and Redis keep up with that many takers.

Cluster: the servers' load (six runs of 500 no-op steps, 5 workers) and a
chain of 100 no-op steps (one worker: the cost of one step, end to end) on
one server over the single RabbitMQ and Redis, then on three servers over a
three-node RabbitMQ cluster (private nodes) and a Redis Cluster of three
primaries with a replica each (scripts/redis-cluster, ports 17501-17506).

Everything runs on the local RabbitMQ and Redis under a prefix of its own.
Figures are medians of `--reps` turns.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
LIMIT_S = 300  # a measurement that takes longer is reported as stuck
REPO = os.path.dirname(HERE)


def fan_out_toml(name, n, run):
    items = ", ".join(str(i) for i in range(n))
    return f"[workflow]\nname = \"{name}\"\n\n[steps.shard]\nfor-each = [{items}]\nrun = \"{run}\"\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_busy():
    """(busy, total) jiffies of all CPUs so far."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def chain_toml(name, n, run):
    text = f"[workflow]\nname = \"{name}\"\n"
    for i in range(n):
        text += f"\n[steps.s{i}]\nrun = \"{run}\"\n"
        if i:
            text += f"needs = [\"s{i - 1}\"]\n"
    return text


class RabbitCluster:
    """Private RabbitMQ nodes joined into one cluster (as tests/e2e/rabbit.rs)."""

    def __init__(self, n):
        self.nodes, self.dirs = [], []
        for i in range(n):
            port, dist = free_port(), free_port()
            node = f"weft-bench-{os.getpid()}-{port}@localhost"
            # Its own directory, not under `workdir` (root's, mode 0700): the
            # server drops to the rabbitmq user, who must reach its files.
            base = tempfile.mkdtemp(prefix=f"weft-bench-rabbit-{port}-")
            self.dirs.append(base)
            for sub in ("mnesia", "log"):
                os.makedirs(os.path.join(base, sub))
            with open(os.path.join(base, "plugins"), "w") as f:
                f.write("[].\n")
            with open(os.path.join(base, "rabbitmq.conf"), "w") as f:
                f.write(f"listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n")
            subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", base], check=True)
            env = dict(os.environ, RABBITMQ_NODENAME=node, RABBITMQ_NODE_PORT=str(port),
                       RABBITMQ_DIST_PORT=str(dist), RABBITMQ_MNESIA_BASE=os.path.join(base, "mnesia"),
                       RABBITMQ_LOG_BASE=os.path.join(base, "log"), RABBITMQ_LOGS="-",
                       RABBITMQ_CONFIG_FILE=os.path.join(base, "rabbitmq.conf"),
                       RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(base, "plugins"),
                       RABBITMQ_FEATURE_FLAGS_FILE=os.path.join(base, "feature_flags"))
            proc = subprocess.Popen(["rabbitmq-server"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            self.nodes.append((node, port, proc))
        for _, port, _ in self.nodes:
            wait_port(port, 90)
        seed = self.nodes[0][0]
        for node, _, _ in self.nodes[1:]:
            for args in (["stop_app"], ["join_cluster", seed], ["start_app"]):
                subprocess.run(["rabbitmqctl", "-q", "-n", node] + args, check=True,
                               stdout=subprocess.DEVNULL)

    def urls(self):
        return [f"amqp://guest:guest@127.0.0.1:{port}/%2f" for _, port, _ in self.nodes]

    def stop(self):
        for node, _, proc in self.nodes:
            subprocess.run(["rabbitmqctl", "-n", node, "stop"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            proc.wait(timeout=60)
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


REDIS_CLUSTER_PORTS = [17501 + i for i in range(6)]


def start_redis_cluster():
    subprocess.run(["sh", os.path.join(REPO, "scripts", "redis-cluster"), "/tmp/weft-bench-redis-cluster"]
                   + [str(p) for p in REDIS_CLUSTER_PORTS], check=True)


def stop_redis_cluster():
    for p in REDIS_CLUSTER_PORTS:
        subprocess.run(["redis-cli", "-p", str(p), "shutdown", "nosave"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    shutil.rmtree("/tmp/weft-bench-redis-cluster", ignore_errors=True)


def wait_port(port, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    sys.exit(f"nothing listens on 127.0.0.1:{port} after {limit} s")


class Stack:
    """`servers` × `weft serve` and `workers` × `weft worker` on one prefix:
    on the local RabbitMQ and Redis, or on `amqp` nodes and a Redis Cluster's
    `redis` nodes."""

    def __init__(self, binary, workdir, servers, workers, concurrency, amqp=None, redis=None):
        self.binary = binary
        self.prefix = f"scale-{os.getpid()}-{servers}-{workers}-{concurrency}-{int(time.time())}"
        self.workdir = os.path.join(workdir, self.prefix)
        os.makedirs(self.workdir)
        self.config = os.path.join(self.workdir, "weft.toml")
        amqp = amqp or ["amqp://guest:guest@127.0.0.1:5672/%2f"]
        broker = f"url = \"{amqp[0]}\"\n"
        if len(amqp) > 1:
            broker += "urls = [" + ", ".join(f"\"{u}\"" for u in amqp[1:]) + "]\n"
        store = "url = \"redis://127.0.0.1:6379/\"\n"
        if redis:
            store = (f"url = \"{redis[0]}\"\ncluster = true\nurls = ["
                     + ", ".join(f"\"{u}\"" for u in redis[1:]) + "]\n")
        with open(self.config, "w") as f:
            f.write(
                f"[broker]\n{broker}prefix = \"{self.prefix}\"\n"
                "expire-after-ms = 600000\n\n"
                f"[redis]\n{store}prefix = \"{self.prefix}\"\nexpire-after-secs = 1800\n\n"
                "[orchestrator]\nlease-ttl-ms = 5000\n\n"
                "[server]\nlisten = \"127.0.0.1:0\"\n\n"
                f"[worker]\nwork-dir = \"{os.path.join(self.workdir, 'work')}\"\n\n"
                "[worker-http]\nlisten = \"127.0.0.1:0\"\n"
            )
        self.logs = open(os.path.join(self.workdir, "weft.log"), "w")
        self.env = dict(os.environ, WEFT_LOG="warn")
        self.serves, self.urls, self.token = [], [], None
        for _ in range(servers):
            port = free_port()
            serve = subprocess.Popen(
                [binary, "--config", self.config, "serve", "--listen", f"127.0.0.1:{port}"],
                stdout=subprocess.PIPE, stderr=self.logs, env=self.env, text=True,
            )
            self.serves.append(serve)
            self.urls.append(f"http://127.0.0.1:{port}")
            if self.token is None:
                # The first server makes the admin token and prints it.
                for line in serve.stdout:
                    word = next((w for w in line.split() if w.startswith("weft_")), None)
                    if word:
                        self.token = word
                        break
                if not self.token:
                    sys.exit(f"weft serve printed no admin token (see {self.logs.name})")
            self.wait_ready(self.urls[-1])
        self.workers = [
            subprocess.Popen(
                [binary, "--config", self.config, "worker", "--name", f"{self.prefix}-w{i}",
                 "--concurrency", str(concurrency)],
                stdout=self.logs, stderr=self.logs, env=self.env,
            )
            for i in range(workers)
        ]
        self.wait_workers(workers)

    def api(self, url, method, path, body=None):
        request = urllib.request.Request(
            url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read() or b"null")

    def wait_ready(self, url):
        for _ in range(300):
            try:
                self.api(url, "GET", "/api/runs?limit=1")
                return
            except OSError:
                time.sleep(0.1)
        sys.exit(f"weft serve at {url} did not answer")

    def wait_workers(self, n):
        for _ in range(600):
            workers = self.api(self.urls[0], "GET", "/api/workers")
            mine = [w for w in workers if w.get("name", "").startswith(self.prefix)]
            if len(mine) >= n:
                return
            time.sleep(0.1)
        sys.exit(f"only {len(mine)} of {n} workers came up (see {self.logs.name})")

    def run_all(self, texts):
        """Submits every text (round-robin over the servers) at once; returns
        seconds from the first creation to the last end, as recorded, and the
        share of the machine's CPU time that was busy meanwhile."""
        busy0, total0 = cpu_busy()
        ids = []
        for i, text in enumerate(texts):
            url = self.urls[i % len(self.urls)]
            ids.append((url, self.api(url, "POST", "/api/runs", {"workflow": text, "file": f"r{i}.toml"})["id"]))
        ends = {}
        deadline = time.monotonic() + LIMIT_S
        while len(ends) < len(ids):
            if time.monotonic() > deadline:
                sys.exit(f"{len(ids) - len(ends)} of {len(ids)} runs did not finish within {LIMIT_S} s "
                         f"(prefix {self.prefix}; see {self.logs.name})")
            for url, run_id in ids:
                if run_id in ends:
                    continue
                found = self.api(url, "GET", f"/api/runs?prefix={run_id}&limit=1")
                summary = found[0] if found else {}
                if summary.get("finished_at"):
                    if summary["status"] != "succeeded":
                        sys.exit(f"run {run_id} ended {summary['status']}: {summary.get('summary')}")
                    ends[run_id] = (summary["created_at"], summary["finished_at"])
            time.sleep(0.05)
        busy1, total1 = cpu_busy()
        span = (max(e for _, e in ends.values()) - min(c for c, _ in ends.values())) / 1e3
        return span, (busy1 - busy0) / max(1, total1 - total0)

    def stop(self):
        for p in self.workers + self.serves:
            p.terminate()
        for p in self.workers + self.serves:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weft", default=os.path.join(REPO, "target", "release", "weft"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", default="workers,servers", help="comma-separated: workers, servers, cluster")
    parser.add_argument("--many", type=int, default=0, help="also N workers of concurrency 1")
    args = parser.parse_args()
    only = set(args.only.split(","))
    workdir = tempfile.mkdtemp(prefix="weft-scale-")
    print(f"weft {args.weft}; {os.cpu_count()} CPUs; medians of {args.reps} turns", flush=True)
    sleepy = fan_out_toml("scale-sleepy", 2000, "sleep 0.05")
    rows = []

    def measure(label, servers, workers, concurrency, texts, steps, ideal=None, amqp=None, redis=None):
        stack = Stack(args.weft, workdir, servers, workers, concurrency, amqp, redis)
        try:
            turns = [stack.run_all(texts) for _ in range(args.reps)]
        finally:
            stack.stop()
        span = statistics.median(t[0] for t in turns)
        busy = statistics.median(t[1] for t in turns)
        rate = steps / span
        extra = f"   {rate / ideal:.0%} of ideal ({ideal:.0f}/s)" if ideal else ""
        print(f"  {label:<44} {rate:>8.1f} steps/s   CPU {busy:.0%} busy{extra}", flush=True)
        rows.append((label, rate))
        return rate

    try:
        if "workers" in only:
            print("\nworkers: 1 server, workers of concurrency 2, fan-out of 2,000 x sleep 0.05")
            base = None
            for workers in (2, 5, 10):
                rate = measure(f"{workers} workers", 1, workers, 2, [sleepy], 2000, ideal=workers * 2 / 0.05)
                base = base or rate
                if workers != 2:
                    print(f"  {'':<44} {rate / base:.2f}x the 2 workers' rate")
        if "servers" in only:
            print("\nservers: 5 workers of concurrency 2, 6 runs x 500 no-op steps, submitted round-robin")
            noop = [fan_out_toml(f"scale-noop-{i}", 500, "true") for i in range(6)]
            base = None
            for servers in (1, 2, 3):
                rate = measure(f"{servers} server(s)", servers, 5, 2, noop, 3000)
                base = base or rate
                if servers != 1:
                    print(f"  {'':<44} {rate / base:.2f}x one server's rate")
        if "cluster" in only:
            print("\ncluster: 1 server on one RabbitMQ and Redis against 3 servers on a 3-node RabbitMQ"
                  " cluster and a 3+3 Redis Cluster")
            noop = [fan_out_toml(f"scale-noop-{i}", 500, "true") for i in range(6)]
            chain = [chain_toml("scale-chain", 100, "true")]
            single = measure("single: 1 server, 6 x 500 no-op, 5 workers", 1, 5, 2, noop, 3000)
            single_chain = measure("single: chain of 100, 1 worker", 1, 1, 1, chain, 100)
            rabbits = RabbitCluster(3)
            try:
                start_redis_cluster()
                nodes = [f"redis://127.0.0.1:{p}/" for p in REDIS_CLUSTER_PORTS]
                spread = measure("cluster: 3 servers, 6 x 500 no-op, 5 workers", 3, 5, 2, noop, 3000,
                                 amqp=rabbits.urls(), redis=nodes)
                print(f"  {'':<44} {spread / single:.2f}x the single rate")
                chained = measure("cluster: chain of 100, 1 worker", 1, 1, 1, chain, 100,
                                  amqp=rabbits.urls(), redis=nodes)
                print(f"  {'':<44} {1000 / chained:.2f} ms a step, against {1000 / single_chain:.2f}"
                      f" single: {single_chain / chained:.2f}x")
            finally:
                rabbits.stop()
                stop_redis_cluster()
        if args.many:
            print(f"\nmany: 1 server, {args.many} workers of concurrency 1, fan-out of 2,000 x sleep 0.05")
            measure(f"{args.many} workers", 1, args.many, 1, [sleepy], 2000, ideal=args.many / 0.05)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
