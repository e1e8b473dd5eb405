"""Run the user's task once and report how it ended; never raise."""

import time
from dataclasses import dataclass
from typing import Any

from workfleet_worker.task_loading import Task
from workfleet_worker.time_limits import soft_time_limit


@dataclass(frozen=True)
class TaskResult:
    error: BaseException | None
    duration_s: float


def run_task(task: Task, body: Any, headers: dict[str, Any], soft_limit_s: float | None = None) -> TaskResult:
    started = time.monotonic()
    try:
        with soft_time_limit(soft_limit_s):
            task(body, headers)
    except BaseException as raised:  # a task's SystemExit or KeyboardInterrupt must not end the worker
        return TaskResult(raised, time.monotonic() - started)
    return TaskResult(None, time.monotonic() - started)
