"""Message rates from the broker's cumulative counters, differenced over a window.

The management API also offers `*_details.rate`, the change over the broker's last
sampling interval (5 s by default): one busy second makes it jump and one quiet
interval drops it to zero. Differencing the counters over a longer window gives a
steady rate. Counters that are missing make the rate unknown, never zero: a new
queue, or a broker with management metrics collection turned off, has none.
"""

from collections import deque
from dataclasses import dataclass

from workfleet_operator.scaling.policy import Observation

OPERATIONS = ("publish", "deliver", "ack", "redeliver")


@dataclass(frozen=True)
class Counters:
    """Cumulative message counts of one queue, as the broker reports them."""

    publish: int
    deliver: int
    ack: int
    redeliver: int


@dataclass(frozen=True)
class Rates:
    """Messages per second over the window."""

    publish: float
    deliver: float
    ack: float
    redeliver: float

    @property
    def redelivery_ratio(self) -> float | None:
        """Redeliveries per delivery; None when nothing was delivered in the window."""
        return self.redeliver / self.deliver if self.deliver > 0 else None


class RateWindow:
    """Counter samples of one queue over the last `seconds`; rates between its ends."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._samples: deque[tuple[float, Counters]] = deque()

    def add(self, at: float, counters: Counters | None) -> None:
        if counters is None:
            # Counters vanished (stats collection off, or the queue was recreated):
            # what came before says nothing about what comes next.
            self._samples.clear()
            return
        if self._samples and _went_back(self._samples[-1][1], counters):
            self._samples.clear()  # the broker restarted or the queue was recreated
        self._samples.append((at, counters))
        while len(self._samples) > 2 and self._samples[1][0] <= at - self.seconds:
            self._samples.popleft()

    def rates(self) -> Rates | None:
        """None until the window holds two samples at least half a window apart."""
        if len(self._samples) < 2:
            return None
        (start, first), (end, last) = self._samples[0], self._samples[-1]
        elapsed = end - start
        if elapsed < self.seconds / 2:
            return None
        return Rates(**{name: max(getattr(last, name) - getattr(first, name), 0) / elapsed for name in OPERATIONS})

    def latest(self) -> Counters | None:
        return self._samples[-1][1] if self._samples else None


def _went_back(before: Counters, after: Counters) -> bool:
    return any(getattr(after, name) < getattr(before, name) for name in OPERATIONS)


def per_replica_ack_rate(rates: Rates | None, consumers: int, ready: int, previous: float | None) -> float | None:
    """Acks per second one consumer manages, measured only while work is waiting.

    With an empty queue the consumers idle and the ack rate says how much work came,
    not how fast they go; the last rate measured under load is kept instead.
    """
    if rates is None or consumers <= 0 or ready <= 0 or rates.ack <= 0:
        return previous
    return rates.ack / consumers


def observe_queue(now: float, stats, window: RateWindow, per_replica: float | None) -> tuple[Observation, Rates | None, float | None]:
    """The policy's view of one poll's queue stats (ready, unacked, consumers, counters). Adds the
    counters to the window; returns the observation, the window's rates, and the per-replica ack
    rate to keep for the next poll."""
    window.add(now, stats.counters)
    rates = window.rates()
    per_replica = per_replica_ack_rate(rates, stats.consumers, stats.ready, per_replica)
    observation = Observation(ready=stats.ready, unacked=stats.unacked, publish_rate=rates.publish if rates else None,
                              per_replica_ack_rate=per_replica)
    return observation, rates, per_replica
