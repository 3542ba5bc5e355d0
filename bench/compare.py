"""weft beside Celery and beside the process floor, in one run (see bench/compare).

Distributed: `weft serve` and one `weft worker --concurrency 2` on the local
RabbitMQ and Redis, against Celery (prefork, concurrency 2, acks_late, same
broker and Redis), for a chain of 200 no-op steps, a fan-out of 2,000 with a
join and 10 layers of 100; weft's steps are `run = "true"`, Celery's tasks a
Python no-op. The floor is `sh -c true` run one after another (chain) or
through `xargs -P2` (fan-outs).

Embedded: `weft run` of a 1,000-step fan-out and a 200-step chain against the
same floors, and a for-each over a 10,000-item parameter list against the same
list written in the file (time and peak memory).

Every shape is repeated (`--reps`), the systems taking turns, and the median
is printed with the ratios the issue asks about.

`--slots N` runs N steps at once everywhere instead of 2: weft's worker and
every `weft run` (`--concurrency N`), Celery (`-c N`) and the floor
(`xargs -PN`).
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
REPO = os.path.dirname(HERE)

CHAIN = 200
FAN_OUT = 2000
LAYERS, PER_LAYER = 10, 100
EMBEDDED_FAN_OUT = 1000
PARAM_ITEMS = 10000


def chain_toml(n):
    text = "[workflow]\nname = \"bench-chain\"\n\n"
    for i in range(n):
        text += f"[steps.s{i}]\nrun = \"true\"\n"
        if i:
            text += f"needs = [\"s{i - 1}\"]\n"
    return text


def fan_out_toml(n):
    items = ", ".join(str(i) for i in range(n))
    return (
        "[workflow]\nname = \"bench-fan-out\"\n\n"
        f"[steps.shard]\nfor-each = [{items}]\nrun = \"true\"\n\n"
        "[steps.join]\nneeds = [\"shard\"]\nrun = \"true\"\n"
    )


def layers_toml(layers, width):
    items = ", ".join(str(i) for i in range(width))
    text = "[workflow]\nname = \"bench-layers\"\n\n"
    for layer in range(layers):
        text += f"[steps.l{layer}]\nfor-each = [{items}]\nrun = \"true\"\n"
        if layer:
            text += f"needs = [\"l{layer - 1}\"]\n"
    return text


def for_each_toml(n, from_params):
    """A for-each over `n` items, from a list parameter or written in the step."""
    items = ", ".join(f"\"item-{i:05}\"" for i in range(n))
    params, source = (f"[params]\nitems = [{items}]\n\n", "\"{{ params.items }}\"") if from_params else ("", f"[{items}]")
    return f"[workflow]\nname = \"bench-for-each\"\n\n{params}[steps.each]\nfor-each = {source}\nrun = \"true\"\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(argv, **kw):
    """Wall seconds and peak memory (MiB) of one command."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, **kw)
    _, status, usage = os.wait4(child.pid, 0)
    took = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit(f"`{' '.join(argv)[:120]}` failed with {child.returncode}")
    return took, usage.ru_maxrss / 1024


def floor_sequential(n):
    return timed(["bash", "-c", f"for i in $(seq {n}); do sh -c true; done"])[0]


def floor_parallel(n, slots):
    return timed(["bash", "-c", f"seq {n} | xargs -P{slots} -I{{}} sh -c true"])[0]


class Weft:
    """`weft serve` and one worker on the local RabbitMQ and Redis."""

    def __init__(self, binary, workdir, broker=(), slots=2):
        self.binary = binary
        self.prefix = f"bench-{os.getpid()}"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.config = os.path.join(workdir, "weft.toml")
        with open(self.config, "w") as f:
            f.write(
                f"[broker]\nurl = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\nprefix = \"{self.prefix}\"\n"
                "expire-after-ms = 600000\n" + "".join(f"{line}\n" for line in broker) + "\n"
                f"[redis]\nurl = \"redis://127.0.0.1:6379/\"\nprefix = \"{self.prefix}\"\nexpire-after-secs = 1800\n\n"
                "[orchestrator]\nmax-tasks-per-step = 50000\nmax-tasks-per-run = 100000\n\n"
                f"[server]\nlisten = \"127.0.0.1:{port}\"\n\n"
                f"[worker]\nwork-dir = \"{os.path.join(workdir, 'work')}\"\n"
            )
        self.logs = open(os.path.join(workdir, "weft.log"), "w")
        env = dict(os.environ, WEFT_LOG="warn")
        self.serve = subprocess.Popen(
            [binary, "--config", self.config, "serve"], stdout=subprocess.PIPE, stderr=self.logs, env=env, text=True
        )
        self.token = None
        for line in self.serve.stdout:
            word = next((w for w in line.split() if w.startswith("weft_")), None)
            if word:
                self.token = word
                break
        if not self.token:
            sys.exit("weft serve printed no admin token (see weft.log)")
        self.worker = subprocess.Popen(
            [binary, "--config", self.config, "worker", "--concurrency", str(slots)],
            stdout=self.logs, stderr=self.logs, env=env,
        )
        self.wait_ready()

    def api(self, method, path, body=None):
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            return json.loads(answer.read() or b"null")

    def wait_ready(self):
        for _ in range(300):
            try:
                self.api("GET", "/api/runs?limit=1")
                return
            except OSError:
                time.sleep(0.1)
        sys.exit("weft serve did not answer")

    def run(self, text, name):
        """Seconds from the run's creation to its end, as the server recorded them."""
        run = self.api("POST", "/api/runs", {"workflow": text, "file": f"{name}.toml"})
        run_id = run["id"]
        while True:
            # The run's summary, not its whole view: building a 2,000-step
            # view every 20 ms would load the server being measured.
            found = self.api("GET", f"/api/runs?prefix={run_id}&limit=1")
            summary = found[0] if found else {}
            if summary.get("finished_at"):
                if summary["status"] != "succeeded":
                    sys.exit(f"weft run {run_id} ended {summary['status']}: {summary.get('summary')}")
                return (summary["finished_at"] - summary["created_at"]) / 1e3
            time.sleep(0.02)

    def server_peak_mib(self):
        with open(f"/proc/{self.serve.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        for p in (self.worker, self.serve):
            p.terminate()
        for p in (self.worker, self.serve):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


class Celery:
    """A prefork Celery worker, concurrency `slots`, on its own queue."""

    def __init__(self, slots=2):
        os.environ["CELERY_BENCH_PREFIX"] = f"celery-bench-{os.getpid()}"
        sys.path.insert(0, os.path.join(HERE, "celery"))
        import celery
        from tasks import app, noop

        self.celery, self.app, self.noop = celery, app, noop
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-Q", os.environ["CELERY_BENCH_PREFIX"],
             "-c", str(slots), "-P", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
            cwd=os.path.join(HERE, "celery"),
        )
        noop.apply_async().get(timeout=120)
        self.version = celery.__version__

    def timed(self, signature):
        start = time.perf_counter()
        signature.apply_async().get(timeout=900, disable_sync_subtasks=False)
        return time.perf_counter() - start

    def chain(self, n):
        return self.timed(self.celery.chain(*[self.noop.si() for _ in range(n)]))

    def fan_out(self, n):
        return self.timed(self.celery.chord(self.celery.group(self.noop.si() for _ in range(n)), self.noop.si()))

    def layers(self, layers, width):
        c = self.celery
        return self.timed(c.chain(*[c.chord(c.group(self.noop.si() for _ in range(width)), self.noop.si())
                                    for _ in range(layers)]))

    def stop(self):
        self.worker.terminate()
        self.worker.wait(timeout=30)
        self.app.connection().default_channel.queue_delete(os.environ["CELERY_BENCH_PREFIX"])


def median(xs):
    return statistics.median(xs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weft", default=os.path.join(REPO, "target", "release", "weft"))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", default="distributed,embedded,for-each",
                        help="comma-separated: distributed, embedded, for-each, for-each-50k")
    parser.add_argument("--no-celery", action="store_true")
    parser.add_argument("--broker", action="append", default=[], metavar="LINE",
                        help="a line added to weft's [broker] table, e.g. 'replicated-jobs = true'")
    parser.add_argument("--slots", type=int, default=2,
                        help="steps at once for weft, Celery and the xargs floor (default 2)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    workdir = tempfile.mkdtemp(prefix="weft-compare-")
    texts = {
        "chain": chain_toml(CHAIN),
        "fan-out": fan_out_toml(FAN_OUT),
        "layers": layers_toml(LAYERS, PER_LAYER),
        "embedded-fan-out": fan_out_toml(EMBEDDED_FAN_OUT).replace("[steps.join]\nneeds = [\"shard\"]\nrun = \"true\"\n", ""),
        "for-each-params": for_each_toml(PARAM_ITEMS, True),
        "for-each-literal": for_each_toml(PARAM_ITEMS, False),
    }
    files = {}
    for name, text in texts.items():
        files[name] = os.path.join(workdir, f"{name}.toml")
        with open(files[name], "w") as f:
            f.write(text)
    print(f"weft {args.weft}; {os.cpu_count()} CPUs; medians of {args.reps} turns", flush=True)
    figures = {}

    def note(key, value):
        figures.setdefault(key, []).append(value)

    def weft_run(data):
        """`weft run` on the embedded store in `data`, with the slots asked for."""
        return [args.weft, "run", "--plain", "--concurrency", str(args.slots), "--data-dir", data]

    weft = celery = None
    try:
        if "distributed" in only:
            weft = Weft(args.weft, workdir, args.broker, args.slots)
            weft.run(chain_toml(5), "warm-up")
            if not args.no_celery:
                celery = Celery(args.slots)
        for turn in range(args.reps):
            if "distributed" in only:
                note("d.weft.chain", weft.run(texts["chain"], "chain") / CHAIN)
                if celery:
                    note("d.celery.chain", celery.chain(CHAIN) / CHAIN)
                note("d.floor.chain", floor_sequential(CHAIN) / CHAIN)
                note("d.weft.fan-out", (FAN_OUT + 1) / weft.run(texts["fan-out"], "fan-out"))
                if celery:
                    note("d.celery.fan-out", (FAN_OUT + 1) / celery.fan_out(FAN_OUT))
                note("d.floor.fan-out", (FAN_OUT + 1) / floor_parallel(FAN_OUT + 1, args.slots))
                note("d.weft.layers", LAYERS * PER_LAYER / weft.run(texts["layers"], "layers"))
                if celery:
                    note("d.celery.layers", LAYERS * (PER_LAYER + 1) / celery.layers(LAYERS, PER_LAYER))
            if "embedded" in only:
                data = os.path.join(workdir, f"data-{turn}")
                run = weft_run(data)
                note("e.weft.fan-out", timed(run + [files["embedded-fan-out"]])[0])
                note("e.floor.fan-out", floor_parallel(EMBEDDED_FAN_OUT, args.slots))
                note("e.weft.chain", timed(run + [files["chain"]])[0] / CHAIN)
                note("e.floor.chain", floor_sequential(CHAIN) / CHAIN)
                shutil.rmtree(data, ignore_errors=True)
            if "for-each" in only:
                for kind in ("params", "literal"):
                    data = os.path.join(workdir, f"data-{kind}-{turn}")
                    took, peak = timed(weft_run(data) + [files[f"for-each-{kind}"]])
                    note(f"f.{kind}.time", took)
                    note(f"f.{kind}.peak", peak)
                    shutil.rmtree(data, ignore_errors=True)
        if "for-each-50k" in only:
            if weft is None:
                weft = Weft(args.weft, workdir, args.broker, args.slots)
            took = weft.run(for_each_toml(50000, True), "for-each-50k")
            figures["k.time"] = [took]
            figures["k.peak"] = [weft.server_peak_mib()]
    finally:
        if celery:
            celery.stop()
        if weft:
            weft.stop()

    m = {k: median(v) for k, v in figures.items()}

    def line(label, value, unit, ratio=None):
        extra = f"   {ratio}" if ratio else ""
        print(f"  {label:<44} {value:>10.2f} {unit}{extra}")

    if "d.weft.chain" in m:
        print(f"\ndistributed (weft serve + 1 worker, concurrency {args.slots}"
              f"{'; celery ' + celery.version if celery else ''})")
        c, fl = m["d.weft.chain"], m["d.floor.chain"]
        line("chain 200: weft", c * 1e3, "ms/step",
             f"{c / m['d.celery.chain']:.2f}x celery's time; {1e3 * (c - fl):.2f} ms/step above the floor"
             if "d.celery.chain" in m else f"{1e3 * (c - fl):.2f} ms/step above the floor")
        if "d.celery.chain" in m:
            line("chain 200: celery", m["d.celery.chain"] * 1e3, "ms/step")
        line("chain 200: floor (sh -c true in turn)", fl * 1e3, "ms/step")
        f, ff = m["d.weft.fan-out"], m["d.floor.fan-out"]
        line("fan-out 2,000 + join: weft", f, "steps/s",
             (f"{f / m['d.celery.fan-out']:.2f}x celery; " if "d.celery.fan-out" in m else "")
             + f"floor/weft {ff / f:.2f}")
        if "d.celery.fan-out" in m:
            line("fan-out 2,000 + join: celery", m["d.celery.fan-out"], "steps/s")
        line(f"fan-out 2,000 + join: floor (xargs -P{args.slots})", ff, "steps/s")
        lw = m["d.weft.layers"]
        line("layers 10 x 100: weft", lw, "steps/s",
             f"{lw / m['d.celery.layers']:.2f}x celery" if "d.celery.layers" in m else None)
        if "d.celery.layers" in m:
            line("layers 10 x 100: celery", m["d.celery.layers"], "steps/s")
    if "e.weft.fan-out" in m:
        print("\nembedded (weft run)")
        line("fan-out 1,000: weft run", m["e.weft.fan-out"], "s",
             f"{m['e.weft.fan-out'] / m['e.floor.fan-out']:.2f}x the floor")
        line(f"fan-out 1,000: floor (xargs -P{args.slots})", m["e.floor.fan-out"], "s")
        line("chain 200: weft run", m["e.weft.chain"] * 1e3, "ms/step",
             f"{1e3 * (m['e.weft.chain'] - m['e.floor.chain']):.2f} ms/step above the floor")
        line("chain 200: floor", m["e.floor.chain"] * 1e3, "ms/step")
    if "f.params.time" in m:
        print(f"\nfor-each over {PARAM_ITEMS:,} items (weft run)")
        line("from [params]", m["f.params.time"], "s",
             f"{m['f.params.time'] / m['f.literal.time']:.2f}x the literal list's time")
        line("written in the file", m["f.literal.time"], "s")
        line("from [params]: peak memory", m["f.params.peak"], "MiB",
             f"{m['f.params.peak'] / m['f.literal.peak']:.2f}x the literal list's")
        line("written in the file: peak memory", m["f.literal.peak"], "MiB")
    if "k.time" in m:
        print("\nfor-each over 50,000 items from [params] (weft serve + 1 worker)")
        line("run time", m["k.time"], "s")
        line("server peak memory (VmHWM)", m["k.peak"], "MiB")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
