"""Direct AMQP helpers for tests: publish with the library, inspect and drain queues."""

import time

import pika

from workfleet_common.amqp import connection_parameters
from workfleet_common.topology import Topology
from workfleet_operator.local.rabbitmq import RabbitNode
from workfleet_producer import ConfirmedPublisher, OutgoingMessage, Outcome


def node_with_consumer_timeout(milliseconds: int) -> RabbitNode:
    """A private node whose delivery-acknowledgement timeout is checked every second
    (channel_tick_interval) instead of every minute, so it fires on time in tests."""
    return RabbitNode(
        rabbitmq_conf=f"consumer_timeout = {milliseconds}",
        rabbit_env="{channel_tick_interval, 1000}",
    )


def declare(amqp_url: str, topology: Topology) -> None:
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        topology.declare(connection.channel())


def publish(amqp_url: str, queue: str, bodies: list[str], **message_options) -> tuple[list[str], set[str]]:
    """Publish with confirms; returns (ids in publish order, confirmed ids)."""
    messages = [OutgoingMessage(body.encode(), **message_options) for body in bodies]
    publisher = ConfirmedPublisher(connection_parameters(amqp_url, "test"), "", queue)
    results = publisher.publish(messages)
    confirmed = {result.message_id for result in results if result.outcome is Outcome.CONFIRMED}
    return [message.message_id for message in messages], confirmed


def queue_depth(amqp_url: str, queue: str) -> tuple[int, int]:
    """(ready messages, consumers), exact, from a passive declare."""
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        frame = connection.channel().queue_declare(queue, passive=True)
        return frame.method.message_count, frame.method.consumer_count


def wait_until(predicate, timeout: float = 60, interval: float = 0.1, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def get_all(amqp_url: str, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """Take every message out of a queue (acked)."""
    taken = []
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            taken.append((properties, body))
