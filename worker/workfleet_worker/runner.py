"""Runs tasks one at a time on a thread of their own, off the connection thread.

The connection thread must keep serving heartbeats while a task runs for minutes,
so it only hands jobs over; the result comes back through the job's callback.
"""

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from workfleet_worker.task_loading import Task


@dataclass(frozen=True)
class TaskResult:
    error: BaseException | None
    duration_s: float


@dataclass(eq=False)
class Job:
    delivery: Any
    body: Any
    headers: dict[str, Any]
    on_done: Callable[[TaskResult], None]


class TaskRunner:
    def __init__(self, task: Task):
        self._task = task
        self._jobs: collections.deque[Job] = collections.deque()
        self._ready = threading.Condition()
        self._running: Job | None = None
        self._thread = threading.Thread(target=self._run_jobs, name="task-runner", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._ready:
            self._jobs.append(job)
            self._ready.notify()

    def take_pending(self, keep: Callable[[Job], bool] = lambda job: False) -> list[Job]:
        """Remove and return the jobs not started yet (except those `keep` accepts)."""
        with self._ready:
            taken = [job for job in self._jobs if not keep(job)]
            self._jobs = collections.deque(job for job in self._jobs if keep(job))
            return taken

    def running_delivery(self) -> Any:
        with self._ready:
            return self._running.delivery if self._running is not None else None

    def _run_jobs(self) -> None:
        while True:
            with self._ready:
                while not self._jobs:
                    self._ready.wait()
                job = self._running = self._jobs.popleft()
            started = time.monotonic()
            try:
                self._task(job.body, job.headers)
                error = None
            except BaseException as raised:  # a task's SystemExit must not kill the runner either
                error = raised
            with self._ready:
                self._running = None
            job.on_done(TaskResult(error, time.monotonic() - started))
