"""Deliveries this worker holds and has not settled yet.

Filled by whichever thread drives the connection and read by the metrics
endpoint's thread, hence the lock. Removing a delivery is the one way to settle
it, and only the first remover wins, so a delivery is acked, requeued or
reported as dropped exactly once.
"""

import threading
import time
from dataclasses import dataclass, field
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
    received_at: float = field(default_factory=time.monotonic)

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

    def oldest_age(self) -> float:
        with self._lock:
            if not self._deliveries:
                return 0.0
            oldest = min(delivery.received_at for delivery in self._deliveries)
        return time.monotonic() - oldest
