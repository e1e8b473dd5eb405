"""One connection's life with tasks running side by side (`--concurrency N`, or an `async def`
task): the main thread owns the connection and never runs a task.

Each pass of the loop: collect finished tasks and settle them, start buffered deliveries in the
free slots, send the acks, then wait on the connection until a frame arrives, a task finishes
(task_pool.py wakes it) or half a second passes. Heartbeats flow whatever the tasks do, since this
thread only does I/O.

Fair dispatch: with `--prefetch auto` the prefetch is N, one delivery per slot, so every message
the worker holds is running and none waits behind a long task (no buffer, so nothing to hand
back). Slots hide each other's round trips, which is what auto's buffer does for one slot. A fixed
`--prefetch P` (at least N) keeps P - N waiting, as the user asked.

Settling, decisions, metrics and outcome lines are the single-slot session's (consumer.py): only
who runs the task differs. Tasks finish in any order, so each is acked on its own.
"""

import time

from workfleet_worker.consumer import EVENTS_POLL_S, ConsumerSession
from workfleet_worker.inflight import Delivery
from workfleet_worker.task_pool import TaskPool

class PoolSession(ConsumerSession):
    ACKS_IN_ORDER = False

    def __init__(self, *args, pool: TaskPool, **kwargs):
        super().__init__(*args, **kwargs)
        self._pool = pool
        self._adaptive = None  # one delivery per slot: no buffer to size
        self._stopping = False

    def _initial_prefetch(self) -> int:
        return self._current_prefetch()

    def _current_prefetch(self) -> int:
        return self._prefetch.fixed or self._pool.size

    def _make_keeper(self):
        return None  # this thread only does I/O: the heartbeats never stop

    def _consume_until_stopped(self) -> None:
        self._pool.set_waker(self._wake)
        while True:
            self._health.beat()
            self._raise_if_channel_lost()
            self._settle_finished()
            self._check_hard_limit()
            if self._stop.requested and not self._stopping:
                self._stopping = True
                self._stop_consuming()  # the buffer goes back unrun; running tasks finish
            if self._stopping and not self._running_here():
                self._settle_finished()  # what finished since the collection above
                self._settler.flush()
                return
            while self._arrived and self._pool.free_slots() > 0:
                self._start_task(self._arrived.popleft())
            self._settler.flush()
            self._connection.process_data_events(time_limit=EVENTS_POLL_S)

    def _wake(self) -> None:
        """From a task's thread: make process_data_events return now."""
        self._connection.add_callback_threadsafe(_nothing)

    def _start_task(self, delivery: Delivery) -> None:
        message = self._decode(delivery)
        if message is not None:
            context = self._start(delivery, message)
            self._pool.start(delivery, message.body, message.headers, self._time_limits.soft_s, context)

    def _settle_finished(self) -> None:
        for delivery, result in self._pool.completed():
            if delivery.session is not self:
                self._settler.drop_late(delivery)  # its channel is gone: the broker redelivered it
                continue
            self._last_task_s = result.duration_s
            self._settle_task_result(delivery, result)

    def _running_here(self) -> bool:
        return any(delivery.session is self for delivery in self._pool.running())

    def _check_hard_limit(self) -> None:
        hard_s = self._time_limits.hard_s
        if hard_s is None:
            return
        started = [delivery for delivery in self._pool.running() if delivery.started_at is not None]
        if started:
            oldest = min(started, key=lambda delivery: delivery.started_at)
            elapsed = time.monotonic() - oldest.started_at
            if elapsed >= hard_s:
                self._exit_at_hard_limit(oldest, elapsed)


def _nothing() -> None:
    pass
