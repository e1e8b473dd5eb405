"""`helm test` publishes a task and waits until a worker acks it. The hook's script runs here
against a real broker and a real worker, as the read-only monitoring user the chart gives it;
tests/cluster runs the hook itself on a node."""

import subprocess
import sys
import uuid

import pytest

from tests.chart.test_render import CHART, render
from tests.support.broker import declare
from workfleet_common.topology import Topology

SCRIPT = CHART / "files" / "helm-test" / "publish_and_wait.py"


@pytest.fixture
def monitor(broker):
    """A user like the chart's operator user: the monitoring tag and empty permissions."""
    user, password = f"monitor-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    broker.ctl("add_user", user, password)
    broker.ctl("set_user_tags", user, "monitoring")
    broker.ctl("set_permissions", "-p", "/", user, "^$", "^$", "^$")  # may see the vhost, touch nothing
    yield user, password
    broker.ctl("delete_user", user)


def run_script(broker, monitor, queue: str, timeout_seconds: int) -> subprocess.CompletedProcess:
    env = {"WORKFLEET_AMQP_URL": broker.amqp_url, "WORKFLEET_QUEUE": queue,
           "WORKFLEET_MANAGEMENT_URL": broker.management_url, "WORKFLEET_MONITOR_USERNAME": monitor[0],
           "WORKFLEET_MONITOR_PASSWORD": monitor[1], "WORKFLEET_TEST_TIMEOUT_SECONDS": str(timeout_seconds)}
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=timeout_seconds + 60)


def test_passes_when_a_worker_acks_the_task(broker, monitor, queue_name, workers):
    worker = workers(broker.amqp_url, "--queue", queue_name)
    worker.wait_ready()
    result = run_script(broker, monitor, queue_name, 60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "acked: the queue's ack count went from 0 to 1" in result.stdout
    worker.wait_for_metric("workfleet_worker_messages_acked_total", lambda value: value == 1)


def test_fails_saying_why_when_no_worker_consumes(broker, monitor, queue_name):
    declare(broker.amqp_url, Topology(queue_name))
    result = run_script(broker, monitor, queue_name, 10)
    assert result.returncode == 1
    assert "no ack within 10 s: the queue has 0 consumers and 1 messages" in result.stdout, result.stdout


def test_hook_pod_is_a_labelled_client_without_an_api_token():
    docs = render("helm", "-f", str(CHART / "ci" / "default-values.yaml"), "--set", "helmTest.body=ping")
    [pod] = [doc for doc in docs if doc["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["metadata"]["labels"]["workfleet.dev/broker-client"] == "wf-workfleet"
    assert pod["spec"]["automountServiceAccountToken"] is False
    env = {item["name"]: item for item in pod["spec"]["containers"][0]["env"]}
    assert env["WORKFLEET_TEST_BODY"]["value"] == "ping"
    assert env["WORKFLEET_MONITOR_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "operator-password"
    [configmap] = [doc for doc in docs if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "wf-workfleet-test"]
    assert configmap["data"]["publish_and_wait.py"] == SCRIPT.read_text()
