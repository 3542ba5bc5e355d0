"""Where a step's time goes on weft's full stack (see docs/performance.md).

Starts `weft serve` and one `weft worker --concurrency 2` on the local
RabbitMQ and Redis (as bench/compare does), then:

- runs a chain of 100 `true` steps and prints, from the run's own record,
  the median time from a step's dispatch to its start being heard, from
  its start to its end being heard, and from one step's end to the next
  one's dispatch;
- runs a fan-out of 2,000 `true` steps and prints the CPU each process
  spent per step (the worker counting its steps' processes, the server,
  RabbitMQ, Redis) and how idle the machine was;
- with `--perf DIR`, records `perf record -g` of the worker and the server
  during the fan-out into DIR (read with `perf report -i DIR/worker.perf`).

    python3 bench/profile.py [--weft target/release/weft] [--perf DIR]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402


def machine_cpu():
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]


def process_cpu(pid):
    """Seconds of CPU of `pid` and of its reaped children."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def pids_of(name):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if name in open(f"/proc/{entry}/cmdline").read():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def chain_breakdown(weft, n=100):
    run = weft.api("POST", "/api/runs", {"workflow": compare.chain_toml(n), "file": "chain.toml"})
    while True:
        found = weft.api("GET", f"/api/runs?prefix={run['id']}&limit=1")
        if found and found[0].get("finished_at"):
            break
        time.sleep(0.05)
    view = weft.api("GET", f"/api/runs/{run['id']}")
    attempts = [s["tasks"][0]["attempts"][0] for s in view["steps"]]
    per_step = (view["finished_at"] - view["created_at"]) / n
    print(f"\nchain of {n}: {per_step:.2f} ms per step (medians below, ms)")
    parts = {
        "dispatched -> start heard": [a["started_at"] - a["queued_at"] for a in attempts],
        "start heard -> end heard": [a["finished_at"] - a["started_at"] for a in attempts],
        "end heard -> next dispatched": [
            attempts[i + 1]["queued_at"] - attempts[i]["finished_at"] for i in range(n - 1)
        ],
    }
    for label, values in parts.items():
        print(f"  {label:<32} {statistics.median(values):6.1f}")


def fan_out_cpu(weft, perf_dir, n=2000):
    processes = {
        "worker (with its steps)": [weft.worker.pid],
        "server": [weft.serve.pid],
        "RabbitMQ": pids_of("beam.smp"),
        "Redis": pids_of("redis-server"),
    }
    recorders = []
    if perf_dir:
        os.makedirs(perf_dir, exist_ok=True)
        for name, pid in (("worker", weft.worker.pid), ("server", weft.serve.pid)):
            recorders.append(subprocess.Popen(
                ["perf", "record", "-F", "999", "-g", "-o", os.path.join(perf_dir, f"{name}.perf"), "-p", str(pid)],
                stderr=subprocess.DEVNULL))
        time.sleep(1)
    before = {k: sum(process_cpu(p) for p in v) for k, v in processes.items()}
    total0, idle0 = machine_cpu()
    took = weft.run(compare.fan_out_toml(n), "fan-out")
    total1, idle1 = machine_cpu()
    after = {k: sum(process_cpu(p) for p in v) for k, v in processes.items()}
    for r in recorders:
        r.send_signal(2)
        r.wait()
    steps = n + 1
    print(f"\nfan-out of {n} + join: {steps / took:.0f} steps/s; machine idle {100 * (idle1 - idle0) / (total1 - total0):.0f}%")
    print("  CPU per step, ms:")
    for name in processes:
        print(f"  {name:<32} {1e3 * (after[name] - before[name]) / steps:6.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weft", default=os.path.join(compare.REPO, "target", "release", "weft"))
    parser.add_argument("--perf", help="record perf profiles of the worker and server into this directory")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="weft-profile-")
    weft = compare.Weft(args.weft, workdir)
    try:
        weft.run(compare.chain_toml(5), "warm-up")
        chain_breakdown(weft)
        fan_out_cpu(weft, args.perf)
    finally:
        weft.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
