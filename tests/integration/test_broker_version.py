"""The run tests the broker it was asked for: a RabbitMQ 4 run that silently got the host's 3.10
(or the reverse) would pass for coverage it does not give. And what differs between them that
workfleet relies on (docs/reliability.md, RabbitMQ 3.10 and 4)."""

import subprocess
import time

import pika

from workfleet_common.topology import Topology

def host_package_version() -> str:
    """The upstream part of the installed Debian package's version: 3.10.8 from 3.10.8-1.1."""
    shown = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.split("-")[0]


def test_the_node_runs_the_requested_rabbitmq(broker, request):
    running = broker.management_get("/api/overview")["rabbitmq_version"]
    if request.config.getoption("--rabbitmq") == "4":
        assert running.split(".")[0] == "4", f"asked for RabbitMQ 4, the node runs {running}"
    else:
        assert running == host_package_version(), f"asked for the host's package, the node runs {running}"


def returns_until_dead_lettered(amqp_url: str, queue: str, most: int = 30) -> int | None:
    """Requeue one message (nack) until the queue dead-letters it; the returns it took, or None if
    it was still coming back after `most`."""
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        channel.exchange_declare(f"{queue}.dlx", "direct", durable=True)
        channel.queue_declare(f"{queue}.dlq", durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(f"{queue}.dlq", f"{queue}.dlx", routing_key=queue)
        # A quorum queue as a tutorial or another client might declare it: no x-delivery-limit.
        channel.queue_declare(queue, durable=True, arguments={
            "x-queue-type": "quorum", "x-dead-letter-exchange": f"{queue}.dlx", "x-dead-letter-routing-key": queue})
        channel.basic_publish("", queue, b"again")
        returns = 0
        while returns < most:
            method, _, _ = channel.basic_get(queue)
            if method is not None:
                channel.basic_nack(method.delivery_tag, requeue=True)
                returns += 1
            elif channel.queue_declare(f"{queue}.dlq", passive=True).method.message_count == 1:
                return returns
            else:
                time.sleep(0.05)
        return None


def test_quorum_queues_without_a_delivery_limit_get_the_brokers_default(broker, queue_name, request):
    """RabbitMQ 4 dead-letters a message after 20 returns even when its queue sets no limit; 3.10
    requeues it forever. workfleet declares 20 itself, so its backstop is the same on both."""
    returns = returns_until_dead_lettered(broker.amqp_url, queue_name)
    if request.config.getoption("--rabbitmq") == "4":
        assert returns is not None and 20 <= returns <= 21, returns
    else:
        assert returns is None
    assert Topology(queue_name).work_queue_arguments()["x-delivery-limit"] == 20
