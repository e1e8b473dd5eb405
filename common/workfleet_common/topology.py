"""Queue names and arguments, declared the same way by every component.

One work queue per fleet, plus a dead-letter exchange and queue next to it:

    <queue>        durable work queue: quorum by default; classic is declared with no
                   arguments at all, exactly as the tutorial's new_task.py does, so a
                   tutorial producer and a workfleet worker agree on it
    <queue>.dlx    direct exchange the work queue dead-letters into
    <queue>.dlq    durable queue bound to <queue>.dlx, where failed messages rest
    <queue>.retry.<delay>
                   one quorum queue per delay of the retry ladder (retry_ladder.py): a
                   failed task's copy waits there for the delay (the queue's message TTL),
                   then the broker dead-letters it back into <queue>

Declaring is idempotent: declaring again with the same arguments is a no-op,
and declaring with different ones is refused by the broker (406), which is the
signal that two components disagree about the topology.
"""

import re
from dataclasses import dataclass
from typing import Any, Literal

from workfleet_common.retry_ladder import delay_name

QueueType = Literal["quorum", "classic"]

# Deliveries of one message a quorum work queue allows before it dead-letters the
# message itself. The worker counts failed attempts on its own (max-attempts), but
# a task that kills its worker process (a segfault, an out-of-memory kill) never
# lets it count; only the broker sees those deliveries come back. Far above any
# max-attempts a retry policy needs, because every requeue counts: a SIGKILL after
# the grace period, a lost connection, a consumer timeout.
DELIVERY_LIMIT = 20

# The broker closes the channel of a consumer that holds a delivery longer than its consumer
# timeout, and redelivers the message. Since RabbitMQ 3.12 a policy sets it for one queue, so
# long tasks need no node-wide consumer_timeout that every other client would share (3.10 and
# 3.11 know only the node-wide one, and refuse the policy). The margin covers settling.
CONSUMER_TIMEOUT_MARGIN_S = 60


def quote_meta(name: str) -> str:
    """The name as a regular expression matching only itself, escaped exactly as Go's
    regexp.QuoteMeta (Helm's regexQuoteMeta) does, so the chart and this module agree."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", name)


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
        # the broker dead-letters on its own (the delivery limit), and are left off
        # classic queues for interop with the tutorial.
        if self.queue_type == "classic":
            return {}
        return {
            "x-queue-type": self.queue_type,
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-dead-letter-routing-key": self.dead_letter_routing_key,
            "x-delivery-limit": DELIVERY_LIMIT,
        }

    def dead_letter_queue_arguments(self) -> dict[str, Any]:
        if self.queue_type == "classic":
            return {}
        return {"x-queue-type": self.queue_type}

    @property
    def retry_queue_prefix(self) -> str:
        """Every retry queue's name is this followed by its delay's name."""
        return f"{self.queue}.retry."

    def retry_queue(self, delay_ms: int) -> str:
        return self.retry_queue_prefix + delay_name(delay_ms)

    def retry_queue_arguments(self, delay_ms: int) -> dict[str, Any]:
        # Quorum whatever the work queue's type: its dead-lettering can be at-least-once (the
        # broker keeps the message until the work queue has confirmed it), which needs the
        # reject-publish overflow. Classic queues dead-letter at most once.
        return {
            "x-queue-type": "quorum",
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.queue,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def work_queue_policy(self, longest_task_seconds: int | None, delivery_limit: int = DELIVERY_LIMIT) -> dict[str, Any]:
        """The policy the topology's owner applies to the work queue, in the shape of the
        broker's definitions file (the Helm chart renders the same one).

        Unlike queue arguments, a policy can change while the queue exists. On a quorum queue it
        makes the broker's own dead-lettering (the delivery limit) at least once: the broker keeps
        a message until the dead-letter queue has confirmed it, which needs the reject-publish
        overflow. The queue's arguments win over a policy for the dead-letter exchange, and the
        lower delivery limit of the two applies, so a policy can lower the limit below
        DELIVERY_LIMIT but not raise it. longest_task_seconds None leaves the consumer timeout out,
        for RabbitMQ 3.10 and 3.11, which refuse it.
        """
        definition: dict[str, Any] = {}
        if longest_task_seconds is not None:
            definition["consumer-timeout"] = (longest_task_seconds + CONSUMER_TIMEOUT_MARGIN_S) * 1000
        if self.queue_type == "quorum":
            definition.update({"delivery-limit": delivery_limit, "dead-letter-strategy": "at-least-once",
                               "overflow": "reject-publish"})
        return {
            "name": f"workfleet-{self.queue}",
            "pattern": f"^{quote_meta(self.queue)}$",
            "apply-to": "queues",
            "priority": 0,
            "definition": definition,
        }

    def declare(self, channel, retry_delays_ms: list[int] = ()) -> None:
        """Declare exchange, queues and binding on a pika BlockingChannel, and a retry queue for
        each delay."""
        channel.exchange_declare(self.dead_letter_exchange, exchange_type="direct", durable=True)
        channel.queue_declare(
            self.dead_letter_queue, durable=True, arguments=self.dead_letter_queue_arguments()
        )
        channel.queue_bind(
            self.dead_letter_queue, self.dead_letter_exchange, routing_key=self.dead_letter_routing_key
        )
        channel.queue_declare(self.queue, durable=True, arguments=self.work_queue_arguments())
        for delay_ms in retry_delays_ms:
            channel.queue_declare(self.retry_queue(delay_ms), durable=True,
                                  arguments=self.retry_queue_arguments(delay_ms))
