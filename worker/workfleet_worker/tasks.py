"""Built-in tasks.

`dots` is the RabbitMQ tutorial's worker: one second of work per '.' in the body.
WORKFLEET_DOT_SECONDS scales that second, so tests and demos run quickly.
"""

import os
import time

DOT_SECONDS_ENV = "WORKFLEET_DOT_SECONDS"


def dot_seconds() -> float:
    raw = os.environ.get(DOT_SECONDS_ENV, "1")
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"{DOT_SECONDS_ENV} must be a number of seconds, got {raw!r}") from None
    if seconds < 0:
        raise ValueError(f"{DOT_SECONDS_ENV} must not be negative, got {raw!r}")
    return seconds


def dots(body, headers) -> None:
    text = body if isinstance(body, str) else bytes(body).decode("utf-8", errors="replace")
    time.sleep(text.count(".") * dot_seconds())


def noop(body, headers) -> None:
    """Does nothing: for measuring the worker's own cost per message."""


def fail(body, headers) -> None:
    """Always raises: a poison task, for trying out retries and the dead-letter queue."""
    raise RuntimeError("this task always fails")
