"""A task far longer than the heartbeat interval, on a broker whose consumer timeout is above
the longest task, as docs/reliability.md tells users to set it: node-wide, or (RabbitMQ 3.12+)
by a policy on the work queue alone."""

import json

import pytest

from tests.support.broker import declare, node_with_consumer_timeout, publish, wait_until
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



SHORT_NODE_TIMEOUT_MS = 3_000  # stands in for a node-wide default shorter than the task


@pytest.fixture
def broker_with_short_consumer_timeout():
    with node_with_consumer_timeout(SHORT_NODE_TIMEOUT_MS) as node:
        yield node


def test_long_task_is_acked_through_its_queue_policy(broker_with_short_consumer_timeout, queue_name, workers):
    """A 6 s task on a node whose consumer_timeout is 3 s, with the work queue's policy (what the
    chart's definitions apply, from rabbitmq.longestTaskSeconds) allowing 10 s plus the margin:
    acked at its first attempt, no node-wide setting raised. Without the policy the same task
    loses its channel (the second half), which shows the node's timeout is real."""
    broker = broker_with_short_consumer_timeout
    if tuple(map(int, broker.management_get("/api/overview")["rabbitmq_version"].split(".")[:2])) < (3, 12):
        pytest.skip("queue consumer-timeout policies arrived in RabbitMQ 3.12; older brokers refuse them")
    topology = Topology(queue_name)
    policy = topology.work_queue_policy(longest_task_seconds=10)
    broker.ctl("set_policy", "--apply-to", policy["apply-to"], "--priority", str(policy["priority"]),
               policy["name"], policy["pattern"], json.dumps(policy["definition"]))
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, dot_seconds=1.0)
    worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["long......"])
    ledger = wait_for_ledger(ids, confirmed, [worker], timeout=120)
    assert [(line["outcome"], line["attempt"]) for line in ledger.outcomes] == [("acked", 1)]
    assert worker.metric("workfleet_worker_late_acks_dropped_total") == 0

    broker.ctl("clear_policy", policy["name"])
    publish(broker.amqp_url, queue_name, ["long......"])
    wait_until(lambda: worker.metric("workfleet_worker_late_acks_dropped_total") >= 1, timeout=60,
               message="the node's 3 s timeout closed the channel once the policy was gone")
