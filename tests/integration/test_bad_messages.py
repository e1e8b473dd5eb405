"""Poison tasks and undecodable messages go to the dead-letter queue; work goes on."""

import random
import subprocess
import sys
from pathlib import Path

import pika

from tests.support.ledger import wait_for_ledger
from tests.support.broker import declare, get_all, publish, queue_depth, wait_until
from workfleet_common import envelope
from workfleet_common.amqp import connection_parameters
from workfleet_common.topology import DELIVERY_LIMIT, Topology
from workfleet_producer import ConfirmedPublisher, OutgoingMessage, Outcome

POISON_TASK = "tests.support.tasks:poison_or_dots"


def test_poison_task_runs_max_attempts_then_is_dead_lettered(broker, queue_name, workers):
    """A task that always raises, among good ones, with --max-attempts 3.
    Pass: exactly 3 executions of the poison message, then it rests in
    <queue>.dlq with reason max_attempts and the last error; the good messages
    are acked; the work queue is empty.
    """
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--task", POISON_TASK, "--max-attempts", "3")
    bodies = ["good 1.", "poison pill", "good 2.", "good 3."]
    ids, confirmed = publish(broker.amqp_url, queue_name, bodies)
    poison_id = ids[1]

    ledger = wait_for_ledger(ids, confirmed, [worker])
    ledger.assert_nothing_lost()
    assert ledger.executions(poison_id) == 3
    assert ledger.ids_with("retried")[poison_id] == 2
    assert ledger.ids_with("dead_lettered") == {poison_id: 1}
    assert set(ledger.ids_with("acked")) == set(ids) - {poison_id}

    dead = get_all(broker.amqp_url, topology.dead_letter_queue)
    assert [properties.message_id for properties, _ in dead] == [poison_id]
    headers = dead[0][0].headers
    assert headers[envelope.REASON_HEADER] == "max_attempts"
    assert headers[envelope.ATTEMPTS_HEADER] == 3
    assert "poisoned input" in headers[envelope.ERROR_HEADER]
    assert dead[0][1] == b"poison pill"
    assert queue_depth(broker.amqp_url, queue_name)[0] == 0
    assert worker.process.poll() is None


def test_undecodable_messages_are_dead_lettered_on_first_sight(broker, queue_name, workers):
    """Invalid UTF-8 text, invalid JSON and a lying attempts header, then a good
    message. Pass: each bad one is dead-lettered at its first delivery with reason
    malformed (one outcome line, no task run); the good one is acked afterwards,
    so the worker kept running.
    """
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    worker = workers(broker.amqp_url, "--queue", queue_name, "--task", POISON_TASK)
    worker.wait_ready()
    bad = [
        ("bad-utf8", b"\xff\xfe not text", pika.BasicProperties(content_type="text/plain")),
        ("bad-json", b'{"unclosed": ', pika.BasicProperties(content_type="application/json")),
        ("bad-header", b"ok.", pika.BasicProperties(headers={envelope.ATTEMPTS_HEADER: "lots"})),
    ]
    with pika.BlockingConnection(pika.URLParameters(broker.amqp_url)) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for message_id, body, properties in bad:
            properties.message_id = message_id
            properties.delivery_mode = pika.DeliveryMode.Persistent.value
            channel.basic_publish("", queue_name, body, properties, mandatory=True)
    good_ids, confirmed = publish(broker.amqp_url, queue_name, ["good."])
    bad_ids = [message_id for message_id, _, _ in bad]

    ledger = wait_for_ledger(bad_ids + good_ids, set(bad_ids) | confirmed, [worker])
    ledger.assert_nothing_lost()
    assert ledger.ids_with("dead_lettered") == {message_id: 1 for message_id in bad_ids}
    assert all(ledger.executions(message_id) == 1 for message_id in bad_ids)
    assert ledger.ids_with("acked") == {good_ids[0]: 1}
    dead = {properties.message_id: properties.headers for properties, _ in get_all(broker.amqp_url, topology.dead_letter_queue)}
    assert set(dead) == set(bad_ids)
    assert all(headers[envelope.REASON_HEADER] == "malformed" for headers in dead.values())
    assert "UTF-8" in dead["bad-utf8"][envelope.ERROR_HEADER]
    assert "JSON" in dead["bad-json"][envelope.ERROR_HEADER]
    assert envelope.ATTEMPTS_HEADER in dead["bad-header"][envelope.ERROR_HEADER]
    assert worker.process.poll() is None


def test_poison_and_malformed_among_good_under_load(broker, queue_name, workers):
    """Three workers drain 1,000 messages: 950 good, 30 poison (always raise) and 20
    with invalid UTF-8 bodies, shuffled, with --max-attempts 3. Pass: every good one
    is acked exactly once; every poison one is executed exactly 3 times and rests in
    the dead-letter queue once; every malformed one is dead-lettered at its first
    delivery; the dead-letter queue holds exactly those 50; no worker crashed."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    fleet = [
        workers(broker.amqp_url, "--queue", queue_name, "--task", POISON_TASK, "--max-attempts", "3", dot_seconds=0.001)
        for _ in range(3)
    ]
    bodies = [f"good {index}." for index in range(950)] + [f"poison {index}" for index in range(30)]
    random.Random(7).shuffle(bodies)
    ids, confirmed = publish(broker.amqp_url, queue_name, bodies)
    malformed = [OutgoingMessage(b"\xff\xfe not text " + bytes([index])) for index in range(20)]
    results = ConfirmedPublisher(connection_parameters(broker.amqp_url, "test"), "", queue_name).publish(malformed)
    malformed_ids = {result.message_id for result in results if result.outcome is Outcome.CONFIRMED}
    assert len(malformed_ids) == 20 and confirmed == set(ids)

    all_ids = ids + sorted(malformed_ids)
    ledger = wait_for_ledger(all_ids, set(all_ids), fleet, timeout=180)
    poison_ids = {message_id for message_id, body in zip(ids, bodies) if body.startswith("poison")}
    assert all(ledger.executions(message_id) == 3 for message_id in poison_ids)
    assert all(ledger.executions(message_id) == 1 for message_id in malformed_ids)
    assert all(worker.process.poll() is None for worker in fleet)
    ledger.assert_final(broker.amqp_url, topology, dead_lettered=poison_ids | malformed_ids, max_executions=3)


def test_task_that_kills_its_worker_is_quarantined_by_the_delivery_limit(broker, queue_name, workers):
    """A task kills its worker process for one message (os._exit, as an out-of-memory
    kill would), so the worker never counts that attempt; a supervisor restarts the
    worker each time, as a Deployment does. Pass: after DELIVERY_LIMIT returns the
    broker dead-letters the message into <queue>.dlq by itself, with reason
    delivery_limit (which `workfleet dlq` reports); the good messages behind it are
    then acked; the work queue ends empty."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    ids, confirmed = publish(broker.amqp_url, queue_name, ["crash the worker"] + [f"good {index}." for index in range(5)])
    crash_id, good_ids = ids[0], ids[1:]

    def quarantined() -> bool:
        return queue_depth(broker.amqp_url, topology.dead_letter_queue)[0] == 1

    fleet = []
    while not quarantined():
        assert len(fleet) <= DELIVERY_LIMIT + 2, "the broker never dead-lettered the crashing message"
        worker = workers(broker.amqp_url, "--queue", queue_name, "--task", "tests.support.tasks:crash_or_dots")
        fleet.append(worker)
        wait_until(lambda: worker.process.poll() is not None or quarantined(), timeout=60, message="a crash")
    assert len(fleet) >= DELIVERY_LIMIT
    if fleet[-1].process.poll() is not None:
        fleet.append(workers(broker.amqp_url, "--queue", queue_name, "--task", "tests.support.tasks:crash_or_dots"))

    ledger = wait_for_ledger(good_ids, set(good_ids), fleet)
    assert set(ledger.ids_with("acked")) == set(good_ids) and crash_id not in ledger.settled
    assert queue_depth(broker.amqp_url, queue_name)[0] == 0
    listed = subprocess.run(
        [Path(sys.executable).parent / "workfleet", "dlq", "list", "--amqp-url", broker.amqp_url, "--queue", queue_name],
        capture_output=True, text=True, timeout=60,
    )
    assert listed.stdout.splitlines()[2].split()[:2] == [crash_id, "delivery_limit"], listed.stdout
    dead = get_all(broker.amqp_url, topology.dead_letter_queue)
    assert [properties.message_id for properties, _ in dead] == [crash_id]
