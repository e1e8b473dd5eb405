"""`workfleet dlq` against a real broker, with dead letters made by a real worker."""

import signal
import subprocess
import sys
from pathlib import Path

from tests.support.broker import declare, get_all, publish, queue_depth, wait_until
from tests.support.dead_letters import fail_into_dead_letter_queue
from workfleet_common import envelope
from workfleet_common.amqp import connection_parameters
from workfleet_common.topology import Topology
from workfleet_producer import ConfirmedPublisher, OutgoingMessage

WORKFLEET = Path(sys.executable).parent / "workfleet"


def dlq(amqp_url: str, queue: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    command = [WORKFLEET, "dlq", *args, "--amqp-url", amqp_url, "--queue", queue]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)


def fill_dead_letter_queue(broker, queue_name, workers, poison: list[str], malformed: bytes | None = None) -> tuple[list[str], str | None]:
    """Real dead letters: a worker fails the poison bodies twice and rejects the malformed one."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--task", "tests.support.tasks:poison_or_dots", "--max-attempts", "2")
    ids, confirmed = publish(broker.amqp_url, queue_name, poison + ["good."])
    assert confirmed == set(ids)
    malformed_id = None
    if malformed is not None:
        message = OutgoingMessage(malformed)
        ConfirmedPublisher(connection_parameters(broker.amqp_url, "test"), "", queue_name).publish([message])
        malformed_id = message.message_id
    expected = len(poison) + (malformed is not None)
    wait_until(lambda: queue_depth(broker.amqp_url, topology.dead_letter_queue)[0] == expected, message="dead letters")
    assert worker.terminate() == 0  # requeued messages must stay in the work queue for inspection
    return ids[: len(poison)], malformed_id


def test_list_show_requeue_and_purge(broker, queue_name, workers):
    """Pass: list shows the count and one row per dead letter with its reason, attempts
    and error, and leaves the queue as it was; show prints headers and body; an unknown
    id is an error; requeue by id and by reason moves exactly those messages to the
    work queue with the failure headers gone; purge refuses without a terminal or
    --yes, and with --yes empties the dead-letter queue."""
    poison_ids, malformed_id = fill_dead_letter_queue(
        broker, queue_name, workers, ["poison one", "poison two", "poison three"], malformed=b"\xff\xfe not utf-8"
    )
    dead_letter_queue = Topology(queue_name).dead_letter_queue

    listed = dlq(broker.amqp_url, queue_name, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == f"4 message(s) in {dead_letter_queue}"
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == set(poison_ids) | {malformed_id}
    for poison_id in poison_ids:
        assert rows[poison_id].split()[1:3] == ["max_attempts", "2"]
        assert rows[poison_id].endswith("RuntimeError: poisoned input")
    assert rows[malformed_id].split()[1:3] == ["malformed", "0"]
    assert "not UTF-8" in rows[malformed_id]
    assert queue_depth(broker.amqp_url, dead_letter_queue)[0] == 4, "list must not consume"

    shown = dlq(broker.amqp_url, queue_name, "show", poison_ids[0])
    assert shown.returncode == 0, shown.stderr
    assert f"message_id: {poison_ids[0]}" in shown.stdout
    assert f"  {envelope.REASON_HEADER}: max_attempts" in shown.stdout
    assert shown.stdout.rstrip().endswith("body:\npoison one")
    missing = dlq(broker.amqp_url, queue_name, "show", "no-such-id")
    assert missing.returncode == 1 and "no message 'no-such-id'" in missing.stderr

    by_id = dlq(broker.amqp_url, queue_name, "requeue", "--id", poison_ids[0])
    assert by_id.returncode == 0, by_id.stderr
    assert "requeued 1 of 4" in by_id.stdout
    by_reason = dlq(broker.amqp_url, queue_name, "requeue", "--reason", "malformed")
    assert "requeued 1 of 3" in by_reason.stdout
    back = get_all(broker.amqp_url, queue_name)
    assert sorted(properties.message_id for properties, _ in back) == sorted([poison_ids[0], malformed_id])
    for properties, body in back:
        assert not set(properties.headers or {}) & {envelope.ATTEMPTS_HEADER, envelope.REASON_HEADER, envelope.ERROR_HEADER}
        assert properties.delivery_mode == 2
    assert dict((p.message_id, b) for p, b in back)[poison_ids[0]] == b"poison one"

    unknown = dlq(broker.amqp_url, queue_name, "requeue", "--id", "no-such-id")
    assert unknown.returncode == 1 and "not in" in unknown.stderr

    refused = dlq(broker.amqp_url, queue_name, "purge")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert queue_depth(broker.amqp_url, dead_letter_queue)[0] == 2
    purged = dlq(broker.amqp_url, queue_name, "purge", "--yes")
    assert purged.returncode == 0 and "purged 2" in purged.stdout
    assert queue_depth(broker.amqp_url, dead_letter_queue)[0] == 0


def test_requeue_killed_midway_duplicates_but_never_loses(broker, queue_name, workers):
    """5,000 dead letters; `workfleet dlq requeue --all` is killed with SIGKILL once
    some hundreds are back. Pass: right after the kill every message is in the work
    queue or the dead-letter queue (at most one, the message in hand, in both); a
    second requeue finishes the job; in the end the work queue holds every id, with
    at most that one duplicate, and the dead-letter queue is empty."""
    count = 5000
    topology = Topology(queue_name)
    ids, worker = fail_into_dead_letter_queue(broker.amqp_url, queue_name, workers, [f"doomed {n}" for n in range(count)])
    assert worker.terminate() == 0

    command = [WORKFLEET, "dlq", "requeue", "--all", "--amqp-url", broker.amqp_url, "--queue", queue_name]
    requeue = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_until(lambda: queue_depth(broker.amqp_url, queue_name)[0] >= 300, timeout=60, message="a requeue under way")
    requeue.send_signal(signal.SIGKILL)
    requeue.wait()
    assert requeue.returncode == -signal.SIGKILL, "the requeue finished before the kill; the test tested nothing"

    def both_settled():
        # The broker returns the killed session's unacked messages once it sees the socket close.
        return queue_depth(broker.amqp_url, queue_name)[0] + queue_depth(broker.amqp_url, topology.dead_letter_queue)[0] >= count

    wait_until(both_settled, timeout=30, message="every message back in one of the queues")
    in_work = queue_depth(broker.amqp_url, queue_name)[0]
    in_dead = queue_depth(broker.amqp_url, topology.dead_letter_queue)[0]
    assert 300 <= in_work < count and count <= in_work + in_dead <= count + 1

    finish = dlq(broker.amqp_url, queue_name, "requeue", "--all")
    assert finish.returncode == 0, finish.stderr
    assert queue_depth(broker.amqp_url, topology.dead_letter_queue)[0] == 0
    requeued_ids = [properties.message_id for properties, _ in get_all(broker.amqp_url, queue_name)]
    assert set(requeued_ids) == set(ids)
    assert len(requeued_ids) - len(set(requeued_ids)) <= 1


def test_missing_queue_and_unreachable_broker_are_one_line_errors(broker, queue_name):
    """Pass: exit status 1 and one line naming the missing queue, or the broker's address."""
    missing = dlq(broker.amqp_url, queue_name, "list")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"error: queue '{queue_name}.dlq' does not exist: is '{queue_name}' the work queue's name?"
    )
    unreachable = dlq("amqp://guest:guest@127.0.0.1:1/%2F", queue_name, "list")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("error: cannot reach the broker at 127.0.0.1:1: ")
    assert len(unreachable.stderr.strip().splitlines()) == 1


def test_requeue_ends_while_workers_fail_the_messages_again(broker, queue_name, workers):
    """500 dead letters are requeued while a worker fails each of them again at once
    (--max-attempts 1), so they flow straight back into the dead-letter queue. Pass:
    the requeue looks at exactly the 500 that were there when it started and ends,
    instead of chasing the returning copies; nothing is lost."""
    count = 500
    topology = Topology(queue_name)
    ids, worker = fail_into_dead_letter_queue(broker.amqp_url, queue_name, workers, [f"fails again {n}" for n in range(count)])

    requeued = dlq(broker.amqp_url, queue_name, "requeue", "--all")
    assert requeued.returncode == 0, requeued.stderr
    assert f"requeued {count} of {count} " in requeued.stdout
    wait_until(lambda: queue_depth(broker.amqp_url, topology.dead_letter_queue)[0] == count, timeout=120, message="all failed again")
    assert worker.terminate() == 0
    assert {properties.message_id for properties, _ in get_all(broker.amqp_url, topology.dead_letter_queue)} == set(ids)
