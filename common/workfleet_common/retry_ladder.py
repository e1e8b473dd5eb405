"""How long a failed task waits before its next attempt: a ladder of delays, one per attempt.

Attempt n that fails waits the n-th delay before attempt n + 1; the last delay repeats, so
`1s,10s,1m` waits 1 s, 10 s, 1 min, 1 min ... Each delay other than 0 is a queue of its own
(topology.py), because a queue's message TTL is fixed and messages expire only from its head.
A delay of 0 sends the copy straight back to the work queue.
"""

import re
from dataclasses import dataclass

UNITS_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
LONGEST_MS = 7 * 24 * UNITS_MS["h"]  # Dramatiq's longest backoff; RabbitMQ's TTL allows more
MOST_RUNGS = 20  # each rung is a queue on the broker
_DELAY = re.compile(r"^(0|[1-9][0-9]*)(ms|s|m|h)?$")


class LadderError(ValueError):
    pass


def parse_delay(text: str) -> int:
    """'10s' as milliseconds; a bare 0 is allowed, other numbers need a unit (ms, s, m, h)."""
    match = _DELAY.match(text.strip())
    if not match or (match.group(2) is None and match.group(1) != "0"):
        raise LadderError(f"{text.strip()!r} is not a delay: use a number with ms, s, m or h, such as 10s, or 0")
    milliseconds = int(match.group(1)) * UNITS_MS[match.group(2) or "ms"]
    if milliseconds > LONGEST_MS:
        raise LadderError(f"{text.strip()!r} is longer than the longest delay, {delay_name(LONGEST_MS)}")
    return milliseconds


def delay_name(milliseconds: int) -> str:
    """The shortest exact spelling, as in queue names: 90000 is '90s', 3600000 is '1h'."""
    for unit, size in UNITS_MS.items():
        if milliseconds and milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return "0"


@dataclass(frozen=True)
class RetryLadder:
    delays_ms: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> "RetryLadder":
        parts = text.split(",")
        if len(parts) > MOST_RUNGS:
            raise LadderError(f"at most {MOST_RUNGS} delays, got {len(parts)}")
        return cls(tuple(parse_delay(part) for part in parts))

    def delay_after(self, attempt: int) -> int:
        """Milliseconds to wait after failed attempt `attempt` (1 for the first)."""
        return self.delays_ms[min(attempt, len(self.delays_ms)) - 1]

    def delays_used(self, max_attempts: int) -> list[int]:
        """The distinct non-zero delays some attempt below max_attempts waits, in ladder order."""
        used = [self.delay_after(attempt) for attempt in range(1, max_attempts)]
        return [delay for delay in dict.fromkeys(used) if delay]

    def __str__(self) -> str:
        return ",".join(delay_name(delay) for delay in self.delays_ms)


DEFAULT_LADDER = "1s,10s,1m,10m,1h"
