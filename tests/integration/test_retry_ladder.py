"""Retries that wait (issue 12): a failed attempt's copy waits in the retry queue of its delay, and
the broker returns it to the work queue when the delay is over. Judged by the ledger and by the
workers' own outcome lines (their timestamps, and the attempt each line is for)."""

import time

import pika

from tests.support.broker import declare, publish, queue_depth, wait_until
from tests.support.ledger import wait_for_ledger
from workfleet_common.logs import read_delivery_outcomes
from workfleet_common.topology import Topology

# How early an attempt may seem to start, by the outcome lines. The gap is measured from the end of
# the failed attempt (its started_at plus duration_s), which comes before the copy enters its retry
# queue and the broker's TTL starts; so only rounding is left: the broker keeps times in
# milliseconds. (Measured from the retried line's own timestamp, the gap came out 50 ms short in
# CI: that line is written when the ack is flushed, which can be well after the copy was published.)
EARLY_S = 0.002
# How late: the broker expires messages from the head of a queue on a timer, then delivers.
LATE_S = 3.0
# A kill -9 within about a second of a queue's first declare can lose what was confirmed into it
# (test_faults.py): the broker's window, not ours, so the fault comes after it.
METADATA_SETTLE_S = 6.0


def attempts_by_id(workers) -> dict[str, list[dict]]:
    lines = [line for worker in workers for line in read_delivery_outcomes(worker.log_path)]
    by_id: dict[str, list[dict]] = {}
    for line in sorted(lines, key=lambda line: (line["message_id"], line["attempt"])):
        by_id.setdefault(line["message_id"], []).append(line)
    return by_id


def assert_waits(attempts: list[dict], expected_waits_s: list[float]) -> None:
    """Attempt n + 1 ran the n-th wait after attempt n failed."""
    assert [line["attempt"] for line in attempts] == list(range(1, len(expected_waits_s) + 2)), attempts
    for before, after, wait in zip(attempts, attempts[1:], expected_waits_s):
        gap = after["started_at"] - (before["started_at"] + before["duration_s"])
        assert wait - EARLY_S <= gap <= wait + LATE_S, f"attempt {after['attempt']} ran {gap:.3f} s after a failure, not {wait} s"


def test_failed_attempts_wait_their_delay_then_succeed_or_dead_letter(broker, queue_name, workers):
    """Ladder 1s,2s: a task failing twice waits 1 s then 2 s and is acked at attempt 3; one that
    always fails waits 1 s, 2 s, 2 s (the last delay repeats) and is dead-lettered at attempt 4."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--task", "tests.support.tasks:fail_first",
                     "--retry-delays", "1s,2s", "--max-attempts", "4")
    worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, ["fail 2", "fail always", "fail 0"])
    ledger = wait_for_ledger(ids, confirmed, [worker], timeout=60)
    ledger.assert_final(broker.amqp_url, topology, dead_lettered={ids[1]}, max_executions=4)

    attempts = attempts_by_id([worker])
    assert [line["outcome"] for line in attempts[ids[0]]] == ["retried", "retried", "acked"]
    assert_waits(attempts[ids[0]], [1, 2])
    assert [line["outcome"] for line in attempts[ids[1]]] == ["retried"] * 3 + ["dead_lettered"]
    assert_waits(attempts[ids[1]], [1, 2, 2])
    assert [line["outcome"] for line in attempts[ids[2]]] == ["acked"]
    for delay in ("1s", "2s"):
        assert queue_depth(broker.amqp_url, f"{queue_name}.retry.{delay}")[0] == 0


def test_an_outage_shorter_than_the_ladder_loses_and_dead_letters_nothing(broker, queue_name, workers):
    """Every task fails while its downstream is down for 20 s. With a ladder of 2s,5s,10s (waits
    2, 7, 17, 27 s after the first failure) and 6 attempts, every message is acked in the end."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    outage = {"WORKFLEET_TEST_OUTAGE_UNTIL": str(time.time() + 20)}
    fleet = [workers(broker.amqp_url, "--queue", queue_name, "--task", "tests.support.tasks:outage_until",
                     "--retry-delays", "2s,5s,10s", "--max-attempts", "6", env=outage) for _ in range(2)]
    for worker in fleet:
        worker.wait_ready()
    ids, confirmed = publish(broker.amqp_url, queue_name, [f"call {index}" for index in range(200)])
    ledger = wait_for_ledger(ids, confirmed, fleet, timeout=120)
    ledger.assert_final(broker.amqp_url, topology, max_executions=6)
    assert len(ledger.ids_with("retried")) == len(ids), "every message met the outage"


def test_broker_kill_9_while_retries_wait_loses_nothing(own_broker, queue_name, workers):
    """300 failed attempts wait in the 8 s retry queue when the broker is killed with SIGKILL and
    started again: every one comes back to the work queue and is acked."""
    topology = Topology(queue_name)
    declare(own_broker.amqp_url, topology)
    worker = workers(own_broker.amqp_url, "--queue", queue_name, "--task", "tests.support.tasks:fail_first",
                     "--retry-delays", "8s")
    worker.wait_ready()
    time.sleep(METADATA_SETTLE_S)  # the worker has just declared the retry queue
    ids, confirmed = publish(own_broker.amqp_url, queue_name, [f"fail 1 #{index}" for index in range(300)])
    assert confirmed == set(ids)
    retry_queue = f"{queue_name}.retry.8s"
    wait_until(lambda: queue_depth(own_broker.amqp_url, retry_queue)[0] == len(ids), timeout=30,
               message="every first attempt failed and waits")

    own_broker.restart(hard=True)

    ledger = wait_for_ledger(ids, confirmed, [worker], timeout=120)
    ledger.assert_final(own_broker.amqp_url, topology, max_executions=2, max_duplicates=1)
    assert queue_depth(own_broker.amqp_url, retry_queue)[0] == 0


def test_a_new_ladder_takes_effect_on_restart_and_messages_waiting_on_the_old_one_come_back(
        broker, queue_name, workers):
    """Workers on ladder 6s leave 50 failed attempts waiting in <queue>.retry.6s; they are replaced
    by workers on ladder 1s. No queue is deleted or redeclared differently: the old retry queue
    still returns its messages, new failures wait in <queue>.retry.1s, and everything is acked."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    options = ("--queue", queue_name, "--task", "tests.support.tasks:fail_first")
    old = workers(broker.amqp_url, *options, "--retry-delays", "6s")
    old.wait_ready()
    first_ids, first_confirmed = publish(broker.amqp_url, queue_name, [f"fail 1 #{index}" for index in range(50)])
    wait_until(lambda: queue_depth(broker.amqp_url, f"{queue_name}.retry.6s")[0] == 50, timeout=30,
               message="the first 50 wait on the old ladder")
    assert old.terminate() == 0

    new = workers(broker.amqp_url, *options, "--retry-delays", "1s")
    new.wait_ready()
    second_ids, second_confirmed = publish(broker.amqp_url, queue_name, [f"fail 1 @{index}" for index in range(50)])
    ids, confirmed = first_ids + second_ids, first_confirmed | second_confirmed
    ledger = wait_for_ledger(ids, confirmed, [old, new], timeout=60)
    ledger.assert_final(broker.amqp_url, topology, max_executions=2)

    attempts = attempts_by_id([old, new])
    for message_id in first_ids:
        assert_waits(attempts[message_id], [6])
    for message_id in second_ids:
        assert_waits(attempts[message_id], [1])


def test_a_retry_or_dead_letter_queue_deleted_under_a_running_worker_is_declared_again(broker, queue_name, workers):
    """The README says a retry queue no delay uses can be deleted; one still in use deleted by
    mistake, and the dead-letter queue, are declared again by the worker when a copy finds no
    queue, and the copy goes there: each message runs once per attempt, none is handed back."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--task", "tests.support.tasks:fail_first",
                     "--retry-delays", "1s", "--max-attempts", "3")
    worker.wait_ready()
    with pika.BlockingConnection(pika.URLParameters(broker.amqp_url)) as connection:
        channel = connection.channel()
        channel.queue_delete(topology.retry_queue(1000))
        channel.queue_delete(topology.dead_letter_queue)

    ids, confirmed = publish(broker.amqp_url, queue_name, ["fail 1", "fail always"])
    ledger = wait_for_ledger(ids, confirmed, [worker], timeout=60)
    ledger.assert_final(broker.amqp_url, topology, dead_lettered={ids[1]}, max_executions=3)
    attempts = attempts_by_id([worker])
    assert [line["outcome"] for line in attempts[ids[0]]] == ["retried", "acked"]
    assert [line["outcome"] for line in attempts[ids[1]]] == ["retried", "retried", "dead_lettered"]
    assert worker.metric("workfleet_worker_messages_requeued_total") == 0
