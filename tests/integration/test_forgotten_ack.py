"""A delivery held past the broker's consumer timeout (a "forgotten ack")."""

import pytest

from tests.support.broker import declare, node_with_consumer_timeout, publish
from tests.support.ledger import wait_for_ledger
from workfleet_common.topology import Topology

CONSUMER_TIMEOUT_MS = 5000
SLOW_TASK_S = 12


@pytest.fixture
def short_timeout_broker():
    with node_with_consumer_timeout(CONSUMER_TIMEOUT_MS) as node:
        yield node


def test_delivery_held_past_consumer_timeout(short_timeout_broker, queue_name, workers, tmp_path):
    """A task runs 12 s against a 5 s consumer timeout. Pass: the in-flight age
    metric shows the held delivery growing past the timeout before anything else
    happens; the broker closes the channel; the worker recovers by itself (one
    reconnect, the stale ack dropped and counted, no crash), the message is
    redelivered and acked once; nothing lost."""
    broker = short_timeout_broker
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(
        broker.amqp_url, "--queue", queue_name, "--task", "tests.support.tasks:slow_first_time",
        env={"WORKFLEET_TEST_STATE_DIR": str(tmp_path), "WORKFLEET_TEST_SLOW_SECONDS": str(SLOW_TASK_S)},
    )
    worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["held too long"])

    worker.wait_for_metric("workfleet_worker_oldest_in_flight_age_seconds", lambda age: age >= CONSUMER_TIMEOUT_MS / 1000 - 1)
    assert worker.metric("workfleet_worker_reconnects_total") == 0, "the age metric must show it first"

    ledger = wait_for_ledger(ids, confirmed, [worker], timeout=120)
    ledger.assert_nothing_lost()
    assert ledger.ids_with("acked") == {ids[0]: 1}
    assert worker.metric("workfleet_worker_reconnects_total") == 1
    assert worker.metric("workfleet_worker_late_acks_dropped_total") == 1
    assert worker.process.poll() is None
    ledger.assert_final(broker.amqp_url, topology)
