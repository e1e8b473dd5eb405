"""taskiq 0.x with taskiq-aio-pika, its RabbitMQ broker: an async-native peer for `async def` tasks.

    taskiq worker bench.peers.taskiq_app:broker --workers 1 --ack-type when_executed ...   (the worker)
    python -m bench.peers.taskiq_app COUNT                                                   (publishes)

BENCH_QUEUE_TYPE picks the queue type it declares (taskiq-aio-pika declares quorum or classic
queues itself), BENCH_TASKIQ_QOS its prefetch (taskiq-aio-pika's default is 10).
"""

import asyncio
import os
import sys

from taskiq_aio_pika import AioPikaBroker, Queue, QueueType

from bench.peers.task import handle_async

broker = AioPikaBroker(os.environ["BENCH_AMQP_URL"], qos=int(os.environ.get("BENCH_TASKIQ_QOS", "10"))).with_queue(
    Queue(name=os.environ["BENCH_QUEUE"], type=QueueType(os.environ.get("BENCH_QUEUE_TYPE", "classic"))))


@broker.task(task_name="bench.handle")
async def run(body):
    await handle_async(body)


async def publish(count: int) -> None:
    await broker.startup()
    for _ in range(count):
        await run.kiq("x")
    await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(publish(int(sys.argv[1])))
