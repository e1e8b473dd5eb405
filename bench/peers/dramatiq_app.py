"""Dramatiq with its RabbitMQ broker and default middleware, one actor.

    dramatiq bench.peers.dramatiq_app --processes 1 --threads 1   (the worker)
    python -m bench.peers.dramatiq_app COUNT                      (publishes COUNT messages)

Dramatiq declares its queues itself, as classic queues (it has no quorum queue option).
"""

import os
import sys

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from bench.peers.task import handle

dramatiq.set_broker(RabbitmqBroker(url=os.environ["BENCH_AMQP_URL"]))


@dramatiq.actor(queue_name=os.environ["BENCH_QUEUE"], max_retries=0)
def run(body):
    handle(body)


if __name__ == "__main__":
    for _ in range(int(sys.argv[1])):
        run.send("x")
