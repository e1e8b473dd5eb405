"""`--prefetch auto` (the default) on a real broker, judged by the workers' logs and metrics: it
rises for millisecond tasks, falls back to 1 for long ones, hands back what waits behind a long
task so another worker runs it, and still hands back its buffer on SIGTERM."""

import json
from pathlib import Path

from tests.support.broker import declare, publish
from tests.support.ledger import wait_for_ledger
from workfleet_common.logs import read_delivery_outcomes
from workfleet_common.topology import Topology

PREFETCH = "workfleet_worker_prefetch"
BUFFERED = "workfleet_worker_messages_buffered"
DOT_SECONDS = 0.002  # "." is a 2 ms task


def requeued(log_path: Path, reason: str) -> list[str]:
    """Ids the worker handed back unrun for this reason, in order."""
    ids = []
    for raw in log_path.read_text().splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if line.get("msg") == "requeued" and line.get("reason") == reason:
            ids.append(line["message_id"])
    return ids


def acked_by(log_path: Path) -> list[str]:
    return [line["message_id"] for line in read_delivery_outcomes(log_path) if line["outcome"] == "acked"]


def test_prefetch_rises_for_millisecond_tasks_and_returns_to_one_for_long_ones(broker, queue_name, workers):
    declare(broker.amqp_url, Topology(queue_name))
    worker = workers(broker.amqp_url, "--queue", queue_name, dot_seconds=DOT_SECONDS)
    worker.wait_ready()
    assert worker.metric(PREFETCH) == 1, "auto starts at the tutorial's prefetch"
    publish(broker.amqp_url, queue_name, ["."] * 3000)
    worker.wait_for_metric(PREFETCH, lambda value: value > 1, timeout=30)
    # Tasks of 0.2 s, four times the 50 ms budget.
    publish(broker.amqp_url, queue_name, ["." * 100] * 5)
    worker.wait_for_metric(PREFETCH, lambda value: value == 1, timeout=60)


def test_tasks_buffered_behind_a_long_one_are_run_by_another_worker(broker, queue_name, workers):
    """Two workers, a stream of 2 ms tasks with one 3 s task in it. The worker that takes the
    long task holds a buffer of short ones behind it; once the task passes the budget it hands
    them back, and the other worker runs every one of them. Nothing is lost, nothing runs twice,
    nothing reaches the dead-letter queue."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    fleet = [workers(broker.amqp_url, "--queue", queue_name, dot_seconds=DOT_SECONDS) for _ in range(2)]
    for worker in fleet:
        worker.wait_ready()
    bodies = ["."] * 400 + ["long" + "." * 1500] + ["."] * 400
    ids, confirmed = publish(broker.amqp_url, queue_name, bodies)
    ledger = wait_for_ledger(ids, confirmed, fleet)
    ledger.assert_final(broker.amqp_url, topology)

    long_id = ids[400]
    [long_worker] = [worker for worker in fleet if long_id in acked_by(worker.log_path)]
    [other] = [worker for worker in fleet if worker is not long_worker]
    handed_back = requeued(long_worker.log_path, "behind a long task")
    assert handed_back, "the long task's worker held short tasks behind it and handed them back"
    ran_by_other = set(acked_by(other.log_path))
    assert set(handed_back) <= ran_by_other, "every handed-back task was run by the other worker"
    assert not set(handed_back) & set(acked_by(long_worker.log_path)), "none waited for the long task"


def test_sigterm_with_a_full_buffer_runs_one_task_and_hands_back_the_rest(broker, queue_name, workers):
    """A worker with auto prefetch well above 1 gets SIGTERM: it finishes the task in hand, hands
    back its buffer unrun, and exits 0; a second worker completes them; each message runs once."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    first = workers(broker.amqp_url, "--queue", queue_name, dot_seconds=DOT_SECONDS)
    first.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["."] * 5000)
    first.wait_for_metric(BUFFERED, lambda value: value >= 5, timeout=30)
    assert first.terminate() == 0

    handed_back = requeued(first.log_path, "shutdown")
    assert len(handed_back) >= 5
    assert not set(handed_back) & set(acked_by(first.log_path)), "handed back unrun"
    second = workers(broker.amqp_url, "--queue", queue_name, dot_seconds=DOT_SECONDS)
    ledger = wait_for_ledger(ids, confirmed, [first, second])
    assert set(handed_back) <= set(acked_by(second.log_path))
    ledger.assert_final(broker.amqp_url, topology)
