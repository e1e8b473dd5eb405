"""A memory alarm blocks publishers; consumers keep draining; nothing is lost."""

import threading

from tests.support.broker import declare, publish, queue_depth, wait_until
from tests.support.ledger import wait_for_ledger
from workfleet_common.amqp import connection_parameters
from workfleet_common.topology import Topology
from workfleet_producer import ConfirmedPublisher, OutgoingMessage, Outcome


def memory_alarm_on(node) -> bool:
    # Asked of the node itself: the management API's view lags by seconds.
    return "memory" in node.ctl("eval", "rabbit_alarm:get_alarms().")


def test_memory_alarm_blocks_publishers_not_consumers(own_broker, queue_name, workers):
    """The broker raises a memory alarm (a tiny vm_memory_high_watermark). Pass: a
    publish returns within its timeout instead of hanging, with nothing reported
    confirmed that was not stored; a worker drains the messages queued before the
    alarm on its own connection while the alarm lasts; after the alarm clears,
    every confirmed message is acked and nothing unexpected appears."""
    node = own_broker
    topology = Topology(queue_name)
    declare(node.amqp_url, topology)
    before_ids, before_confirmed = publish(node.amqp_url, queue_name, [f"before {index}." for index in range(20)])
    assert before_confirmed == set(before_ids)

    node.ctl("set_vm_memory_high_watermark", "0.000001")
    wait_until(lambda: memory_alarm_on(node), timeout=60, message="memory alarm")
    worker = workers(node.amqp_url, "--queue", queue_name, dot_seconds=0.01)
    wait_for_ledger(before_ids, before_confirmed, [worker]).assert_nothing_lost()
    assert memory_alarm_on(node), "the worker must have drained while the alarm was on"

    messages = [OutgoingMessage(f"during {index}.".encode()) for index in range(50)]
    publisher = ConfirmedPublisher(connection_parameters(node.amqp_url, "test"), "", queue_name, confirm_timeout=3.0)
    results = []
    publishing = threading.Thread(target=lambda: results.extend(publisher.publish(messages)), daemon=True)
    publishing.start()
    publishing.join(timeout=60)
    assert not publishing.is_alive(), "publish() hangs while the broker blocks it"
    assert {result.outcome for result in results} <= {Outcome.CONFIRMED, Outcome.INDETERMINATE, Outcome.NOT_SENT}
    assert any(result.outcome is Outcome.INDETERMINATE for result in results)

    node.ctl("set_vm_memory_high_watermark", "0.4")
    wait_until(lambda: not memory_alarm_on(node), timeout=60, message="alarm cleared")
    during_confirmed = {result.message_id for result in results if result.outcome is Outcome.CONFIRMED}
    maybe_stored = {result.message_id for result in results if result.outcome is Outcome.INDETERMINATE}
    ledger = wait_for_ledger(before_ids + [m.message_id for m in messages], before_confirmed | during_confirmed, [worker])
    assert set(ledger.ids_with("acked")) <= set(before_ids) | during_confirmed | maybe_stored
    # An indeterminate publish may land after the alarm clears: let the worker settle it too.
    wait_until(lambda: queue_depth(node.amqp_url, queue_name)[0] == 0, message="queue drained")
    ledger = wait_for_ledger(before_ids + [m.message_id for m in messages], before_confirmed | during_confirmed, [worker])
    ledger.assert_final(node.amqp_url, topology)
