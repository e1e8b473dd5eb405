"""`helm test` starts a worker on a queue of its own, publishes a task to it and waits until the
worker acks it. The hook's script runs here against a real broker, as the read-only monitoring user
the chart gives it; tests/node runs the hook itself on a node."""

import os
import re
import subprocess
import sys
import uuid

import pytest

from tests.chart.test_render import CHART, render
from tests.support.broker import declare, queue_depth
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


def run_script(broker, monitor, queue: str, timeout_seconds: int, worker_url: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "WORKFLEET_AMQP_URL": broker.amqp_url, "WORKFLEET_WORKER_AMQP_URL": worker_url or broker.amqp_url,
           "WORKFLEET_QUEUE": queue, "WORKFLEET_MANAGEMENT_URL": broker.management_url,
           "WORKFLEET_MONITOR_USERNAME": monitor[0], "WORKFLEET_MONITOR_PASSWORD": monitor[1],
           "WORKFLEET_TEST_TIMEOUT_SECONDS": str(timeout_seconds)}
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=timeout_seconds + 90)


def test_passes_when_its_worker_acks_the_task_and_leaves_the_work_queue_alone(broker, monitor, queue_name):
    topology = Topology(queue_name)
    declare(broker.amqp_url, topology)
    result = run_script(broker, monitor, queue_name, 60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "acked: the queue's ack count went from 0 to 1" in result.stdout
    assert f"to '{queue_name}.helm-test'" in result.stdout
    assert queue_depth(broker.amqp_url, queue_name) == (0, 0) and queue_depth(broker.amqp_url, topology.dead_letter_queue) == (0, 0)
    assert queue_depth(broker.amqp_url, f"{queue_name}.helm-test") == (0, 0), "its own task was acked, and its worker is gone"


def test_fails_saying_why_when_its_worker_cannot_log_in(broker, monitor, queue_name):
    refused = re.sub(r"://[^@]*@", "://nobody:wrong@", broker.amqp_url)
    result = run_script(broker, monitor, queue_name, 10, worker_url=refused)
    assert result.returncode == 1
    assert f"the worker did not declare '{queue_name}.helm-test' within 10 s" in result.stdout, result.stdout


def test_hook_pod_is_a_labelled_client_without_an_api_token():
    docs = render("helm", "-f", str(CHART / "ci" / "default-values.yaml"), "--set", "helmTest.body=ping")
    [pod] = [doc for doc in docs if doc["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["metadata"]["labels"]["workfleet.dev/broker-client"] == "wf-workfleet"
    assert pod["spec"]["automountServiceAccountToken"] is False
    env = {item["name"]: item for item in pod["spec"]["containers"][0]["env"]}
    assert env["WORKFLEET_TEST_BODY"]["value"] == "ping"
    assert env["WORKFLEET_MONITOR_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "operator-password"
    assert env["WORKFLEET_WORKER_AMQP_URL_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "worker-password"
    assert env["WORKFLEET_WORKER_AMQP_URL"]["value"].startswith("amqp://workfleet-worker:$(WORKFLEET_WORKER_AMQP_URL_PASSWORD)@")
    assert env["WORKFLEET_BROKER_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "producer-password"
    [configmap] = [doc for doc in docs if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "wf-workfleet-test"]
    assert configmap["data"]["publish_and_wait.py"] == SCRIPT.read_text()
