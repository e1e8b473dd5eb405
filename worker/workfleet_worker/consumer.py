"""One connection's life: declare, consume, run each task, settle its result.

Tasks run on the main thread, one at a time, between turns of the connection's I/O
loop; while a task runs long, a ConnectionKeeper drives the connection so heartbeats
keep flowing (see keeper.py). pika callbacks only record what arrived.

What happens after a task (the retry or dead-letter copy, the ack, the outcome line) is
settling.py's; when its acks go out is decided here. Acks of short tasks go out together, after a
quarter of the prefetch has finished or when nothing is left to run; a task of a millisecond or
more has the keeper send the acks of the tasks before it while it runs, so that I/O overlaps work.
Acks never wait for a long task: the keeper sends them when a task passes the budget.

With `--prefetch auto` the prefetch follows the tasks' durations (prefetch.py). RabbitMQ applies
a prefetch only to consumers started after it, so a new prefetch means a new consumer. When a task
runs past the budget, the consumer is cancelled and the deliveries buffered behind the task are
handed back at once, so other workers run them: fair dispatch, as at prefetch 1, with the round
trips of short tasks hidden.
"""

import collections
import logging
import os
import re
import time
from collections.abc import Callable

import pika
import pika.exceptions

from workfleet_common import envelope
from workfleet_common.topology import DELIVERY_LIMIT, Topology
from workfleet_worker import decisions
from workfleet_worker.decisions import RetryPolicy
from workfleet_worker.delivery_context import DeliveryContext
from workfleet_worker.health import HealthState
from workfleet_worker.inflight import Delivery, InFlight
from workfleet_worker.keeper import CHECK_EVERY_S, KEEP_AFTER_S, ConnectionKeeper
from workfleet_worker.metrics import WorkerMetrics
from workfleet_worker.prefetch import AdaptivePrefetch, PrefetchSetting
from workfleet_worker.runner import TaskResult, run_task
from workfleet_worker.settling import Settler
from workfleet_worker.shutdown import StopSignal
from workfleet_worker.task_loading import Task
from workfleet_worker.time_limits import HARD_LIMIT_EXIT_STATUS, TaskTimeout, TimeLimits

LOGGER = logging.getLogger(__name__)

EVENTS_POLL_S = 0.5
# Each hand-back may count as a delivery toward the quorum queue's delivery limit (it does up to
# RabbitMQ 4.2), so a message that has been returned this often runs here instead: hand-backs
# alone can never dead-letter it.
HAND_BACK_BELOW_DELIVERY_COUNT = DELIVERY_LIMIT // 2
# A task at least this long pays for waking the keeper's thread to send acks during it.
OVERLAP_AFTER_S = 0.001
PRECONDITION_FAILED = 406
# The broker's words when a declare differs from what exists (3.10 and 4.x alike).
INEQUIVALENT_ARG = re.compile(r"inequivalent arg '(?P<argument>[^']+)' for (?P<kind>queue|exchange) '(?P<name>[^']+)'")


class ChannelLost(pika.exceptions.AMQPChannelError):
    """The broker closed a channel (for example on a delivery-acknowledgement timeout)
    or cancelled our consumer (queue deleted, or its leader moved)."""


class TopologyMismatch(Exception):
    """A queue or exchange exists with other arguments than the worker declares: no reconnect
    can fix that, so the worker exits with this message."""


def mismatch_message(topology: Topology, retry_delays_ms: list[int], reply_text: str) -> str:
    """What exists, what the worker declares, and the three ways out."""
    match = INEQUIVALENT_ARG.search(reply_text)
    kind, name = (match["kind"], match["name"]) if match else ("queue", topology.queue)
    argument = match["argument"] if match else "an argument"
    declared = {topology.queue: topology.work_queue_arguments(),
                topology.dead_letter_queue: topology.dead_letter_queue_arguments(),
                topology.dead_letter_exchange: {"type": "direct", "durable": True}}
    declared.update({topology.retry_queue(delay): topology.retry_queue_arguments(delay) for delay in retry_delays_ms})
    return (
        f"the {kind} {name!r} already exists with other arguments than this worker declares it with "
        f"({argument} differs; the broker said: {reply_text}). The worker declares it durable with "
        f"{declared.get(name, {})}. Fix one of: delete the {kind} (rabbitmqctl delete_{kind} {name}; "
        f"its messages go with it) and let the worker declare it; declare it with those arguments; or "
        f"point the worker at another queue (--queue / WORKFLEET_QUEUE)."
    )


class ConsumerSession:
    """Runs each task on the main thread, between turns of the connection (concurrency 1)."""

    ACKS_IN_ORDER = True  # one task at a time: tasks finish in delivery-tag order

    def __init__(
        self,
        parameters: pika.ConnectionParameters,
        topology: Topology,
        prefetch: PrefetchSetting,
        retries: RetryPolicy,
        time_limits: TimeLimits,
        task: Task,
        inflight: InFlight,
        metrics: WorkerMetrics,
        health: HealthState,
        stop: StopSignal,
        on_connected: Callable[[], None],
    ):
        self._parameters = parameters
        self._topology = topology
        self._prefetch = prefetch
        # None with a fixed prefetch; kept per session, since a new channel starts at 1.
        self._adaptive = None if prefetch.fixed else AdaptivePrefetch(prefetch.budget_s, prefetch.cap)
        self._consumer_tag: str | None = None  # None while not consuming (during a long task, with auto)
        self._retries = retries
        self._time_limits = time_limits
        self._running: Delivery | None = None  # the delivery whose task runs now
        self._last_task_s = 0.0
        self._ack_batch = 1
        self._task = task
        self._inflight = inflight
        self._metrics = metrics
        self._health = health
        self._stop = stop
        self._on_connected = on_connected
        self._connection = None
        self._keeper = None
        self._channel = None
        self._publisher = None
        self._settler: Settler | None = None
        # Deliveries in arrival order, not started yet; filled by pika's callback.
        self._arrived: collections.deque[Delivery] = collections.deque()
        self._cancelled_by_broker = False

    def run(self) -> None:
        """Consume until a stop is requested and the work in hand is settled.

        Raises pika's connection and channel errors; the caller reconnects.
        """
        self._connection = pika.BlockingConnection(self._parameters)
        self._keeper = self._make_keeper()
        try:
            self._channel = self._connection.channel()
            self._declare_topology()
            # pika's Channel (under the blocking one) tells why the broker closed it.
            self._channel._impl.add_on_close_callback(self._on_channel_closed)
            # A second channel for retry and dead-letter copies: confirm mode makes each
            # publish wait for the broker's confirm before the original is acked.
            self._publisher = self._connection.channel()
            self._publisher.confirm_delivery()
            self._settler = Settler(self._channel, self._publisher, self._topology, self._retries.ladder,
                                   self._inflight, self._metrics, acks_in_order=self.ACKS_IN_ORDER)
            self._channel.add_on_cancel_callback(self._on_cancelled_by_broker)
            self._subscribe(self._initial_prefetch())
            # Read at scrape time from the session's own state, so they cannot drift from it.
            self._metrics.buffered.set_function(lambda: len(self._arrived))
            self._metrics.prefetch.set_function(self._current_prefetch)
            self._on_connected()
            self._health.ready = True
            LOGGER.info("consuming", extra={"queue": self._topology.queue,
                                            "prefetch": "auto" if self._adaptive else self._current_prefetch()})
            self._consume_until_stopped()
        finally:
            self._health.ready = False
            if self._keeper is not None:
                self._keeper.close()
            self._release_unsettled()
            if self._connection.is_open:
                try:
                    self._connection.close()
                except pika.exceptions.AMQPError:
                    pass

    def _initial_prefetch(self) -> int:
        return self._prefetch.initial

    def _current_prefetch(self) -> int:
        return self._adaptive.current if self._adaptive else self._prefetch.fixed

    def _make_keeper(self) -> ConnectionKeeper | None:
        return ConnectionKeeper(
            self._connection, on_beat=self._health.beat, on_long_task=self._on_long_task,
            check_every_s=min(CHECK_EVERY_S, self._prefetch.budget_s / 2) if self._adaptive else CHECK_EVERY_S,
            on_hard_limit=self._on_hard_limit,
        )

    def _declare_topology(self) -> None:
        try:
            self._topology.declare(self._channel, self._retries.retry_queue_delays())
        except pika.exceptions.ChannelClosedByBroker as closed:
            if closed.reply_code == PRECONDITION_FAILED and "inequivalent arg" in closed.reply_text:
                raise TopologyMismatch(mismatch_message(self._topology, self._retries.retry_queue_delays(),
                                                        closed.reply_text)) from None
            raise

    def _on_channel_closed(self, _channel, reason: Exception) -> None:
        """pika's callback when the channel closes. Closed by the broker with PRECONDITION_FAILED
        while tasks run means their delivery-acknowledgement (consumer) timeout passed: the broker
        has taken their messages back, and a task that long may be hung, so liveness fails while
        it still runs (health.py)."""
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker) and reason.reply_code == PRECONDITION_FAILED:
            for delivery in self._inflight.of_session(self):
                if delivery.started_at is not None and not delivery.finished:
                    self._health.abandon(delivery)
            LOGGER.error("the broker closed the channel; tasks running past its consumer timeout fail liveness",
                         extra={"error": reason.reply_text})

    def _consume_until_stopped(self) -> None:
        while True:
            self._health.beat()  # every pass: liveness does not wait for the buffer to run dry
            self._raise_if_channel_lost()
            if self._stop.requested:
                self._stop_consuming()
                return
            if self._arrived:
                self._handle(self._arrived.popleft())
            else:
                self._settler.flush()  # nothing left to run now: the acks waiting go out
                self._connection.process_data_events(time_limit=EVENTS_POLL_S)

    def _raise_if_channel_lost(self) -> None:
        # pika does not always raise these from process_data_events; check ourselves.
        if self._channel.is_closed or self._publisher.is_closed:
            raise ChannelLost("the broker closed a channel")
        if self._cancelled_by_broker:
            raise ChannelLost("the broker cancelled the consumer")

    def _stop_consuming(self) -> None:
        LOGGER.info("stop requested: consumer cancelled, unstarted deliveries requeued")
        self._health.ready = False
        self._settler.flush()
        if self._consumer_tag is not None:
            self._cancel(self._consumer_tag)
            self._consumer_tag = None
        while self._arrived:
            self._settler.requeue(self._arrived.popleft(), "shutdown")

    def _on_cancelled_by_broker(self, _method_frame) -> None:
        self._cancelled_by_broker = True

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        """pika's callback, on whichever thread drives the connection: record only."""
        delivery = Delivery(
            session=self,
            delivery_tag=method.delivery_tag,
            name=envelope.message_name(properties.message_id, body),
            redelivered=method.redelivered,
            properties=properties,
            body=body,
        )
        self._inflight.add(delivery)
        self._metrics.received.inc()
        if method.redelivered:
            self._metrics.redelivered.inc()
        self._arrived.append(delivery)

    def _subscribe(self, prefetch: int) -> None:
        """Consume with this prefetch (basic.qos binds the consumers started after it). The new
        consumer starts before the old one is cancelled, while the task in hand is still unacked,
        so the old one has no free slot for the broker to fill meanwhile."""
        previous = self._consumer_tag
        self._channel.basic_qos(prefetch_count=prefetch)
        self._consumer_tag = self._channel.basic_consume(self._topology.queue, self._on_message, auto_ack=False)
        if previous is not None:
            self._cancel(previous)
        # A quarter of the prefetch: the broker refills the buffer while the rest of it runs.
        self._ack_batch = max(1, prefetch // 4)
        LOGGER.debug("prefetch set", extra={"prefetch": prefetch})

    def _cancel(self, consumer_tag: str) -> None:
        # Take into the buffer what pika holds for this consumer: pika would return it on cancel
        # with basic.reject, which counts toward the delivery limit on every RabbitMQ version.
        self._connection.process_data_events(time_limit=0)
        self._channel.basic_cancel(consumer_tag)

    def _on_long_task(self, elapsed_s: float) -> None:
        """The keeper's call, on its thread, when the running task passes the budget: stop
        consuming (at prefetch 1 nothing could arrive now either), then what waits behind the
        task goes back to the broker. Consuming resumes at prefetch 1 once the task is done.
        The acks of the tasks before it go out first, whatever the prefetch: they must not wait
        for a long task."""
        self._settler.flush()
        if not self._may_wait_behind():
            return
        self._adaptive.task_ran_long(elapsed_s)
        if self._consumer_tag is not None:
            self._cancel(self._consumer_tag)
            self._consumer_tag = None
        for delivery in list(self._arrived):
            if self._hand_back(delivery):
                self._arrived.remove(delivery)

    def _on_hard_limit(self, elapsed_s: float) -> None:
        """The keeper's call, on its thread, when the task ignored its soft time limit as long as
        the grace allows."""
        self._exit_at_hard_limit(self._running, elapsed_s)

    def _exit_at_hard_limit(self, delivery: Delivery | None, elapsed_s: float) -> None:
        """A task cannot be stopped from another thread, so the process ends and the broker
        redelivers everything this worker held."""
        if delivery is not None:
            self._settler.report_hard_timeout(delivery, elapsed_s)
        LOGGER.error("a task ran past its hard time limit: exiting; the broker redelivers every message held",
                     extra={"elapsed_s": round(elapsed_s, 3), "hard_limit_s": self._time_limits.hard_s})
        logging.shutdown()  # the lines above are written before the process ends
        os._exit(HARD_LIMIT_EXIT_STATUS)

    def _hand_back(self, delivery: Delivery) -> bool:
        """Return an unstarted delivery to the broker, unless returns could dead-letter it."""
        count = (delivery.properties.headers or {}).get(envelope.BROKER_DELIVERY_COUNT_HEADER, 0)
        if not isinstance(count, int) or count >= HAND_BACK_BELOW_DELIVERY_COUNT:
            return False
        self._settler.requeue(delivery, "behind a long task")
        self._metrics.handed_back.inc()
        return True

    def _handle(self, delivery: Delivery) -> None:
        message = self._decode(delivery)
        if message is None:
            return
        context = self._start(delivery, message)
        self._running = delivery
        send_acks = self._settler.flush if self._settler.unsent and self._tasks_overlap_acks else None
        with self._keeper.lent(self._hand_back_after(), self._time_limits.hard_s, during_task=send_acks):
            result = run_task(self._task, message.body, message.headers, self._time_limits.soft_s, context)
        self._running = None
        self._last_task_s = result.duration_s
        delivery.finished = True
        if self._keeper.failure is not None:
            raise self._keeper.failure  # the session reports the delivery as a late ack
        if not self._channel.is_open:
            raise ChannelLost("the broker closed the channel while the task ran")
        # Before the ack: the old consumer's slot stays taken until the new consumer is in place.
        self._adapt_prefetch(result.duration_s)
        self._settle_task_result(delivery, result)

    def _start(self, delivery: Delivery, message: envelope.DecodedMessage) -> DeliveryContext:
        """Mark the delivery started; the context its task reads."""
        delivery.attempts_before = message.attempts_before
        delivery.started_at = time.monotonic()
        delivery.started_unix = time.time()
        soft_s = self._time_limits.soft_s
        return DeliveryContext(
            message_id=delivery.name, attempt=delivery.attempt, redelivered=delivery.redelivered,
            headers=message.headers, deadline=None if soft_s is None else delivery.started_at + soft_s,
        )

    def _decode(self, delivery: Delivery) -> envelope.DecodedMessage | None:
        """The delivery's message; None if it is malformed, and then it is settled (dead-lettered)."""
        properties = delivery.properties
        try:
            return envelope.decode(delivery.body, properties.headers, properties.content_type,
                                   properties.content_encoding)
        except envelope.MalformedMessage as error:
            self._settler.settle(delivery, decisions.for_malformed(), str(error), duration_s=0.0)
            self._send_acks_when_due()
            return None

    def _may_wait_behind(self) -> bool:
        """Whether deliveries may wait behind the task in hand, with auto: some are buffered, or
        the prefetch lets more arrive."""
        return self._adaptive is not None and (self._adaptive.current > 1 or bool(self._arrived))

    def _hand_back_after(self) -> float:
        """When the keeper should call _on_long_task: at the budget while deliveries may wait
        behind this task, else only when the heartbeats need it."""
        return self._prefetch.budget_s if self._may_wait_behind() else KEEP_AFTER_S

    def _adapt_prefetch(self, duration_s: float) -> None:
        if self._adaptive is None or self._stop.requested:
            return
        changed = self._adaptive.observe(duration_s)
        if changed is not None or self._consumer_tag is None:
            self._subscribe(self._adaptive.current)

    def _settle_task_result(self, delivery: Delivery, result: TaskResult) -> None:
        decision = decisions.after_task(delivery.attempt, self._retries.max_attempts, result.error)
        error = envelope.summarize_error(result.error) if result.error else None
        if isinstance(result.error, TaskTimeout):
            self._metrics.timeouts.inc()
        self._metrics.task_duration[decision.action].observe(result.duration_s)
        self._settler.settle(delivery, decision, error, result.duration_s)
        self._send_acks_when_due()

    def _send_acks_when_due(self) -> None:
        """After a quarter of the prefetch, unless the next task is long enough to send them."""
        next_task_sends = bool(self._arrived) and self._tasks_overlap_acks
        if self._settler.unsent >= self._ack_batch and not next_task_sends:
            self._settler.flush()

    @property
    def _tasks_overlap_acks(self) -> bool:
        """Judged by the last task: the next one is long enough for the keeper to send acks during it."""
        return self._last_task_s >= OVERLAP_AFTER_S

    def _release_unsettled(self) -> None:
        """After the session: the broker has requeued all it still held.

        Deliveries not started are forgotten quietly; one whose task still runs (on a pool
        thread, task_pool.py) stays in flight, so the in-flight metrics still see it, and is
        reported when it finishes; any other still unsettled (its task ran, or it was malformed,
        and its ack was not sent) is reported as a late ack.
        """
        not_started = set(self._arrived)
        self._arrived.clear()
        if self._settler is None:
            return  # never consumed
        for delivery in self._inflight.of_session(self):
            if delivery in not_started:
                self._inflight.remove(delivery)
            elif delivery.started_at is None or delivery.finished:
                self._settler.drop_late(delivery)
