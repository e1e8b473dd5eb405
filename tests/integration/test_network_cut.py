"""A network cut between a worker and the broker, made by the test's TCP proxy."""

import threading

import pytest

from tests.support.broker import declare, get_all, publish
from tests.support.ledger import wait_for_ledger
from tests.support.tcp_proxy import TcpProxy
from workfleet_common.amqp import connection_parameters
from workfleet_common.topology import Topology
from workfleet_producer import ConfirmedPublisher, OutgoingMessage, Outcome

IN_FLIGHT = "workfleet_worker_messages_in_flight"
HEARTBEAT_S = 2


@pytest.fixture
def proxy(broker):
    proxy = TcpProxy(broker.amqp_port)
    yield proxy
    proxy.close()


@pytest.mark.parametrize("concurrency", ["1", "8"])
def test_worker_cut_off_mid_task(broker, proxy, queue_name, workers, concurrency):
    """Worker A, behind the proxy with a 2 s heartbeat, is cut off (no FIN) while its
    10 s task runs. Pass: the broker requeues the message after the heartbeat timeout
    and worker B (direct) completes it; A notices the dead connection, drops its
    stale ack without crashing (late ack counted, no acked line for it), and once
    the cut heals reconnects and is ready again. Nothing lost, no duplicate ack."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    cut_url = proxy.url(broker.amqp_url, broker.amqp_port) + f"?heartbeat={HEARTBEAT_S}"
    first = workers(cut_url, "--queue", queue_name, "--concurrency", concurrency, dot_seconds=1.0)
    first.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["cut mid-task" + "." * 10])
    first.wait_for_metric(IN_FLIGHT, lambda value: value == 1)

    proxy.blackhole()
    second = workers(broker.amqp_url, "--queue", queue_name, dot_seconds=0.01)
    ledger = wait_for_ledger(ids, confirmed, [first, second], timeout=120)
    ledger.assert_nothing_lost()
    assert ledger.ids_with("acked") == {ids[0]: 1}

    first.wait_for_metric("workfleet_worker_late_acks_dropped_total", lambda value: value == 1, timeout=60)
    proxy.heal()
    first.wait_ready(timeout=120)
    assert first.metric("workfleet_worker_reconnects_total") >= 1
    assert wait_for_ledger(ids, confirmed, [second]).ids_with("acked") == {ids[0]: 1}, "B must be the one that acked"
    assert first.terminate() == 0
    ledger.assert_final(broker.amqp_url, topology)


def test_producer_cut_off_mid_stream(broker, proxy, queue_name):
    """A producer publishing 30,000 messages through the proxy is cut off (no FIN)
    once 3,000 are settled. Pass: publish() returns within its confirm timeout plus
    a grace period instead of hanging; no message is reported confirmed that the
    queue lacks; the queue holds nothing beyond confirmed and indeterminate ones
    (never a not-sent one); and some messages are reported indeterminate."""
    declare(broker.amqp_url, Topology(queue_name))
    parameters = connection_parameters(proxy.url(broker.amqp_url, broker.amqp_port), "test")
    publisher = ConfirmedPublisher(parameters, "", queue_name, window=1000, confirm_timeout=3.0)
    messages = [OutgoingMessage(f"m{index}".encode()) for index in range(30_000)]

    def cut_after_3000(resolved, total):
        if resolved >= 3000:
            proxy.blackhole()

    outcome = []
    publishing = threading.Thread(
        target=lambda: outcome.append(publisher.publish(messages, progress=cut_after_3000)), daemon=True
    )
    publishing.start()
    publishing.join(timeout=60)
    assert not publishing.is_alive(), "publish() hangs after the cut"
    results = outcome[0]
    proxy.heal()
    by_outcome = {outcome: {r.message_id for r in results if r.outcome is outcome} for outcome in Outcome}
    queued = {properties.message_id for properties, _ in get_all(broker.amqp_url, queue_name)}

    assert len(by_outcome[Outcome.CONFIRMED]) >= 3000
    assert by_outcome[Outcome.INDETERMINATE], "the messages in flight at the cut are indeterminate"
    assert by_outcome[Outcome.CONFIRMED] <= queued, "a confirmed message is missing from the queue"
    assert queued <= by_outcome[Outcome.CONFIRMED] | by_outcome[Outcome.INDETERMINATE]
    assert not by_outcome[Outcome.NOT_SENT] & queued
