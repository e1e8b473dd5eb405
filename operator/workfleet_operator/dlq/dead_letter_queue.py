"""Read, requeue and purge `<queue>.dlq` on the broker.

Reading takes messages with basic.get and holds them unacked, so one pass sees
each message once; closing the channel hands every held message back to the
queue untouched. A requeue publishes the copy to the work queue and waits for the
broker's confirm before it acks the dead letter: a crash in between leaves the
message in both queues, never in neither.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import pika
import pika.exceptions

from workfleet_common.amqp import persistent_copy
from workfleet_common.topology import Topology
from workfleet_operator.dlq.entry import DeadLetter, requeue_headers


class DeadLetterQueueMissing(Exception):
    pass


@dataclass(frozen=True)
class Held:
    """A message taken from the dead-letter queue and not acked yet."""

    delivery_tag: int
    properties: pika.BasicProperties
    body: bytes
    entry: DeadLetter


class DeadLetterQueue:
    def __init__(self, parameters: pika.ConnectionParameters, queue: str):
        self._parameters = parameters
        self.topology = Topology(queue)

    @property
    def name(self) -> str:
        return self.topology.dead_letter_queue

    def count(self) -> int:
        with pika.BlockingConnection(self._parameters) as connection:
            return self._count(connection)

    def peek(self, limit: int) -> tuple[int, list[DeadLetter]]:
        """(messages in the queue, up to `limit` of them), leaving the queue as it was."""
        with pika.BlockingConnection(self._parameters) as connection:
            total = self._count(connection)
            channel = connection.channel()
            entries = [held.entry for held in self._take(channel, min(limit, total))]
            channel.close()  # hands every held message back
            return total, entries

    def find(self, message_id: str) -> Held | None:
        with pika.BlockingConnection(self._parameters) as connection:
            total = self._count(connection)
            channel = connection.channel()
            found = next((held for held in self._take(channel, total) if held.entry.message_id == message_id), None)
            channel.close()
            return found

    def requeue(self, ids: set[str] | None, reason: str | None) -> tuple[int, int]:
        """Move the selected messages to the work queue; (requeued, looked at).

        Looks at no more messages than the queue held when it started: a message
        that fails again while the requeue runs lands back here and waits for the
        next requeue, instead of keeping this one going round in a circle.
        Raises pika.exceptions.UnroutableError when the work queue does not exist
        (the message in hand stays in the dead-letter queue).
        """
        requeued = seen = 0
        with pika.BlockingConnection(self._parameters) as connection:
            total = self._count(connection)
            reader = connection.channel()
            publisher = connection.channel()
            publisher.confirm_delivery()
            for held in self._take(reader, total):
                seen += 1
                if not held.entry.matches(ids, reason):
                    continue  # held unacked until the channel closes, so not seen twice
                self._publish_to_work_queue(publisher, held)
                reader.basic_ack(held.delivery_tag)
                requeued += 1
            reader.close()
        return requeued, seen

    def purge(self) -> int:
        with pika.BlockingConnection(self._parameters) as connection:
            self._count(connection)
            return connection.channel().queue_purge(self.name).method.message_count

    def _count(self, connection) -> int:
        channel = connection.channel()
        try:
            frame = channel.queue_declare(self.name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code == 404:
                raise DeadLetterQueueMissing(
                    f"queue {self.name!r} does not exist: is {self.topology.queue!r} the work queue's name?"
                ) from None
            raise
        channel.close()
        return frame.method.message_count

    def _take(self, channel, at_most: int) -> Iterator[Held]:
        """Up to `at_most` messages, held unacked. Callers pass the count the queue had
        when they started, so messages dead-lettered meanwhile cannot keep them going."""
        for _ in range(at_most):
            method, properties, body = channel.basic_get(self.name, auto_ack=False)
            if method is None:
                return
            yield Held(method.delivery_tag, properties, body, DeadLetter.from_message(properties, body))

    def _publish_to_work_queue(self, publisher, held: Held) -> None:
        properties = persistent_copy(held.properties, requeue_headers(held.properties.headers))
        # With confirms on, this returns only once the broker has the copy, and raises
        # if the broker refused it or could not route it.
        publisher.basic_publish("", self.topology.queue, held.body, properties, mandatory=True)
