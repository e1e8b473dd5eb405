"""Forgotten acks: messages held by connected consumers while no ack arrives.

A consumer that takes messages and never acks them (a bug in task code, or a
worker stuck in a task) holds its unacked messages until it disconnects. The
RabbitMQ tutorial's advice is to look for it by hand with `rabbitmqctl
list_queues name messages_ready messages_unacknowledged`; the operator watches
for it on every poll instead: unacked above zero, consumers connected, and the
ack counter not moving, for longer than the pool's window.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class AckWatch:
    """Since when acks have stalled (None while they flow), and the ack count then."""

    stalled_since: float | None = None
    ack_count: int | None = None

    def observe(self, now: float, unacked: int | None, consumers: int | None, ack_count: int | None) -> "AckWatch":
        if unacked is None or consumers is None:
            return self  # stats unknown: neither evidence for nor against
        if unacked == 0 or consumers == 0 or ack_count is None:
            return AckWatch()  # nothing held, or no counter to watch (stats collection off)
        if ack_count != self.ack_count:
            return AckWatch(now, ack_count)  # an ack arrived, or this is the first look
        return self

    def stalled_for(self, now: float) -> float:
        return 0.0 if self.stalled_since is None else now - self.stalled_since

    def suspected(self, now: float, window_seconds: float) -> bool:
        return self.stalled_for(now) >= window_seconds
