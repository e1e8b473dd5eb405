"""Runs up to `size` tasks at once, off the thread that owns the connection.

pika's BlockingConnection is not thread-safe, so with `--concurrency` above 1 (or any `async
def` task) the main thread keeps the connection for the worker's whole life: it receives
deliveries, starts each task here, and settles what comes back. Plain functions run on a pool of
`size` threads; `async def` ones as asyncio tasks on one event loop in a thread of its own. A
finished task is put on a thread-safe queue and the connection's thread is woken (`set_waker`,
pika's add_callback_threadsafe), so a completion is settled at once, not at the next poll. No
task thread ever touches the connection. (Dramatiq's worker is built the same way: consumer
threads feed worker threads through a queue, and acks go back to the consumer.)

The pool outlives a connection: a task still running when its session ends keeps its slot, and
its completion is collected by the next session (which reports it as a late ack).
"""

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from workfleet_worker.delivery_context import DeliveryContext
from workfleet_worker.inflight import Delivery
from workfleet_worker.runner import TaskResult, run_async_task, run_task_in_thread
from workfleet_worker.task_loading import Task, is_async

LOGGER = logging.getLogger(__name__)


class TaskPool:
    def __init__(self, task: Task, size: int):
        self.size = size
        self._task = task
        self._completed: queue.SimpleQueue[tuple[Delivery, TaskResult]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running: set[Delivery] = set()
        self._wake: Callable[[], None] = lambda: None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None
        if is_async(task):
            self._loop = asyncio.new_event_loop()
            threading.Thread(target=self._loop.run_forever, name="task-event-loop", daemon=True).start()
        else:
            self._threads = concurrent.futures.ThreadPoolExecutor(size, thread_name_prefix="task")

    def set_waker(self, wake: Callable[[], None]) -> None:
        """`wake()` is called from a task's thread after each completion (the session's connection)."""
        self._wake = wake

    def free_slots(self) -> int:
        with self._lock:
            return self.size - len(self._running)

    def running(self) -> list[Delivery]:
        """Deliveries whose task runs now, of any session."""
        with self._lock:
            return list(self._running)

    def start(self, delivery: Delivery, body: Any, headers: dict[str, Any], soft_limit_s: float | None,
              context: DeliveryContext) -> None:
        """Start the delivery's task; the caller has checked that a slot is free."""
        with self._lock:
            self._running.add(delivery)
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._run_async(delivery, body, headers, soft_limit_s, context), self._loop)
        else:
            self._threads.submit(self._run_in_thread, delivery, body, headers, soft_limit_s, context)

    def completed(self) -> list[tuple[Delivery, TaskResult]]:
        """The tasks that finished since the last call, with their results."""
        finished = []
        while True:
            try:
                finished.append(self._completed.get_nowait())
            except queue.Empty:
                return finished

    def close(self) -> None:
        """Stop taking work; tasks still running are abandoned (the broker has their messages back)."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _run_in_thread(self, delivery: Delivery, body, headers, soft_limit_s, context) -> None:
        self._finish(delivery, run_task_in_thread(self._task, body, headers, soft_limit_s, context))

    async def _run_async(self, delivery: Delivery, body, headers, soft_limit_s, context) -> None:
        self._finish(delivery, await run_async_task(self._task, body, headers, soft_limit_s, context))

    def _finish(self, delivery: Delivery, result: TaskResult) -> None:
        delivery.finished = True
        # Queued before it leaves the running set, under the lock: whoever sees it not running
        # (running() takes the lock) can then collect it with completed().
        with self._lock:
            self._completed.put((delivery, result))
            self._running.discard(delivery)
        try:
            self._wake()
        except Exception as error:  # noqa: BLE001 - a closed connection: the next session collects it
            LOGGER.debug("could not wake the connection's thread", extra={"error": repr(error)})
