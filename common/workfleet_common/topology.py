"""Queue names and arguments, declared the same way by every component.

One work queue per fleet, plus a dead-letter exchange and queue next to it:

    <queue>        durable work queue: quorum by default; classic is declared with no
                   arguments at all, exactly as the tutorial's new_task.py does, so a
                   tutorial producer and a workfleet worker agree on it
    <queue>.dlx    direct exchange the work queue dead-letters into
    <queue>.dlq    durable queue bound to <queue>.dlx, where failed messages rest

Declaring is idempotent: declaring again with the same arguments is a no-op,
and declaring with different ones is refused by the broker (406), which is the
signal that two components disagree about the topology.
"""

from dataclasses import dataclass
from typing import Any, Literal

QueueType = Literal["quorum", "classic"]


@dataclass(frozen=True)
class Topology:
    queue: str
    queue_type: QueueType = "quorum"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.queue}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dlq"

    @property
    def dead_letter_routing_key(self) -> str:
        return self.queue

    def work_queue_arguments(self) -> dict[str, Any]:
        # The worker dead-letters by publishing to the exchange itself (so it can add
        # the reason); the queue's own dead-letter arguments are a backstop for what
        # the broker rejects on its own, and are left off classic queues for interop.
        if self.queue_type == "classic":
            return {}
        return {
            "x-queue-type": self.queue_type,
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-dead-letter-routing-key": self.dead_letter_routing_key,
        }

    def dead_letter_queue_arguments(self) -> dict[str, Any]:
        if self.queue_type == "classic":
            return {}
        return {"x-queue-type": self.queue_type}

    def declare(self, channel) -> None:
        """Declare exchange, queues and binding on a pika BlockingChannel."""
        channel.exchange_declare(self.dead_letter_exchange, exchange_type="direct", durable=True)
        channel.queue_declare(
            self.dead_letter_queue, durable=True, arguments=self.dead_letter_queue_arguments()
        )
        channel.queue_bind(
            self.dead_letter_queue, self.dead_letter_exchange, routing_key=self.dead_letter_routing_key
        )
        channel.queue_declare(self.queue, durable=True, arguments=self.work_queue_arguments())
