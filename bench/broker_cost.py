"""What RabbitMQ's own CPU pays per message, by how the message is sent
and settled: the broker's share of a distributed step (see "What is left,
and why" in docs/performance.md).

Publishes N 600-byte messages (default 3,000) to a durable classic queue,
one at a time, and reads the broker's CPU (every `beam` process's user and
system time, from /proc) before and after:
- persistent, each confirm waited for before the next publish (as a
  worker's report, or a chain's job, goes);
- persistent, confirms not waited for (publishes pipelined);
- transient, each confirm waited for.
Then consumes N persistent messages with prefetch 4, acking each one, and
again acking every fourth with `multiple`. Each case runs twice, in turns.
The broker: $WEFT_BENCH_AMQP_URL, by default the local one; it must run on
this machine (its CPU is read from /proc). Run it with bench/broker_cost
(which installs pika)."""

import os
import subprocess
import sys
import time

import pika

URL = os.environ.get("WEFT_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
BODY = b"x" * 600


def broker_cpu():
    """Seconds of CPU of every `beam` process on this machine."""
    total = 0
    for pid in subprocess.check_output(["pgrep", "-f", "beam"]).split():
        fields = open(f"/proc/{int(pid)}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def publishing(channel, queue, n, mode):
    """Broker CPU per message (ms) of publishing `n` messages of `mode`."""
    channel.queue_declare(queue, durable=True)
    before = broker_cpu()
    for _ in range(n):
        channel.basic_publish("", queue, BODY, properties=pika.BasicProperties(delivery_mode=mode))
    # A synchronous request after the publishes: they have all arrived.
    channel.queue_declare(queue, durable=True)
    time.sleep(0.3)
    spent = broker_cpu() - before
    channel.queue_delete(queue)
    return spent * 1e3 / n


def consuming(publisher, consumer, queue, n, every):
    """Broker CPU per message (ms) of delivering and acking `n` messages,
    acking every `every`th one with `multiple` (1: each on its own)."""
    publisher.queue_declare(queue, durable=True)
    for _ in range(n):
        publisher.basic_publish("", queue, BODY, properties=pika.BasicProperties(delivery_mode=2))
    before = broker_cpu()
    got = 0
    for method, _, _ in consumer.consume(queue, inactivity_timeout=10):
        if method is None:
            sys.exit(f"only {got} of {n} messages came back")
        got += 1
        if got % every == 0 or got == n:
            consumer.basic_ack(method.delivery_tag, multiple=every > 1)
        if got == n:
            break
    consumer.cancel()
    spent = broker_cpu() - before
    publisher.queue_delete(queue)
    return spent * 1e3 / n


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    params = pika.URLParameters(URL)
    publisher = pika.BlockingConnection(params)
    confirmed = publisher.channel()
    confirmed.confirm_delivery()
    unconfirmed = publisher.channel()
    consumer_connection = pika.BlockingConnection(params)
    consumer = consumer_connection.channel()
    consumer.basic_qos(prefetch_count=4)
    queue = f"weft-bench-broker-cost-{os.getpid()}"
    print(f"RabbitMQ CPU per message, ms ({n} messages a case, two turns)")
    for turn in (1, 2):
        cases = [
            ("persistent, confirm waited for", publishing(confirmed, queue, n, 2)),
            ("persistent, confirms pipelined", publishing(unconfirmed, queue, n, 2)),
            ("transient, confirm waited for", publishing(confirmed, queue, n, 1)),
            ("delivered, each acked", consuming(confirmed, consumer, queue, n, 1)),
            ("delivered, every 4th acked with multiple", consuming(confirmed, consumer, queue, n, 4)),
        ]
        for name, ms in cases:
            print(f"  turn {turn}: {name:42s} {ms:.3f}")
    publisher.close()
    consumer_connection.close()


if __name__ == "__main__":
    main()
