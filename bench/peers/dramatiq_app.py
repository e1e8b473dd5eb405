"""Dramatiq with its RabbitMQ broker and default middleware, one actor.

    dramatiq bench.peers.dramatiq_app --processes 1 --threads 1   (the worker)
    python -m bench.peers.dramatiq_app COUNT                      (publishes COUNT messages)

Dramatiq declares its queues itself, as classic queues (it has no quorum queue option).
BENCH_ASYNC=1 makes the actor an `async def` one, run by Dramatiq's AsyncIO middleware (each
worker thread waits for its coroutine on one shared event loop).
"""

import os
import sys

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from bench.peers.task import handle, handle_async

broker = RabbitmqBroker(url=os.environ["BENCH_AMQP_URL"])
if os.environ.get("BENCH_ASYNC"):
    from dramatiq.middleware.asyncio import AsyncIO

    broker.add_middleware(AsyncIO())
dramatiq.set_broker(broker)

if os.environ.get("BENCH_ASYNC"):
    @dramatiq.actor(queue_name=os.environ["BENCH_QUEUE"], max_retries=0)
    async def run(body):
        await handle_async(body)
else:
    @dramatiq.actor(queue_name=os.environ["BENCH_QUEUE"], max_retries=0)
    def run(body):
        handle(body)


if __name__ == "__main__":
    for _ in range(int(sys.argv[1])):
        run.send("x")
