"""End to end on the one-node cluster: `helm install` of the chart with images built by the
project (`make images`), RabbitMQ on a local volume, real worker pods, and the operator
scaling them from the queue; tasks are published from outside the cluster, at the broker's
Service address, as the producer user; a Prometheus outside the cluster scrapes the pods."""

import base64
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.chart.test_render import CHART
from tests.cluster.test_monitoring_queries import assert_dashboard_and_alerts_read_series, chart_rules
from tests.support.broker import wait_until
from tests.support.controlplane import BIN
from tests.support.oci_images import chart_images
from tests.support.prometheus import PrometheusServer

VALUES = Path(__file__).parent / "local-images-values.yaml"
NAMESPACE = "fleet"
RELEASE = "wf"
POOL = "wf-workfleet-worker"


class Fleet:
    def __init__(self, cluster):
        self.cluster = cluster

    def helm(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "helm"), f"--kubeconfig={self.cluster.kubeconfig}", "-n", NAMESPACE, *args],
                              capture_output=True, text=True, timeout=timeout)

    def get(self, *what: str) -> dict:
        return json.loads(self.cluster.kubectl("get", *what, "-n", NAMESPACE, "-o", "json").stdout)

    def secret(self, key: str) -> str:
        return base64.b64decode(self.get("secret", "wf-workfleet-credentials")["data"][key]).decode()

    @property
    def broker_address(self) -> str:
        return self.get("service", "wf-workfleet-rabbitmq")["spec"]["clusterIP"]

    def queue(self, name: str) -> dict:
        """The queue's stats from the management API, as the admin, at the Service address."""
        request = urllib.request.Request(f"http://{self.broker_address}:15672/api/queues/%2F/{name}")
        token = base64.b64encode(f"admin:{self.secret('admin-password')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def counter(self, name: str) -> int:
        """One of the queue's message counters (ack, redeliver, ...); the broker shows none before the first message."""
        stats = self.queue("tasks").get("message_stats")
        return stats.get(name, 0) if isinstance(stats, dict) else 0

    def acks(self) -> int:
        return self.counter("ack")

    def publish(self, *bodies: str, count: int = 1) -> None:
        """Publish with confirms at the broker's Service address, from outside the cluster, as the producer user."""
        producer = f"amqp://workfleet-producer:{self.secret('producer-password')}@{self.broker_address}:5672/%2F"
        produced = subprocess.run([sys.executable, "-m", "workfleet_producer", "--amqp-url", producer, "--queue", "tasks",
                                   "--count", str(count), *bodies], capture_output=True, text=True, timeout=120)
        assert produced.returncode == 0, produced.stderr
        assert f"{count * len(bodies)} confirmed" in produced.stdout

    def replicas(self) -> int:
        return self.get("deployment", POOL)["spec"].get("replicas", 0)

    def pool_condition(self, kind: str) -> dict:
        conditions = self.get("workerpool", POOL).get("status", {}).get("conditions", [])
        return next((item for item in conditions if item["type"] == kind), {})


@pytest.fixture(scope="module")
def fleet(node_cluster):
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    node_cluster.import_images(chart_images(version))
    world = Fleet(node_cluster)
    installed = world.helm("install", RELEASE, str(CHART), "--create-namespace", "-f", str(VALUES),
                           "--wait", "--timeout=5m")
    assert installed.returncode == 0, installed.stderr + node_cluster.kubectl(
        "get", "pods", "-n", NAMESPACE, "-o", "wide").stdout
    return world


def test_installed_fleet_is_ready_and_passes_helm_test(fleet):
    broker = fleet.get("statefulset", "wf-workfleet-rabbitmq")
    assert broker["status"].get("readyReplicas") == 1
    [claim] = fleet.get("pvc")["items"]
    assert claim["status"]["phase"] == "Bound"
    operator = fleet.get("deployment", "wf-workfleet-operator")
    assert operator["status"].get("availableReplicas") == 1
    wait_until(lambda: fleet.pool_condition("MetricsAvailable").get("status") == "True", timeout=120,
               message="the operator reads the queue's stats")

    tested = fleet.helm("test", RELEASE, "--logs", "--timeout=5m")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "acked: the queue's ack count went from" in tested.stdout


def test_a_burst_scales_workers_up_drains_and_scales_back_down(fleet):
    acks_before = fleet.acks()
    fleet.publish(".", count=500)

    wait_until(lambda: fleet.replicas() == 4, timeout=120, message="scaled up to maxReplicas")
    wait_until(lambda: fleet.acks() - acks_before >= 500, timeout=300, message="500 tasks acked")
    wait_until(lambda: fleet.replicas() == 1, timeout=180, message="scaled back down to minReplicas")

    assert fleet.acks() - acks_before == 500, "each task acked once"
    queue = fleet.queue("tasks")
    assert queue["messages"] == 0 and fleet.counter("redeliver") == 0
    assert fleet.queue("tasks.dlq")["messages"] == 0
    reasons = [event["reason"] for event in fleet.get("events")["items"]
               if event["involvedObject"]["kind"] == "WorkerPool"]
    assert "ScaledUp" in reasons and "ScaledDown" in reasons, reasons


def worker_pods(fleet) -> list[dict]:
    return [pod for pod in fleet.get("pods", "-l", "app.kubernetes.io/component=worker")["items"]
            if not pod["metadata"].get("deletionTimestamp")]


def holding_one_task(fleet) -> str:
    """Publish one 4-second task and return the worker pod that holds it."""
    wait_until(lambda: fleet.replicas() == 1 and len(worker_pods(fleet)) == 1, timeout=180, message="one worker")
    fleet.publish("." * 20)
    wait_until(lambda: fleet.queue("tasks")["messages_unacknowledged"] == 1, timeout=60, message="the task in hand")
    return worker_pods(fleet)[0]["metadata"]["name"]


def test_a_deleted_worker_finishes_its_task_and_a_killed_one_is_redelivered(fleet):
    acks, redelivered = fleet.acks(), fleet.counter("redeliver")
    pod = holding_one_task(fleet)
    fleet.cluster.kubectl("delete", "pod", pod, "-n", NAMESPACE, "--wait=false")  # SIGTERM, grace period
    wait_until(lambda: fleet.acks() == acks + 1, timeout=120, message="the stopping worker acked its task")
    assert fleet.counter("redeliver") == redelivered, "finished by the pod that was stopping, not handed on"

    pod = holding_one_task(fleet)
    fleet.cluster.kubectl("delete", "pod", pod, "-n", NAMESPACE, "--grace-period=0", "--force")
    wait_until(lambda: fleet.acks() == acks + 2, timeout=180, message="the killed worker's task done by another pod")
    assert fleet.counter("redeliver") == redelivered + 1


def test_the_broker_keeps_confirmed_messages_across_its_pod_being_deleted(fleet):
    # Nobody consumes meanwhile: the pool paused and its workers scaled to zero.
    fleet.cluster.kubectl("patch", "workerpool", POOL, "-n", NAMESPACE, "--type=merge", "-p", '{"spec": {"paused": true}}')
    fleet.cluster.kubectl("scale", "deployment", POOL, "-n", NAMESPACE, "--replicas=0")
    wait_until(lambda: not worker_pods(fleet) and fleet.queue("tasks")["consumers"] == 0, timeout=180,
               message="no consumers")
    claim = fleet.get("pvc")["items"][0]["spec"]["volumeName"]
    fleet.publish(".", count=50)

    fleet.cluster.kubectl("delete", "pod", "wf-workfleet-rabbitmq-0", "-n", NAMESPACE)
    fleet.cluster.kubectl("rollout", "status", "statefulset/wf-workfleet-rabbitmq", "-n", NAMESPACE, "--timeout=300s")
    wait_until(lambda: _messages_or_none(fleet) == 50, timeout=180, message="the 50 confirmed messages back")
    assert fleet.get("pvc")["items"][0]["spec"]["volumeName"] == claim, "the same volume"

    acks = fleet.acks()
    fleet.cluster.kubectl("patch", "workerpool", POOL, "-n", NAMESPACE, "--type=merge", "-p", '{"spec": {"paused": false}}')
    wait_until(lambda: fleet.acks() - acks == 50, timeout=300, message="the operator resumed and the workers drained them")


def _messages_or_none(fleet) -> int | None:
    try:
        return fleet.queue("tasks")["messages"]
    except (OSError, KeyError):  # the broker still starting
        return None


SCRAPED = {  # job (named as the chart's PodMonitor and ServiceMonitors name them) -> component, port name
    "wf-workfleet-operator": ("operator", "metrics"),
    "wf-workfleet-worker": ("worker", "metrics"),
    "wf-workfleet-rabbitmq": ("rabbitmq", "prometheus"),
}


def follow_pods(fleet, prometheus) -> None:
    """What prometheus-operator's pod discovery does for the chart's monitors: each running pod
    of a component, at its pod IP and named port, labelled with its namespace and pod. (Debian's
    Prometheus is built without kubernetes_sd, so the test reads the pods from the API itself.)"""
    pods = fleet.get("pods")["items"]
    for job, (component, port_name) in SCRAPED.items():
        targets = {}
        for pod in pods:
            if (pod["metadata"]["labels"].get("app.kubernetes.io/component") != component
                    or pod["status"].get("phase") != "Running" or not pod["status"].get("podIP")):
                continue
            ports = [port["containerPort"] for container in pod["spec"]["containers"]
                     for port in container.get("ports", []) if port.get("name") == port_name]
            for number in ports:
                targets[f"{pod['status']['podIP']}:{number}"] = {"namespace": NAMESPACE, "pod": pod["metadata"]["name"]}
        prometheus.set_targets(job, targets)


def test_prometheus_scrapes_the_fleet_and_every_dashboard_query_and_alert_reads_it(fleet, tmp_path):
    rules_file = tmp_path / "rules.yaml"
    rules = chart_rules(NAMESPACE, "-f", str(VALUES))
    rules_file.write_text(yaml.safe_dump(rules))
    (tmp_path / "prometheus").mkdir()
    # The operator's namespace label is the pool's; its ServiceMonitor honours it.
    jobs = {job: {"honor_labels": True} if component == "operator" else {} for job, (component, _) in SCRAPED.items()}
    prometheus = PrometheusServer(tmp_path / "prometheus", jobs, rule_files=(rules_file,)).start()
    try:
        follow_pods(fleet, prometheus)
        wait_until(lambda: all(prometheus.targets_up(job) >= 1 for job in SCRAPED), timeout=120,
                   message="the operator, worker and broker pods scraped")
        fleet.publish("...", count=100)  # a scale-up for the decisions panel, watched from its start
        assert_dashboard_and_alerts_read_series(prometheus, rules, NAMESPACE, lambda: follow_pods(fleet, prometheus))
    finally:
        prometheus.close()
