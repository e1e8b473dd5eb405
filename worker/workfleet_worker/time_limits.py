"""Task time limits: a soft one raised inside the task, and a hard one that ends the worker.

The soft limit raises TaskTimeout inside the task, as Celery's soft_time_limit does. The task may
catch it to clean up; otherwise it counts as a failed attempt and is retried on the ladder. How it
gets there depends on where the task runs:
- on the main thread (concurrency 1, a plain function): a SIGALRM timer whose handler raises it;
  the signal also interrupts a sleep or a blocking read;
- on a pool thread (concurrency above 1): a timer asks the interpreter to raise it in that thread
  (PyThreadState_SetAsyncExc). It arrives at the task's next Python bytecode, so a task blocked in
  one long C call (a sleep, a read with no timeout) sees it only when that call returns;
- an `async def` task: it is cancelled at its next await (asyncio.timeout), and TaskTimeout
  replaces the CancelledError.
A task stuck in C code, or one that blocks SIGALRM or swallows TaskTimeout, keeps running: at the
hard limit (soft limit plus grace) the worker ends the process, and the broker redelivers every
message the worker held, those of the other tasks running beside it too. The quorum queue's
delivery limit caps how often that can happen to one message.
"""

import contextlib
import ctypes
import signal
import threading
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
        raise TaskTimeout(timeout_message(seconds))

    return handler


@contextlib.contextmanager
def thread_soft_time_limit(seconds: float | None) -> Iterator[None]:
    """Raise TaskTimeout in the calling (non-main) thread if the body runs longer than `seconds`."""
    if seconds is None:
        yield
        return
    thread_id = threading.get_ident()
    guard = threading.Lock()
    running = [True]

    def expire() -> None:
        # Under the guard: once the body has left, nothing may be raised in the thread any more.
        with guard:
            if running[0]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(TaskTimeout))

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        # A TaskTimeout set just before this raises at the latest in here, still inside the caller's try.
        with guard:
            running[0] = False
        timer.cancel()


def timeout_message(seconds: float) -> str:
    return f"the task ran longer than its {seconds:g} s time limit"
