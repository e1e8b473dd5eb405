"""A worker that starts before its broker waits for it instead of crash-looping."""

import urllib.error
import urllib.request

from tests.support.broker import declare, publish
from tests.support.ledger import wait_for_ledger
from workfleet_common.topology import Topology
from workfleet_operator.local.rabbitmq import RabbitNode


def probe(worker, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}{path}", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_worker_started_before_the_broker(workers, queue_name):
    """The broker is down when the worker starts. Pass: the process keeps running,
    live (/healthz 200) but not ready (/readyz 503) while it retries with backoff
    (several reconnect attempts counted, not a tight loop); once the broker is up it
    becomes ready by itself and completes a confirmed task."""
    node = RabbitNode()  # ports chosen, nothing listening yet
    try:
        worker = workers(node.amqp_url, "--queue", queue_name)
        worker.wait_for_metric("workfleet_worker_reconnects_total", lambda value: value >= 3, timeout=60)
        assert (probe(worker, "/healthz"), probe(worker, "/readyz")) == (200, 503)
        assert worker.metric("workfleet_worker_reconnects_total") < 30, "backoff must not be a tight loop"

        node.start()
        worker.wait_ready(timeout=120)
        assert probe(worker, "/readyz") == 200
        topology = Topology(queue_name)
        declare(node.amqp_url, topology)
        ids, confirmed = publish(node.amqp_url, queue_name, ["after the outage."])
        ledger = wait_for_ledger(ids, confirmed, [worker])
        assert worker.terminate() == 0
        ledger.assert_final(node.amqp_url, topology)
    finally:
        node.close()
