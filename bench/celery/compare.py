"""Run the distributed benchmark's three shapes on Celery, the stack weft
replaces, against the same RabbitMQ and Redis:

    pip install 'celery[redis]==5.*'
    python bench/celery/compare.py

It starts a prefork worker (concurrency 2, acks_late) on its own queue,
times a chain of 200 no-op tasks, a group of 2,000 with a chord join, and
10 layers of 100 joined by chords, and prints figures comparable with
`cargo bench -p weft-orchestrator --bench distributed`.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = f"celery-bench-{os.getpid()}"
os.environ["CELERY_BENCH_PREFIX"] = PREFIX
sys.path.insert(0, HERE)

from celery import chain, chord, group  # noqa: E402

from tasks import app, noop  # noqa: E402


def timed(label, signature, steps, unit):
    start = time.perf_counter()
    signature.apply_async().get(timeout=600, disable_sync_subtasks=False)
    took = time.perf_counter() - start
    figure = took * 1e3 / steps if unit == "ms/step" else steps / took
    print(f"{label:<28} {took * 1e3:>9.1f} ms  {figure:>7.2f} {unit}", flush=True)


def main():
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-Q", PREFIX, "-c", "2", "-P", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
        cwd=HERE,
        env=os.environ.copy(),
    )
    try:
        noop.apply_async().get(timeout=120)  # the worker is up
        print(f"celery {__import__('celery').__version__}: RabbitMQ + Redis on 127.0.0.1, prefork concurrency 2, acks_late")
        timed("chain    200 steps", chain(*[noop.si() for _ in range(200)]), 200, "ms/step")
        timed("fan-out  2,000 + chord join", chord(group(noop.si() for _ in range(2000)), noop.si()), 2001, "steps/s")
        layers = [group(noop.si() for _ in range(100)) for _ in range(10)]
        timed("layers   10 x 100 (chords)", chain(*[chord(layer, noop.si()) for layer in layers]), 1010, "steps/s")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        app.connection().default_channel.queue_delete(PREFIX)


if __name__ == "__main__":
    main()
