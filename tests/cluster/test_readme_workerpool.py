"""The README's WorkerPool section, run as written: the manifests are applied (with the
management URL, user and queue pointed at the test's broker) and the operator is
started with the README's own command line."""

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import yaml

from tests.cluster.operator_scenario import MONITOR_PASSWORD, MONITOR_USER
from tests.support.broker import declare, publish, wait_until
from tests.support.controlplane import BIN
from workfleet_common.topology import Topology
from workfleet_operator.local.rabbitmq import free_port

ROOT = Path(__file__).resolve().parents[2]


def section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Autoscaling with WorkerPool", 1)[1].split("\n## ", 1)[0]


def test_readme_workerpool_example_scales_as_described(controlplane, workerpool_crd, monitoring_broker, namespace, tmp_path):
    manifests = list(yaml.safe_load_all(re.search(r"```yaml\n(.*?)```", section(), re.S).group(1)))
    commands = re.search(r"```sh\n(.*?)```", section(), re.S).group(1).strip().splitlines()
    assert [item["kind"] for item in manifests] == ["Secret", "WorkerPool"]
    assert commands[0].startswith("kubectl apply -f charts/") and commands[1] == "workfleet-operator --namespaces default"

    env = dict(os.environ, KUBECONFIG=str(controlplane.kubeconfig),
               PATH=os.pathsep.join([str(BIN), str(Path(sys.executable).parent), os.environ["PATH"]]),
               WORKFLEET_METRICS_PORT=str(free_port()), WORKFLEET_HEALTH_PORT=str(free_port()))
    installed = subprocess.run(commands[0], shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert installed.returncode == 0, installed.stderr

    secret, pool = manifests
    secret["stringData"] = {"username": MONITOR_USER, "password": MONITOR_PASSWORD}
    queue = f"images-{uuid.uuid4().hex[:6]}"
    pool["spec"]["queue"]["name"] = queue
    pool["spec"]["broker"]["managementUrl"] = monitoring_broker.management_url
    pool["spec"]["broker"]["amqpUrl"] = f"amqp://127.0.0.1:{monitoring_broker.amqp_port}"
    declare(monitoring_broker.amqp_url, Topology(queue))
    controlplane.kubectl("create", "deployment", "image-workers", "--image=example.invalid/w:1", "--replicas=2", "-n", namespace)
    controlplane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))

    log = open(tmp_path / "operator.log", "wb")
    operator = subprocess.Popen(commands[1].replace("default", namespace).split(), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def replicas() -> int:
            out = controlplane.kubectl("get", "deployment", "image-workers", "-n", namespace, "-o", "jsonpath={.spec.replicas}").stdout
            return int(out)

        wait_until(lambda: replicas() == 0, timeout=60, message="scale to zero on an empty queue (minReplicas 0)")
        publish(monitoring_broker.amqp_url, queue, ["x"] * 30)
        wait_until(lambda: replicas() == 3, timeout=60, message="3 replicas for 30 messages")

        def read_status() -> dict:
            return json.loads(controlplane.kubectl("get", "wp", "images", "-n", namespace, "-o", "json").stdout)["status"]

        # The status is written after the scale: wait for it rather than race it.
        wait_until(lambda: read_status().get("currentReplicas") == 3, timeout=15, message="status after the scale")
        status = read_status()
        assert status["lastDecision"]["reason"] == "Backlog"
        assert "drainTime: no ack rate measured yet" in status["lastDecision"]["message"]
        assert {item["type"]: item["status"] for item in status["conditions"]} == {
            "MetricsAvailable": "True", "ScalingActive": "True", "ForgottenAckSuspected": "False"}
        row = controlplane.kubectl("get", "wp", "images", "-n", namespace).stdout.splitlines()[1].split()
        assert row[:3] == ["images", queue, "30"], row
    finally:
        operator.terminate()
        assert operator.wait(30) == 0, "SIGTERM ends the operator cleanly"
        log.close()
