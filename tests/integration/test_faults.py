"""Worker and broker faults on a real broker, each judged by the ledger."""

import time

import pytest

from tests.support.ledger import wait_for_ledger
from tests.support.broker import declare, publish, queue_depth, wait_until
from workfleet_common.topology import Topology

IN_FLIGHT = "workfleet_worker_messages_in_flight"

# RabbitMQ 3.10 writes queue declarations to its Mnesia metadata store lazily: a
# kill -9 within about a second of declaring can forget the queue, and the
# workers' redeclare then creates a new, empty one (seen here: declare, 100
# confirmed, kill -9 at once: queue recreated empty; 6 s later: all 100 survive).
# That is the broker's window, not ours, so the fault comes after it.
METADATA_SETTLE_S = 6.0


def test_worker_sigkill_mid_task_is_redelivered(broker, queue_name, workers):
    """Worker A is SIGKILLed while its task runs. Pass: the broker redelivers the
    task to worker B, which completes it; nothing lost; queue empty.
    """
    declare(broker.amqp_url, Topology(queue_name))
    first = workers(broker.amqp_url, "--queue", queue_name, dot_seconds=1.0)
    first.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["long task" + "." * 30])
    first.wait_for_metric(IN_FLIGHT, lambda value: value == 1)
    first.kill()

    second = workers(broker.amqp_url, "--queue", queue_name, dot_seconds=0.01)
    ledger = wait_for_ledger(ids, confirmed, [first, second])
    ledger.assert_nothing_lost()
    assert ledger.executions(ids[0]) == 1, "only the second worker can have logged an outcome"
    assert queue_depth(broker.amqp_url, queue_name)[0] == 0
    assert second.terminate() == 0


def test_worker_sigterm_mid_task_finishes_and_acks(broker, queue_name, workers):
    """Worker A gets SIGTERM while its task runs, with a second message waiting.
    Pass: A finishes the task in hand, acks it and exits 0; that task runs once;
    the waiting message is left for worker B, which completes it; nothing lost.
    """
    declare(broker.amqp_url, Topology(queue_name))
    first = workers(broker.amqp_url, "--queue", queue_name, dot_seconds=0.1)
    first.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["in hand" + "." * 20, "waiting."])
    first.wait_for_metric(IN_FLIGHT, lambda value: value == 1)
    assert first.terminate() == 0

    second = workers(broker.amqp_url, "--queue", queue_name, dot_seconds=0.01)
    ledger = wait_for_ledger(ids, confirmed, [first, second])
    ledger.assert_nothing_lost()
    first_ledger = wait_for_ledger(ids[:1], ids[:1], [first], timeout=1)
    assert first_ledger.ids_with("acked") == {ids[0]: 1}, "A must ack the task it had in hand"
    assert ledger.executions(ids[0]) == 1, "the task in hand must not be redelivered"
    assert ids[1] not in first_ledger.ids_with("acked"), "A must not take new work while draining"
    assert queue_depth(broker.amqp_url, queue_name)[0] == 0


@pytest.mark.parametrize("hard", [False, True], ids=["clean-restart", "kill-9"])
def test_broker_restart_loses_no_confirmed_message(own_broker, queue_name, workers, hard):
    """The broker restarts (cleanly, or kill -9) while two workers drain 200
    confirmed persistent messages. Pass: the workers reconnect by themselves and
    every confirmed id is acked; duplicates only among what was in flight (at most
    one per worker); queue empty.
    """
    declare(own_broker.amqp_url, Topology(queue_name))
    time.sleep(METADATA_SETTLE_S)
    fleet = [workers(own_broker.amqp_url, "--queue", queue_name, dot_seconds=0.02) for _ in range(2)]
    for worker in fleet:
        worker.wait_ready()
    ids, confirmed = publish(own_broker.amqp_url, queue_name, [f"task {index}." for index in range(200)])
    assert confirmed == set(ids)
    wait_until(lambda: queue_depth(own_broker.amqp_url, queue_name)[0] < 150, message="work under way")

    own_broker.restart(hard=hard)

    ledger = wait_for_ledger(ids, confirmed, fleet, timeout=180)
    ledger.assert_nothing_lost(max_duplicates=len(fleet))
    for worker in fleet:
        assert worker.metric("workfleet_worker_reconnects_total") >= 1
    assert queue_depth(own_broker.amqp_url, queue_name)[0] == 0
