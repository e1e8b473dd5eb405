"""The broker's memory alarm and free-disk limit follow its resources unless set, in bytes, as
rabbitmq.conf takes them; the preStop leaves the drain its time within the grace period."""

import re

import pytest

from tests.chart.test_render import HELMS, render

TASK = ("--set", "worker.task=my_app.tasks:resize")


def broker_config(binary: str, *args: str) -> dict[str, str]:
    [configmap] = [doc for doc in render(binary, *TASK, *args)
                   if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "wf-workfleet-rabbitmq"]
    lines = configmap["data"]["rabbitmq.conf"].splitlines()
    return dict(line.split(" = ", 1) for line in lines if " = " in line and not line.startswith("#"))


@pytest.mark.parametrize("binary", HELMS)
@pytest.mark.parametrize("args, watermark, disk", [
    ((), str(512 * 2**20), str(2**30)),  # the defaults: half the 1Gi limit; 1Gi free
    (("--set", "rabbitmq.resources.limits.memory=3G"), str(1_500_000_000), str(2**30)),
    (("--set", "rabbitmq.memoryHighWatermark=600Mi", "--set", "rabbitmq.diskFreeLimit=2.5Gi"), str(600 * 2**20), str(int(2.5 * 2**30))),
    (("--set", "rabbitmq.resources.limits=null"), None, str(2**30)),  # RabbitMQ's own relative default
])
def test_memory_alarm_and_disk_limit(binary, args, watermark, disk):
    config = broker_config(binary, *args)
    assert config.get("vm_memory_high_watermark.absolute") == watermark
    assert config["disk_free_limit.absolute"] == disk


@pytest.mark.parametrize("binary", HELMS)
@pytest.mark.parametrize("grace", [600, 120])
def test_a_stopping_node_waits_for_quorum_within_its_grace_period(binary, grace):
    docs = render(binary, *TASK, "--set", "rabbitmq.replicas=3", "--set", f"rabbitmq.terminationGracePeriodSeconds={grace}")
    [broker] = [doc for doc in docs if doc["kind"] == "StatefulSet"]
    [container] = broker["spec"]["template"]["spec"]["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"][-1]
    waits = [int(seconds) for seconds in re.findall(r"-t (\d+)", command)]
    assert len(waits) == 2 and sum(waits) + 30 <= grace, command
