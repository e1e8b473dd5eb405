"""Capped exponential backoff with jitter, for reconnecting to the broker.

Jitter spreads a fleet's reconnects after a broker restart, so that hundreds of
workers do not knock on the broker in the same instant.
"""

import random


class Backoff:
    def __init__(self, initial: float = 0.5, cap: float = 30.0, rng: random.Random | None = None):
        self._initial = initial
        self._cap = cap
        self._rng = rng or random.Random()
        self._failures = 0

    def next_delay(self) -> float:
        ceiling = min(self._cap, self._initial * 2 ** min(self._failures, 32))
        self._failures += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._failures = 0
