"""Celery, set up as its docs advise for tasks that must not be lost: late acks.

    celery -A bench.peers.celery_app worker -P prefork -c 1 ...   (the worker)
    python -m bench.peers.celery_app COUNT                        (publishes COUNT tasks)

BENCH_QUEUE_TYPE picks the queue type Celery declares (classic or quorum), BENCH_CELERY_MULTIPLIER
its worker_prefetch_multiplier (Celery's default is 4).
"""

import os
import sys

from celery import Celery

from bench.peers.task import handle

app = Celery("bench", broker=os.environ["BENCH_AMQP_URL"])
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_MULTIPLIER", "4")),
    task_default_queue=os.environ["BENCH_QUEUE"],
    task_default_queue_type=os.environ.get("BENCH_QUEUE_TYPE", "classic"),
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.handle")
def run(body):
    handle(body)


if __name__ == "__main__":
    for _ in range(int(sys.argv[1])):
        run.delay("x")
