"""The work queue's policy (Topology.work_queue_policy; the chart's definitions and `workfleet up`
apply it): the delivery limit changes on a running queue, and the broker's own dead-lettering is at
least once, through a kill -9. A test client that keeps returning messages stands in for workers
that crash on them: it reaches the delivery limit in seconds instead of 20 worker restarts."""

import json
import threading
import time

import pika
import pika.exceptions

from tests.support.broker import declare, get_all, publish, queue_depth, wait_until
from workfleet_common.topology import DELIVERY_LIMIT, Topology

# A kill -9 within about a second of a queue's first declare can lose what was confirmed into it
# (test_faults.py): the broker's window, not ours.
METADATA_SETTLE_S = 6.0


def apply_policy(broker, topology: Topology, delivery_limit: int) -> None:
    policy = topology.work_queue_policy(longest_task_seconds=None, delivery_limit=delivery_limit)
    broker.ctl("set_policy", "--apply-to", policy["apply-to"], "--priority", str(policy["priority"]),
               policy["name"], policy["pattern"], json.dumps(policy["definition"]))


def wait_for_effective_policy(broker, topology: Topology, delivery_limit: int) -> None:
    def applied() -> bool:
        queue = broker.management_get(f"/api/queues/%2F/{topology.queue}")
        return queue.get("effective_policy_definition", {}).get("delivery-limit") == delivery_limit
    wait_until(applied, timeout=30, message=f"the policy's delivery limit {delivery_limit} in effect")


def returns_until_dead_lettered(amqp_url: str, queue: str, most: int) -> int | None:
    """Take the queue's one message and return it to the queue (basic.reject, requeue) until the
    broker dead-letters it; how many returns that took, or None if it was still there after `most`."""
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        for returns in range(most + 1):
            method = None
            deadline = time.monotonic() + 10
            while method is None and time.monotonic() < deadline:
                method, _, _ = channel.basic_get(queue)
                if method is None and queue_depth(amqp_url, queue)[0] == 0:
                    return returns  # gone from the queue: dead-lettered
            assert method is not None, "the message neither came back nor left"
            if returns == most:
                channel.basic_nack(method.delivery_tag, requeue=True)
                return None
            channel.basic_reject(method.delivery_tag, requeue=True)
    return None


def test_the_delivery_limit_changes_on_the_running_queue(broker, queue_name):
    """A message survives 4 returns under the limit of 20. Lowered to 2 by the policy, the limit
    dead-letters it at its next return, and a new message at its third; set back to 20, a message
    survives 5 returns. The queue is never deleted or redeclared."""
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    apply_policy(broker, topology, DELIVERY_LIMIT)
    wait_for_effective_policy(broker, topology, DELIVERY_LIMIT)
    publish(broker.amqp_url, queue_name, ["returned often"])
    assert returns_until_dead_lettered(broker.amqp_url, queue_name, most=4) is None, "20 allows 4 returns"

    apply_policy(broker, topology, 2)
    wait_for_effective_policy(broker, topology, 2)
    assert returns_until_dead_lettered(broker.amqp_url, queue_name, most=10) == 1, "4 returns are over 2 already"
    publish(broker.amqp_url, queue_name, ["returned under the new limit"])
    assert returns_until_dead_lettered(broker.amqp_url, queue_name, most=10) == 3, "dead-lettered past 2"
    dead = get_all(broker.amqp_url, topology.dead_letter_queue)
    assert [body for _, body in dead] == [b"returned often", b"returned under the new limit"]
    for properties, _ in dead:
        assert properties.headers.get("x-first-death-reason") == "delivery_limit"

    apply_policy(broker, topology, DELIVERY_LIMIT)
    wait_for_effective_policy(broker, topology, DELIVERY_LIMIT)
    publish(broker.amqp_url, queue_name, ["returned again"])
    assert returns_until_dead_lettered(broker.amqp_url, queue_name, most=5) is None


def test_broker_kill_9_during_delivery_limit_dead_lettering_loses_nothing(own_broker, queue_name):
    """3,000 messages are returned past a delivery limit of 1 by a client that rejects everything,
    so the broker dead-letters them all; it is killed with SIGKILL in the middle. After the restart
    every message is in the work queue or the dead-letter queue: at-least-once dead-lettering keeps
    a message in the work queue until the dead-letter queue has confirmed it."""
    topology = Topology(queue_name)
    declare(own_broker.amqp_url, topology)
    apply_policy(own_broker, topology, 1)
    wait_for_effective_policy(own_broker, topology, 1)
    queue = own_broker.management_get(f"/api/queues/%2F/{queue_name}")
    assert queue["effective_policy_definition"]["dead-letter-strategy"] == "at-least-once"
    time.sleep(METADATA_SETTLE_S)
    ids, confirmed = publish(own_broker.amqp_url, queue_name, [f"returned #{index}" for index in range(3000)])
    assert confirmed == set(ids)

    stop = threading.Event()

    def reject_everything() -> None:
        try:
            with pika.BlockingConnection(pika.URLParameters(own_broker.amqp_url)) as connection:
                channel = connection.channel()
                channel.basic_qos(prefetch_count=200)
                for method, _, _ in channel.consume(queue_name, inactivity_timeout=0.5):
                    if stop.is_set():
                        return
                    if method is not None:
                        channel.basic_reject(method.delivery_tag, requeue=True)
        except pika.exceptions.AMQPError:
            pass  # the broker was killed

    rejecter = threading.Thread(target=reject_everything, daemon=True)
    rejecter.start()
    wait_until(lambda: queue_depth(own_broker.amqp_url, topology.dead_letter_queue)[0] >= 300, timeout=60,
               message="dead-lettering under way")
    own_broker.restart(hard=True)
    stop.set()
    rejecter.join(timeout=30)

    def dead_lettering_settled() -> bool:
        # messages_dlx: dead-lettered by the work queue, not yet confirmed by the dead-letter queue.
        stats = own_broker.management_get(f"/api/queues/%2F/{queue_name}")
        return stats.get("messages_dlx", 0) == 0 and stats.get("messages_unacknowledged", 0) == 0 and "messages" in stats
    wait_until(dead_lettering_settled, timeout=120, interval=1, message="no dead-lettering pending after the restart")
    found = {properties.message_id for queue in (queue_name, topology.dead_letter_queue)
             for properties, _ in get_all(own_broker.amqp_url, queue)}
    assert found == set(ids), f"lost {len(set(ids) - found)} of {len(ids)}"
