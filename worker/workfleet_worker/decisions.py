"""What to do with a delivery: pure functions of its attempt, the limit and the error."""

import enum
from dataclasses import dataclass

from workfleet_common.retry_ladder import RetryLadder
from workfleet_worker.errors import Reject


class Action(enum.Enum):
    ACK = "acked"
    RETRY = "retried"
    DEAD_LETTER = "dead_lettered"


class Reason(enum.Enum):
    """Why a message was dead-lettered (a bounded label set for metrics)."""

    MALFORMED = "malformed"
    MAX_ATTEMPTS = "max_attempts"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: Reason | None = None


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    ladder: RetryLadder

    def retry_queue_delays(self) -> list[int]:
        """The delays some retry of this policy waits, one retry queue each."""
        return self.ladder.delays_used(self.max_attempts)


ACK = Decision(Action.ACK)
RETRY = Decision(Action.RETRY)


def after_task(attempt: int, max_attempts: int, error: BaseException | None) -> Decision:
    """`attempt` counts this execution: 1 for the first one."""
    if error is None:
        return ACK
    if isinstance(error, Reject):
        return Decision(Action.DEAD_LETTER, Reason.REJECTED)
    if attempt >= max_attempts:
        return Decision(Action.DEAD_LETTER, Reason.MAX_ATTEMPTS)
    return RETRY


def for_malformed() -> Decision:
    return Decision(Action.DEAD_LETTER, Reason.MALFORMED)
