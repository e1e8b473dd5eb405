"""Run the user's task once and report how it ended; never raise.

Three ways, one result: `run_task` on the main thread (concurrency 1), `run_task_in_thread` on a
pool thread, `run_async_task` on the worker's event loop. Each makes the delivery current for the
task (delivery_context.py) and applies the soft time limit in the way its place allows
(time_limits.py).
"""

import asyncio
import inspect
import time
from dataclasses import dataclass
from typing import Any

from workfleet_worker import delivery_context
from workfleet_worker.delivery_context import DeliveryContext
from workfleet_worker.task_loading import Task
from workfleet_worker.time_limits import TaskTimeout, soft_time_limit, thread_soft_time_limit, timeout_message


@dataclass(frozen=True)
class TaskResult:
    error: BaseException | None
    duration_s: float


class CoroutineFromPlainTask(TypeError):
    """A task loaded as a plain function returned an awaitable: its work never ran."""


def run_task(task: Task, body: Any, headers: dict[str, Any], soft_limit_s: float | None = None,
             context: DeliveryContext | None = None) -> TaskResult:
    """On the main thread: the soft limit is a SIGALRM timer."""
    started = time.monotonic()
    token = delivery_context.enter(context)
    try:
        if soft_limit_s is None:  # most workers: no timer, so none of the context manager's calls
            returned = task(body, headers)
        else:
            with soft_time_limit(soft_limit_s):
                returned = task(body, headers)
        if returned is not None:  # None, most tasks' result, needs no check
            _refuse_awaitable(returned)
    except BaseException as raised:  # a task's SystemExit or KeyboardInterrupt must not end the worker
        return TaskResult(raised, time.monotonic() - started)
    finally:
        delivery_context.leave(token)
    return TaskResult(None, time.monotonic() - started)


def run_task_in_thread(task: Task, body: Any, headers: dict[str, Any], soft_limit_s: float | None = None,
                       context: DeliveryContext | None = None) -> TaskResult:
    """On a pool thread: the soft limit is raised in the thread at its next bytecode."""
    started = time.monotonic()
    token = delivery_context.enter(context)
    try:
        with thread_soft_time_limit(soft_limit_s):
            returned = task(body, headers)
        if returned is not None:
            _refuse_awaitable(returned)
    except TaskTimeout as raised:
        # Raised by the interpreter as a bare class: give it the message the other ways give.
        return TaskResult(raised if raised.args else TaskTimeout(timeout_message(soft_limit_s)),
                          time.monotonic() - started)
    except BaseException as raised:  # noqa: BLE001 - as run_task
        return TaskResult(raised, time.monotonic() - started)
    finally:
        delivery_context.leave(token)
    return TaskResult(None, time.monotonic() - started)


async def run_async_task(task: Task, body: Any, headers: dict[str, Any], soft_limit_s: float | None = None,
                         context: DeliveryContext | None = None) -> TaskResult:
    """On the event loop, in an asyncio task of its own: the soft limit cancels it at its next await."""
    started = time.monotonic()
    limit = asyncio.timeout(soft_limit_s)
    token = delivery_context.enter(context)  # this asyncio task's own copy of the context
    try:
        async with limit:
            await task(body, headers)
    except TimeoutError as raised:
        # The task's own TimeoutError (a client's, say) is its error; only the limit's is TaskTimeout.
        error = TaskTimeout(timeout_message(soft_limit_s)) if limit.expired() else raised
        return TaskResult(error, time.monotonic() - started)
    except BaseException as raised:  # noqa: BLE001 - as run_task (a CancelledError too: the loop is not stopping)
        return TaskResult(raised, time.monotonic() - started)
    finally:
        delivery_context.leave(token)
    return TaskResult(None, time.monotonic() - started)


def _refuse_awaitable(returned: Any) -> None:
    """A plain function that returns a coroutine (a wrapper around an async one, say) did none of
    its work: fail the attempt loudly instead of acking work that never ran."""
    if inspect.isawaitable(returned):
        if inspect.iscoroutine(returned):
            returned.close()  # no "never awaited" warning on top of this error
        raise CoroutineFromPlainTask(
            "the task returned an awaitable without running it; declare the task itself `async def` "
            "so the worker awaits it")
