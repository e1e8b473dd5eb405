"""Settling a delivery after its task: the retry or dead-letter copy, the ack, the outcome line.

Settling order is what keeps messages safe: a retry or dead-letter copy is published on a
confirm-mode channel and confirmed first, and only then is the original acked. A crash in between
leaves a duplicate, never a loss. A retry copy goes to the retry queue of its delay (the broker
returns it to the work queue when the delay is over), or straight to the work queue for a delay
of 0.

Acks can go out together, as one basic.ack with multiple=True: for short tasks each ack costs
more than the task (a frame, a write and a poll), and the broker refills the buffer from any ack.
`settle` leaves the ack unsent; the consumer decides when to `flush` (consumer.py). Each outcome
line is written once its ack is sent. A crash before then redelivers the finished tasks:
at-least-once, as a crash between a task and its ack always did.

On the main thread (concurrency 1) deliveries reach the buffer in delivery-tag order and run in
that order, so when the newest finished one is acked with multiple=True, every older tag on the
channel is settled already or waits in this batch. Tasks running side by side (task_pool.py)
finish in any order, so their acks go out one per delivery (`acks_in_order=False`).
"""

import logging
import time
from dataclasses import dataclass

import pika.exceptions

from workfleet_common import envelope
from workfleet_common.amqp import persistent_copy
from workfleet_common.logs import DELIVERY_EVENT
from workfleet_common.retry_ladder import RetryLadder
from workfleet_common.topology import Topology
from workfleet_worker.decisions import Action, Decision, Reason
from workfleet_worker.inflight import Delivery, InFlight
from workfleet_worker.metrics import WorkerMetrics

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """A finished delivery, waiting for its ack to be sent."""

    delivery: Delivery
    decision: Decision
    error: str | None
    duration_s: float


class Settler:
    """Settles one session's deliveries on its consuming channel. Not thread-safe: the thread
    driving the connection calls it (the main thread, or the keeper while a task runs long)."""

    def __init__(self, channel, publisher, topology: Topology, ladder: RetryLadder, inflight: InFlight,
                 metrics: WorkerMetrics, acks_in_order: bool = True):
        self._channel = channel
        self._acks_in_order = acks_in_order  # tasks finish in delivery-tag order: one ack covers a batch
        self._publisher = publisher  # in confirm mode
        self._topology = topology
        self._ladder = ladder
        self._inflight = inflight
        self._metrics = metrics
        self._unsent_acks: list[Outcome] = []

    def settle(self, delivery: Delivery, decision: Decision, error: str | None, duration_s: float) -> None:
        """Store the copy the decision asks for, and leave the ack to send (`flush`); or requeue if
        the copy was refused.

        Raises pika's errors when the connection fails; the delivery then stays in flight and the
        session reports it as a late ack when it ends.
        """
        if not self._store_copy(delivery, decision, error):
            # The copy is not safely stored, so the original must stay: hand it back.
            self.requeue(delivery, f"broker refused the {decision.action.value} copy")
            return
        self._unsent_acks.append(Outcome(delivery, decision, error, duration_s))

    @property
    def unsent(self) -> int:
        """Deliveries settled but not acked yet."""
        return len(self._unsent_acks)

    def flush(self) -> None:
        """Send the acks that wait, then their outcome lines.

        What the broker sent is read first, so that a connection that failed before the ack was
        written raises here: the deliveries stay in flight, and the session reports them as late
        acks (the broker delivers them again). If the connection fails while pika writes the ack,
        nobody can tell whether the broker got it: it may have settled them already, or may
        deliver them again. They count as acked, since the ack went out; one that comes back runs
        again, a duplicate, which at-least-once allows. Reporting them as late acks would make a
        message the broker settled look lost.
        """
        if not self._unsent_acks:
            return
        self._channel.connection.process_data_events(time_limit=0)
        outcomes, self._unsent_acks = self._unsent_acks, []
        # Each ack covers the outcomes up to its end index: one for the batch, or one each.
        acks = [(len(outcomes), len(outcomes) > 1)] if self._acks_in_order else [(end, False) for end in range(1, len(outcomes) + 1)]
        written = 0  # outcomes whose ack pika has written
        try:
            for end, multiple in acks:
                try:
                    self._channel.basic_ack(outcomes[end - 1].delivery.delivery_tag, multiple=multiple)
                except (pika.exceptions.ChannelWrongStateError, pika.exceptions.ConnectionWrongStateError):
                    raise  # never written: these stay in flight, reported as late acks
                except pika.exceptions.AMQPError as error:
                    LOGGER.warning("the connection failed as acks were sent; the broker may deliver them again",
                                   extra={"message_ids": [outcome.delivery.name for outcome in outcomes[written:end]],
                                          "error": repr(error)})
                    written = end
                    raise
                written = end
        finally:
            self._record_settled(outcomes[:written])

    def _record_settled(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            self._inflight.remove(outcome.delivery)
            self._count(outcome.decision)
            self._log_outcome(outcome)

    def requeue(self, delivery: Delivery, why: str) -> None:
        """Give an unsettled delivery back to the broker, to be delivered again."""
        if not self._inflight.remove(delivery):
            return
        self._channel.basic_nack(delivery.delivery_tag, requeue=True)
        self._metrics.requeued.inc()
        LOGGER.info("requeued", extra={"message_id": delivery.name, "reason": why})

    def drop_late(self, delivery: Delivery) -> None:
        """The task finished after its channel was gone: the broker has requeued it."""
        drop_late(delivery, self._inflight, self._metrics)

    def report_hard_timeout(self, delivery: Delivery, elapsed_s: float) -> None:
        """The outcome line of a task the worker ends itself for at its hard time limit; the
        message is not settled: the broker redelivers it."""
        self._log_line(delivery, "timeout", elapsed_s, error="TaskTimeout: the task ran past its hard time limit")

    def _store_copy(self, delivery: Delivery, decision: Decision, error: str | None) -> bool:
        """Publish the retry or dead-letter copy and wait for its confirm.

        False when the broker refused it (nack, or no queue took it even after declaring them again).
        """
        if decision.action is Action.ACK:
            return True
        delay_ms = 0
        if decision.action is Action.RETRY:
            delay_ms = self._ladder.delay_after(delivery.attempt)
            exchange = ""
            routing_key = self._topology.retry_queue(delay_ms) if delay_ms else self._topology.queue
            headers = retry_headers(delivery, error, delay_ms)
        else:
            exchange, routing_key = self._topology.dead_letter_exchange, self._topology.dead_letter_routing_key
            headers = dead_letter_headers(delivery, decision, error)
        properties = persistent_copy(delivery.properties, headers)
        try:
            self._publish_copy(exchange, routing_key, delivery, properties, delay_ms)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as refused:
            LOGGER.error(
                "broker refused the %s copy; requeueing the original",
                decision.action.value,
                extra={"message_id": delivery.name, "error": type(refused).__name__},
            )
            return False
        return True

    def _publish_copy(self, exchange: str, routing_key: str, delivery: Delivery, properties, delay_ms: int) -> None:
        """Publish a copy, mandatory, and wait for its confirm. A copy no queue takes found its queue
        deleted since the session declared it (a retry queue taken for unused, say): declare the
        topology again, as the next session would, and publish once more."""
        try:
            self._publisher.basic_publish(exchange, routing_key, delivery.body, properties, mandatory=True)
        except pika.exceptions.UnroutableError:
            LOGGER.warning("no queue took the copy; declaring the topology again",
                           extra={"message_id": delivery.name, "routing_key": routing_key})
            self._topology.declare(self._publisher, [delay_ms] if delay_ms else [])
            self._publisher.basic_publish(exchange, routing_key, delivery.body, properties, mandatory=True)

    def _count(self, decision: Decision) -> None:
        if decision.action is Action.ACK:
            self._metrics.acked.inc()
        elif decision.action is Action.RETRY:
            self._metrics.retried.inc()
        else:
            self._metrics.dead_lettered[decision.reason].inc()

    def _log_outcome(self, outcome: Outcome) -> None:
        decision = outcome.decision
        self._log_line(outcome.delivery, decision.action.value, outcome.duration_s,
                       reason=decision.reason.value if decision.reason else None, error=outcome.error)

    def _log_line(self, delivery: Delivery, outcome: str, duration_s: float, reason: str | None = None,
                  error: str | None = None) -> None:
        fields = {
            "event": DELIVERY_EVENT,
            "queue": self._topology.queue,
            "message_id": delivery.name,
            "attempt": delivery.attempt,
            "outcome": outcome,
            "duration_s": round(duration_s, 6),
            "started_at": delivery.started_unix,  # unix seconds, as time.time() gave them
            "redelivered": delivery.redelivered,
        }
        if reason is not None:
            fields["reason"] = reason
        if error is not None:
            fields["error"] = error
        LOGGER.info("delivery %s", outcome, extra=fields)


def drop_late(delivery: Delivery, inflight: InFlight, metrics: WorkerMetrics) -> None:
    """A task finished after its channel was gone: the broker has requeued its message. Also
    called between connections, for tasks that outlived theirs (task_pool.py)."""
    if not inflight.remove(delivery):
        return
    metrics.late_acks_dropped.inc()
    LOGGER.warning(
        "task finished after its channel closed; the broker redelivers it",
        extra={"message_id": delivery.name, "attempt": delivery.attempt},
    )


def retry_headers(delivery: Delivery, error: str | None, delay_ms: int = 0) -> dict:
    """The headers of the copy that carries a failed attempt's history to the next attempt."""
    headers = dict(delivery.properties.headers or {})
    # The broker's own count belongs to the delivery, not to the copy, and its dead-lettering
    # history (from the retry queues) is told by the attempt headers already.
    for name in envelope.BROKER_HEADERS:
        headers.pop(name, None)
    headers[envelope.ATTEMPTS_HEADER] = delivery.attempt
    headers[envelope.RETRY_DELAY_HEADER] = delay_ms
    headers[envelope.ERROR_HEADER] = error or ""
    headers.setdefault(envelope.FIRST_FAILED_AT_HEADER, int(time.time()))
    headers[envelope.FAILED_AT_HEADER] = int(time.time())
    return headers


def dead_letter_headers(delivery: Delivery, decision: Decision, error: str | None) -> dict:
    headers = retry_headers(delivery, error)
    del headers[envelope.RETRY_DELAY_HEADER]  # no attempt follows
    if decision.reason is Reason.MALFORMED:
        headers[envelope.ATTEMPTS_HEADER] = delivery.attempts_before
    headers[envelope.REASON_HEADER] = decision.reason.value
    return headers
