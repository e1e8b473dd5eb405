"""amqps://: the worker, the producer and the dead-letter tool verify the broker's certificate
against --amqp-ca-file and present a client certificate when the broker asks for one. Against a
real RabbitMQ whose TLS listener requires client certificates; certificates from a CA made here."""

import json
import subprocess
import sys
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest

from tests.support.broker import wait_until
from tests.support.tls_broker import TlsBroker, tls_rabbit_node
from workfleet_operator.local.rabbitmq import RabbitNode

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def tls_broker():
    with tls_rabbit_node() as broker:
        yield broker


def produce(broker: TlsBroker, queue: str, *flags: str, count: int = 1) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "workfleet-produce"), "--queue", queue, *flags, "--count", str(count), "."],
                          capture_output=True, text=True, timeout=60)


def tls_connections(node: RabbitNode) -> dict[str, bool]:
    """Client product -> whether its connection uses TLS, from the management API."""
    request = urllib.request.Request(f"{node.management_url}/api/connections")
    request.add_header("Authorization", "Basic " + b64encode(b"guest:guest").decode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return {connection["client_properties"].get("product"): connection["ssl"] for connection in json.load(response)}


def test_worker_and_producer_over_tls_with_a_client_certificate(tls_broker, queue_name, workers):
    worker = workers(tls_broker.url, "--queue", queue_name, *tls_broker.flags()[2:])
    worker.wait_ready()
    # The management API lists a connection once its first statistics arrive.
    wait_until(lambda: "workfleet-worker" in tls_connections(tls_broker.node), message="the worker's connection listed")
    assert tls_connections(tls_broker.node)["workfleet-worker"] is True, "over TLS"
    produced = produce(tls_broker, queue_name, *tls_broker.flags(), count=20)
    assert produced.returncode == 0, produced.stderr
    assert "published 20" in produced.stdout and "20 confirmed" in produced.stdout, produced.stdout
    worker.wait_for_metric("workfleet_worker_messages_acked_total", lambda value: value == 20)


def test_the_dead_letter_tool_over_tls(tls_broker, queue_name):
    produced = produce(tls_broker, queue_name, *tls_broker.flags())  # declares the queue and its dead-letter queue
    assert produced.returncode == 0, produced.stderr
    listed = subprocess.run([str(BIN / "workfleet"), "dlq", "list", "--queue", queue_name, *tls_broker.flags()],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert f"0 message(s) in {queue_name}.dlq" in listed.stdout, listed.stdout


@pytest.mark.parametrize("ca, client, why", [
    (False, True, "CERTIFICATE_VERIFY_FAILED"),  # the system's CAs do not know the broker's
    (True, False, "certificate required"),  # the broker asks for a client certificate
])
def test_a_connection_that_cannot_be_verified_or_identified_is_refused(tls_broker, queue_name, ca, client, why):
    produced = produce(tls_broker, queue_name, *tls_broker.flags(ca=ca, client=client))
    assert produced.returncode == 1
    assert "nothing was sent" in produced.stderr and why in produced.stderr, produced.stderr


def test_a_worker_that_cannot_verify_the_broker_exits_saying_how_to_fix_it(tls_broker, queue_name, workers):
    """A configuration error, as bad settings are: no reconnect would make the certificate verify."""
    worker = workers(tls_broker.url, "--queue", queue_name)
    assert worker.process.wait(timeout=60) == 2
    log = worker.log_path.read_text()
    assert "cannot verify the broker's certificate (self-signed certificate in certificate chain)" in log, log[-2000:]
    assert "--amqp-ca-file" in log
