"""Deliveries this worker holds and has not settled yet.

Filled by whichever thread drives the connection and read by the metrics
endpoint's thread, hence the lock. Removing a delivery is the one way to settle
it, and only the first remover wins, so a delivery is acked, requeued or
reported as dropped exactly once.
"""

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(eq=False)
class Delivery:
    session: Any  # the ConsumerSession whose channel carries this delivery tag
    delivery_tag: int
    name: str  # message id, or a fingerprint of the body when there is none
    redelivered: bool
    properties: Any
    body: bytes
    attempts_before: int = 0
    started_at: float | None = None  # when its task started (monotonic); None while it waits in the buffer
    started_unix: float | None = None  # the same moment on the wall clock, for the outcome line
    finished: bool = False  # its task has returned (its ack may still wait, settling.py)

    @property
    def attempt(self) -> int:
        """This execution's number, 1 for the first."""
        return self.attempts_before + 1


class InFlight:
    def __init__(self):
        self._lock = threading.Lock()
        self._deliveries: set[Delivery] = set()

    def add(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.add(delivery)

    def remove(self, delivery: Delivery) -> bool:
        """True if the delivery was held (the caller now settles it)."""
        with self._lock:
            if delivery in self._deliveries:
                self._deliveries.remove(delivery)
                return True
            return False

    def of_session(self, session: Any) -> list[Delivery]:
        with self._lock:
            return [delivery for delivery in self._deliveries if delivery.session is session]

    def count(self) -> int:
        with self._lock:
            return len(self._deliveries)

    def running(self) -> int:
        """Deliveries whose task runs now."""
        with self._lock:
            return sum(1 for delivery in self._deliveries if delivery.started_at is not None and not delivery.finished)

    def oldest_age(self) -> float:
        """How long the task running now has run (0 with none): deliveries waiting in the buffer
        or for their ack are not counted, so the age says how long a task takes, whatever the
        prefetch."""
        with self._lock:
            started = [delivery.started_at for delivery in self._deliveries
                       if delivery.started_at is not None and not delivery.finished]
        return time.monotonic() - min(started) if started else 0.0
