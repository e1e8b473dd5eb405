"""Keeps a connection's I/O going while the main thread runs a long task.

Tasks run on the main thread, like the tutorial's consumer, because handing each
message to another thread costs more than a short task itself (docs/benchmarks.md).
A pika BlockingConnection sends heartbeats and reads the broker's frames only while
somebody drives it, so once a task has run for KEEP_AFTER_S this keeper drives it
until the task returns. One thread drives the connection at a time: the main thread
lends it for the task (`lent`) and takes it back afterwards, under `_driving`.

Short tasks never wake this thread; a long task costs two thread switches. A task of a millisecond
or more may also be given I/O to do while it runs (`during_task`: the acks of the tasks before
it), so that I/O overlaps the task instead of coming between tasks.
A consumer that holds deliveries ahead of the task (adaptive prefetch) asks to hear of a long task
sooner, at its buffer's time budget, so it can hand the buffer back (`on_long_task`). A task past
its hard time limit is reported to `on_hard_limit`, which ends the process (time_limits.py).
"""

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pika.exceptions

LOGGER = logging.getLogger(__name__)

# Far below any heartbeat interval the broker would accept (seconds, not minutes).
KEEP_AFTER_S = 0.5
CHECK_EVERY_S = 0.25
DRIVE_STEP_S = 0.5


class ConnectionKeeper:
    def __init__(self, connection, on_beat: Callable[[], None],
                 on_long_task: Callable[[float], None] | None = None, check_every_s: float = CHECK_EVERY_S,
                 on_hard_limit: Callable[[float], None] | None = None):
        """on_long_task(seconds the task has run) is called on this thread, with the connection
        in hand, before it drives; check_every_s bounds how late a long task is noticed.
        on_hard_limit(seconds) is called once the task passes the hard limit given to `lent`."""
        self._connection = connection
        self._on_beat = on_beat
        self._on_long_task = on_long_task
        self._on_hard_limit = on_hard_limit
        self._check_every_s = check_every_s
        self._long_after_s = KEEP_AFTER_S
        self._hard_limit_s: float | None = None
        self._driving = threading.Lock()
        self._driving.acquire()  # the main thread drives until it lends the connection
        self._task_started_at: float | None = None
        self._keeper_driving = False
        self._closed = threading.Event()
        self._wake = threading.Event()
        self._during_task: Callable[[], None] | None = None
        # What the connection raised while this keeper drove it; the main thread
        # raises it once the task has returned.
        self.failure: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="connection-keeper", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def lent(self, long_after_s: float = KEEP_AFTER_S, hard_limit_s: float | None = None,
             during_task: Callable[[], None] | None = None) -> Iterator[None]:
        """Run the body (one task) while the keeper may drive the connection, from when the
        task has run long_after_s (at most KEEP_AFTER_S, for the heartbeats). `during_task` is
        called on the keeper's thread, with the connection in hand, as soon as it can while the
        task runs; if the task ends first, it may run during a later task, or not at all."""
        self._long_after_s = min(long_after_s, KEEP_AFTER_S)
        self._hard_limit_s = hard_limit_s
        self._task_started_at = time.monotonic()
        self._driving.release()
        if during_task is not None:
            self._during_task = during_task
            self._wake.set()
        try:
            yield
        finally:
            self._task_started_at = None
            if self._keeper_driving:
                self._wake_keeper()
            self._driving.acquire()

    def close(self) -> None:
        """Stop the keeper; call it from the main thread, outside `lent`."""
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout=self._check_every_s * 4)

    def _run(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self._check_every_s)
            self._wake.clear()
            if self._closed.is_set():
                return
            self._run_during_task()
            if not self._task_is_long():
                continue
            self._check_hard_limit(self._task_started_at)  # also when the connection has failed
            if not self._driving.acquire(timeout=self._check_every_s):
                continue
            try:
                if self._task_is_long():  # the main thread may have started a new task
                    self._drive_until_task_returns()
            finally:
                self._driving.release()

    def _run_during_task(self) -> None:
        work, self._during_task = self._during_task, None
        if work is None or not self._driving.acquire(timeout=self._check_every_s):
            return  # nothing asked, or the main thread kept the connection (the task ended)
        try:
            if self._task_started_at is not None and self.failure is None:
                work()
        except Exception as error:  # noqa: BLE001 - handed to the main thread as it is
            LOGGER.warning("connection failed during a task", extra={"error": repr(error)})
            self.failure = error
        finally:
            self._driving.release()

    def _task_is_long(self) -> bool:
        started = self._task_started_at
        return started is not None and time.monotonic() - started >= self._long_after_s

    def _drive_until_task_returns(self) -> None:
        self._keeper_driving = True
        try:
            started = self._task_started_at
            if self._on_long_task is not None and started is not None:
                try:
                    self._on_long_task(time.monotonic() - started)
                except Exception as error:  # noqa: BLE001 - handed to the main thread as it is
                    LOGGER.warning("connection failed handing back deliveries", extra={"error": repr(error)})
                    self.failure = error
            while self._task_started_at is not None and self.failure is None:
                self._check_hard_limit(started)
                try:
                    self._connection.process_data_events(time_limit=DRIVE_STEP_S)
                except Exception as error:  # noqa: BLE001 - handed to the main thread as it is
                    LOGGER.warning("connection failed during a long task", extra={"error": repr(error)})
                    self.failure = error
                self._on_beat()
        finally:
            self._keeper_driving = False

    def _check_hard_limit(self, started: float | None) -> None:
        limit = self._hard_limit_s
        if started is None or limit is None or self._on_hard_limit is None:
            return
        elapsed = time.monotonic() - started
        if elapsed >= limit:
            self._on_hard_limit(elapsed)

    def _wake_keeper(self) -> None:
        """Make the keeper's process_data_events return now instead of after a step."""
        try:
            self._connection.add_callback_threadsafe(lambda: None)
        except pika.exceptions.AMQPError:
            pass  # the connection is gone, so the keeper is not waiting on it
