"""One RabbitMQ hop, as a chain step's job takes it: a persistent message
published without waiting for its confirm, to a consumer of prefetch 1 on
another connection; the time from the publish to its delivery, median of N
(default 300), through a classic queue and through a quorum queue, two
rounds each in turns. The broker: $WEFT_BENCH_AMQP_URL, by default the
local one. Run it with bench/queue_hop (which installs pika)."""

import os
import statistics
import sys
import time

import pika

URL = os.environ.get("WEFT_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    params = pika.URLParameters(URL)
    publisher = pika.BlockingConnection(params)
    pch = publisher.channel()
    consumer = pika.BlockingConnection(params)
    cch = consumer.channel()
    cch.basic_qos(prefetch_count=1)
    body = b"x" * 600
    for kind in ["classic", "quorum", "classic", "quorum"]:
        queue = f"weft-bench-hop-{os.getpid()}-{kind}"
        pch.queue_declare(queue, durable=True, arguments={"x-queue-type": kind})
        deliveries = cch.consume(queue, inactivity_timeout=10)
        hops = []
        for _ in range(n):
            start = time.perf_counter()
            pch.basic_publish("", queue, body, properties=pika.BasicProperties(delivery_mode=2))
            method, _, _ = next(deliveries)
            hops.append(time.perf_counter() - start)
            cch.basic_ack(method.delivery_tag)
        cch.cancel()
        pch.queue_delete(queue)
        print(f"{kind:8s} publish to delivery, median of {n}: {statistics.median(hops) * 1e3:.2f} ms")
    publisher.close()
    consumer.close()


if __name__ == "__main__":
    main()
