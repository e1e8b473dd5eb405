"""Acks of short tasks go out together (settling.py), but never wait behind a long task: once the
running task passes the keeper's check, the acks of the tasks before it are sent. Judged by what
the worker has acked while the long task still runs, read from its metrics and outcome lines."""

import pytest

from tests.support.broker import declare, publish
from workfleet_common.logs import read_delivery_outcomes
from workfleet_common.topology import Topology

ACKED = "workfleet_worker_messages_acked_total"
IN_FLIGHT = "workfleet_worker_messages_in_flight"


@pytest.mark.parametrize("first", ["x", "."], ids=["instant-task-keeper-sends-at-long-task", "2ms-task-sent-during-next"])
def test_a_finished_tasks_ack_does_not_wait_for_the_long_task_after_it(broker, queue_name, workers, first):
    """Prefetch 8 acks in batches of 2, so the first task's ack waits for a second task: the long
    one. After an instant task the keeper sends it once the long task has run half a second; after
    a task of a millisecond or more it sends it as soon as the long task starts."""
    declare(broker.amqp_url, Topology(queue_name))
    worker = workers(broker.amqp_url, "--queue", queue_name, "--prefetch", "8", dot_seconds=0.002)
    worker.wait_ready()
    ids, _ = publish(broker.amqp_url, queue_name, [first, "long" + "." * 4000])  # then an 8 s task

    worker.wait_for_metric(ACKED, lambda value: value >= 1, timeout=30)
    outcomes = read_delivery_outcomes(worker.log_path)
    assert [line["message_id"] for line in outcomes] == [ids[0]], "the short task is acked, the long one still runs"
    assert worker.metric(IN_FLIGHT) == 1, "only the long task is still held"

    worker.wait_for_metric(ACKED, lambda value: value == 2, timeout=60)
    assert [line["message_id"] for line in read_delivery_outcomes(worker.log_path)] == ids
