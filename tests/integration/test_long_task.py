"""A task far longer than the heartbeat interval, on a broker whose consumer timeout
is configured above the longest task, as docs/reliability.md tells users to do."""

import pytest

from tests.support.broker import declare, node_with_consumer_timeout, publish
from tests.support.ledger import wait_for_ledger
from workfleet_common.topology import Topology

HEARTBEAT_S = 1
TASK_S = 8
CONSUMER_TIMEOUT_MS = 20_000  # above the longest task, checked every second


@pytest.fixture
def configured_broker():
    with node_with_consumer_timeout(CONSUMER_TIMEOUT_MS) as node:
        yield node


def test_long_task_keeps_its_connection_and_channel(configured_broker, queue_name, workers):
    """An 8 s task on a connection with a 1 s heartbeat: the broker drops a connection
    that is silent for about two heartbeats, so this passes only if heartbeats flow
    while the task runs. Pass: acked once at its first attempt, no reconnect, no
    dropped late ack, and the worker is still connected and consuming afterwards."""
    broker = configured_broker
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url + f"?heartbeat={HEARTBEAT_S}", "--queue", queue_name, dot_seconds=1.0)
    worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["long" + "." * TASK_S])

    ledger = wait_for_ledger(ids, confirmed, [worker], timeout=120)
    ledger.assert_nothing_lost()
    assert [(line["outcome"], line["attempt"]) for line in ledger.outcomes] == [("acked", 1)]
    assert ledger.outcomes[0]["duration_s"] >= TASK_S
    assert worker.metric("workfleet_worker_reconnects_total") == 0
    assert worker.metric("workfleet_worker_late_acks_dropped_total") == 0
    assert worker.metric("workfleet_worker_connected") == 1
    ledger.assert_final(broker.amqp_url, topology)
