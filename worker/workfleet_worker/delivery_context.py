"""What a task can know about the delivery it runs for: `current_delivery()`.

A context variable, so it reads the same on the main thread, in a pool thread and in an asyncio
task: each task sees its own delivery, however many run at once. docs/reliability.md asks tasks
to be idempotent by message id; this is where a task reads it.
"""

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)  # made for every task: slots, not frozen, keep that cheap
class DeliveryContext:
    message_id: str  # the producer's message id, or a fingerprint of the body when it set none
    attempt: int  # 1 for the first execution; retries count up (the worker's own header)
    redelivered: bool  # the broker's flag: an earlier holder did not ack (after a crash, say)
    headers: dict[str, Any] = field(repr=False)
    deadline: float | None = None  # time.monotonic() of the soft time limit; None without one

    def time_left(self) -> float | None:
        """Seconds before TaskTimeout is raised in the task (0 once passed); None without a limit."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


_CURRENT: contextvars.ContextVar[DeliveryContext] = contextvars.ContextVar("workfleet_delivery")


def current_delivery() -> DeliveryContext:
    """The delivery the calling task runs for. Raises RuntimeError outside a task."""
    try:
        return _CURRENT.get()
    except LookupError:
        raise RuntimeError("current_delivery() is available only inside a task the worker runs") from None


def enter(context: DeliveryContext | None) -> contextvars.Token | None:
    """Make `context` the current delivery; give the token to `leave` when the task is done.
    (Two calls rather than a context manager: this runs for every task, on the fast path too.)"""
    return None if context is None else _CURRENT.set(context)


def leave(token: contextvars.Token | None) -> None:
    if token is not None:
        _CURRENT.reset(token)
