"""Task time limits: a soft one raised inside the task, and a hard one that ends the worker.

Tasks run on the main thread, so the soft limit is a SIGALRM timer whose handler raises
TaskTimeout inside the task, as Celery's soft_time_limit does. The task may catch it to clean up;
otherwise it counts as a failed attempt and is retried on the ladder. A signal handler runs only
between Python bytecodes of the main thread, so a task stuck in C code, or one that blocks SIGALRM
or swallows TaskTimeout, keeps running: at the hard limit (soft limit plus grace) the connection
keeper's thread ends the process, and the broker redelivers the message. The quorum queue's
delivery limit caps how often that can happen to one message.
"""

import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass

# Exit status at the hard limit: the pod's container restarts, as it does after an out-of-memory kill.
HARD_LIMIT_EXIT_STATUS = 3


class TaskTimeout(Exception):
    """Raised inside a task that runs past --task-timeout."""


@dataclass(frozen=True)
class TimeLimits:
    soft_s: float | None  # None: tasks may run as long as they like
    grace_s: float = 10.0

    @property
    def hard_s(self) -> float | None:
        return None if self.soft_s is None else self.soft_s + self.grace_s


@contextlib.contextmanager
def soft_time_limit(seconds: float | None) -> Iterator[None]:
    """Raise TaskTimeout in the main thread if the body runs longer than `seconds`."""
    if seconds is None:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_timeout(seconds))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _raise_timeout(seconds: float):
    def handler(_signum, _frame):
        raise TaskTimeout(f"the task ran longer than its {seconds:g} s time limit")

    return handler
