"""No-op Celery tasks for the side-by-side comparison with weft (see compare.py)."""
import os

from celery import Celery

PREFIX = os.environ.get("CELERY_BENCH_PREFIX", "celery-bench")
app = Celery(
    "weft_compare",
    broker=os.environ.get("CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//"),
    backend=os.environ.get("CELERY_BACKEND", "redis://127.0.0.1:6379/0"),
)
# The durable settings weft uses: persistent messages, late acks (after the
# result is stored), one message prefetched per worker process.
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=PREFIX,
    task_default_delivery_mode="persistent",
    result_expires=600,
    broker_connection_retry_on_startup=True,
)


@app.task
def noop(*_args, **_kwargs):
    return None
