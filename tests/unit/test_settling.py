"""What a worker records when its connection fails as it sends acks.

The one fake here is the consuming channel and its connection: the faults are the connection
failing at a chosen point of a flush. A real broker's restart makes them only by chance (under
load, a message counted as lost though the broker had settled it, because the connection failed
inside pika's basic_ack after the ack went out). Everything else is the worker's own code.
"""

import logging

import pika.exceptions
import pytest
from prometheus_client import CollectorRegistry

from workfleet_common.logs import DELIVERY_EVENT
from workfleet_common.retry_ladder import RetryLadder
from workfleet_common.topology import Topology
from workfleet_worker.decisions import Action, Decision
from workfleet_worker.inflight import Delivery, InFlight
from workfleet_worker.metrics import WorkerMetrics
from workfleet_worker.settling import Settler


class FailingConnection:
    def __init__(self, error: Exception | None):
        self.error = error

    def process_data_events(self, time_limit=None):
        if self.error is not None:
            raise self.error


class FailingChannel:
    """Fails reading what the broker sent (the connection died before the flush), or in
    basic_ack (it died as pika wrote the ack)."""

    def __init__(self, on_ack: Exception | None = None, on_read: Exception | None = None):
        self.on_ack = on_ack
        self.connection = FailingConnection(on_read)
        self.acks = []

    def basic_ack(self, delivery_tag, multiple=False):
        self.acks.append((delivery_tag, multiple))
        if self.on_ack is not None:
            raise self.on_ack


def two_settled_deliveries(channel: FailingChannel, acks_in_order: bool = True):
    inflight = InFlight()
    registry = CollectorRegistry()
    metrics = WorkerMetrics("tasks", registry)
    settler = Settler(channel, None, Topology("tasks"), RetryLadder.parse("0"), inflight, metrics, acks_in_order)
    deliveries = [Delivery(None, tag, f"message {tag}", False, pika.BasicProperties(), b"") for tag in (1, 2)]
    for delivery in deliveries:
        inflight.add(delivery)
        settler.settle(delivery, Decision(Action.ACK), None, duration_s=0.01)
    return settler, inflight, registry


def acked_total(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("workfleet_worker_messages_acked_total", {"queue": "tasks"})


def outcome_lines(caplog) -> list[str]:
    return [record.message_id for record in caplog.records if getattr(record, "event", None) == DELIVERY_EVENT]


@pytest.mark.parametrize("error", [pika.exceptions.StreamLostError("reset"),
                                   pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED")])
def test_acks_the_connection_failed_on_are_recorded_as_acked(caplog, error):
    channel = FailingChannel(on_ack=error)
    settler, inflight, registry = two_settled_deliveries(channel)
    with caplog.at_level(logging.INFO), pytest.raises(type(error)):
        settler.flush()
    assert channel.acks == [(2, True)]
    assert outcome_lines(caplog) == ["message 1", "message 2"]
    assert acked_total(registry) == 2
    assert inflight.count() == 0, "no late-ack report may follow for them"
    assert "may deliver them again" in caplog.text
    assert settler.unsent == 0


@pytest.mark.parametrize("error", [pika.exceptions.ChannelWrongStateError("Channel is closed."),
                                   pika.exceptions.ConnectionWrongStateError()])
def test_acks_pika_refused_to_send_stay_in_flight(caplog, error):
    settler, inflight, registry = two_settled_deliveries(FailingChannel(on_ack=error))
    with caplog.at_level(logging.INFO), pytest.raises(type(error)):
        settler.flush()
    assert outcome_lines(caplog) == []
    assert acked_total(registry) == 0
    assert inflight.count() == 2, "the session reports them as late acks: the broker redelivers them"


def test_a_connection_that_failed_before_the_flush_leaves_the_acks_unsent(caplog):
    channel = FailingChannel(on_read=pika.exceptions.StreamLostError("reset"))
    settler, inflight, registry = two_settled_deliveries(channel)
    with caplog.at_level(logging.INFO), pytest.raises(pika.exceptions.StreamLostError):
        settler.flush()
    assert channel.acks == []
    assert outcome_lines(caplog) == []
    assert acked_total(registry) == 0
    assert inflight.count() == 2, "the session reports them as late acks: the broker redelivers them"


def test_tasks_that_ran_side_by_side_are_acked_one_by_one():
    """Out of order completions must not be covered by multiple=True: an older tag may still run."""
    channel = FailingChannel()
    settler, inflight, registry = two_settled_deliveries(channel, acks_in_order=False)
    settler.flush()
    assert channel.acks == [(1, False), (2, False)]
    assert acked_total(registry) == 2 and inflight.count() == 0


def test_one_by_one_a_failure_on_the_second_ack_counts_the_first_as_acked_and_the_second_as_sent(caplog):
    channel = FailingChannel()
    settler, inflight, registry = two_settled_deliveries(channel, acks_in_order=False)
    original = channel.basic_ack

    def fail_second(delivery_tag, multiple=False):
        original(delivery_tag, multiple)
        if delivery_tag == 2:
            raise pika.exceptions.StreamLostError("reset")

    channel.basic_ack = fail_second
    with caplog.at_level(logging.INFO), pytest.raises(pika.exceptions.StreamLostError):
        settler.flush()
    assert outcome_lines(caplog) == ["message 1", "message 2"]
    assert acked_total(registry) == 2 and inflight.count() == 0
