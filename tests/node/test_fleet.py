"""End to end on the one-node cluster: `helm install` of the chart with images built by the
project (`make images`), RabbitMQ on a local volume, real worker pods, and the operator
scaling them from the queue; tasks are published from outside the cluster, at the broker's
Service address, as the producer user; a Prometheus outside the cluster scrapes the pods."""

import base64
import json
import shlex
import socket
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import pika
import pytest
import yaml

from tests.chart.test_pod_settings import bumped_chart
from tests.chart.test_render import CHART, MONITORING_API, render
from tests.cluster.test_monitoring_queries import chart_rules
from tests.cluster.test_readme_install import blocks as readme_install_blocks
from tests.support.broker import wait_until
from tests.support.controlplane import BIN
from tests.support.monitor_discovery import scrape_configs
from tests.support.monitoring_checks import assert_dashboard_and_alerts_read_series
from tests.support.oci_images import chart_images
from tests.support.prometheus import PrometheusServer
from workfleet_common.amqp import connection_parameters
from workfleet_producer import ConfirmedPublisher, OutgoingMessage, Outcome

VALUES = Path(__file__).parent / "local-images-values.yaml"
NAMESPACE = "fleet"
RELEASE = "wf"
POOL = "wf-workfleet-worker"


class Fleet:
    """One release of the chart on the cluster, and what the tests ask of it."""

    def __init__(self, cluster, namespace: str = NAMESPACE, release: str = RELEASE):
        self.cluster = cluster
        self.namespace = namespace
        self.release = release

    def name(self, component: str) -> str:
        return f"{self.release}-workfleet-{component}"

    def helm(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "helm"), f"--kubeconfig={self.cluster.kubeconfig}", "-n", self.namespace, *args],
                              capture_output=True, text=True, timeout=timeout)

    def get(self, *what: str) -> dict:
        return json.loads(self.cluster.kubectl("get", *what, "-n", self.namespace, "-o", "json").stdout)

    def secret(self, key: str) -> str:
        return base64.b64decode(self.get("secret", self.name("credentials"))["data"][key]).decode()

    @property
    def broker_address(self) -> str:
        return self.get("service", self.name("rabbitmq"))["spec"]["clusterIP"]

    def management(self, path: str) -> dict | list:
        """GET from the management API, as the admin, at the broker's Service address."""
        request = urllib.request.Request(f"http://{self.broker_address}:15672{path}")
        token = base64.b64encode(f"admin:{self.secret('admin-password')}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def queue(self, name: str) -> dict:
        return self.management(f"/api/queues/%2F/{name}")

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
        return self.get("deployment", self.name("worker"))["spec"].get("replicas", 0)

    def pool_condition(self, kind: str) -> dict:
        conditions = self.get("workerpool", self.name("worker")).get("status", {}).get("conditions", [])
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
    # Scaling redelivers nothing. (The helm test runs on a queue and worker of its own, so it leaves
    # the production workers' adaptive prefetch alone.)
    assert queue["messages"] == 0 and fleet.counter("redeliver") == 0
    assert fleet.queue("tasks.dlq")["messages"] == 0
    reasons = [event["reason"] for event in fleet.get("events")["items"]
               if event["involvedObject"]["kind"] == "WorkerPool"]
    assert "ScaledUp" in reasons and "ScaledDown" in reasons, reasons


def worker_pods(fleet) -> list[dict]:
    return [pod for pod in fleet.get("pods", "-l", "app.kubernetes.io/component=worker")["items"]
            if not pod["metadata"].get("deletionTimestamp")]


def holding_one_task(fleet, seconds: int) -> str:
    """Publish one task of `seconds` (at 0.2 s a dot) and return the worker pod that holds it."""
    wait_until(lambda: fleet.replicas() == 1 and len(worker_pods(fleet)) == 1, timeout=180, message="one worker")
    fleet.publish("." * (seconds * 5))
    wait_until(lambda: fleet.queue("tasks")["messages_unacknowledged"] == 1, timeout=60, message="the task in hand")
    return worker_pods(fleet)[0]["metadata"]["name"]


def test_a_deleted_worker_finishes_its_task_and_a_killed_one_is_redelivered(fleet):
    acks, redelivered = fleet.acks(), fleet.counter("redeliver")
    pod = holding_one_task(fleet, seconds=4)
    fleet.cluster.kubectl("delete", "pod", pod, "-n", NAMESPACE, "--wait=false")  # SIGTERM, grace period
    wait_until(lambda: fleet.acks() == acks + 1, timeout=120, message="the stopping worker acked its task")
    assert fleet.counter("redeliver") == redelivered, "finished by the pod that was stopping, not handed on"

    # Even a forced delete gives the container a SIGTERM and the kubelet's minimum of 2 s before the
    # SIGKILL: the task must outlast that, or the worker finishes it (seen: a 4 s task, acked).
    pod = holding_one_task(fleet, seconds=12)
    fleet.cluster.kubectl("delete", "pod", pod, "-n", NAMESPACE, "--grace-period=0", "--force")
    wait_until(lambda: fleet.acks() == acks + 2, timeout=180, message="the killed worker's task done by another pod")
    assert fleet.counter("redeliver") == redelivered + 1


def stop_consuming(fleet) -> None:
    """Pause the pool and scale its workers to zero, so a backlog stays put."""
    fleet.cluster.kubectl("patch", "workerpool", POOL, "-n", NAMESPACE, "--type=merge", "-p", '{"spec": {"paused": true}}')
    fleet.cluster.kubectl("scale", "deployment", POOL, "-n", NAMESPACE, "--replicas=0")
    wait_until(lambda: not worker_pods(fleet) and fleet.queue("tasks")["consumers"] == 0, timeout=180,
               message="no consumers")


def resume_consuming(fleet) -> None:
    fleet.cluster.kubectl("patch", "workerpool", POOL, "-n", NAMESPACE, "--type=merge", "-p", '{"spec": {"paused": false}}')


def test_the_broker_keeps_confirmed_messages_across_its_pod_being_deleted(fleet):
    stop_consuming(fleet)
    claim = fleet.get("pvc")["items"][0]["spec"]["volumeName"]
    fleet.publish(".", count=50)

    fleet.cluster.kubectl("delete", "pod", "wf-workfleet-rabbitmq-0", "-n", NAMESPACE)
    fleet.cluster.kubectl("rollout", "status", "statefulset/wf-workfleet-rabbitmq", "-n", NAMESPACE, "--timeout=300s")
    wait_until(lambda: _messages_or_none(fleet) == 50, timeout=180, message="the 50 confirmed messages back")
    assert fleet.get("pvc")["items"][0]["spec"]["volumeName"] == claim, "the same volume"

    acks = fleet.acks()
    resume_consuming(fleet)
    wait_until(lambda: fleet.acks() - acks == 50, timeout=300, message="the operator resumed and the workers drained them")


def readme_retries_options() -> list[str]:
    """The options of the README's `helm upgrade` that changes the retry ladder and the delivery limit."""
    [block] = [block for block in readme_install_blocks("sh") if "worker.retryDelays" in block]
    words = shlex.split(block.replace("\\\n", " "))
    return words[words.index("--reset-then-reuse-values"):]


def test_the_readme_upgrade_of_the_delivery_limit_and_retry_ladder_keeps_the_backlog(fleet):
    """The README's upgrade of rabbitmq.deliveryLimit and worker.retryDelays, with a backlog waiting.
    The delivery limit is in the broker's definitions, so the broker's pod restarts to load them
    (the ConfigMap's checksum is on the pod); the ladder rolls the workers, which declare its retry
    queues."""
    stop_consuming(fleet)
    policy = fleet.queue("tasks")["effective_policy_definition"]
    assert policy["delivery-limit"] == 20 and policy["dead-letter-strategy"] == "at-least-once", policy
    broker_pod = fleet.get("pod", "wf-workfleet-rabbitmq-0")["metadata"]["uid"]
    fleet.publish(".", count=50)

    upgraded = fleet.helm("upgrade", RELEASE, str(CHART), *readme_retries_options(), "--wait", "--timeout=5m")
    assert upgraded.returncode == 0, upgraded.stderr
    assert fleet.get("pod", "wf-workfleet-rabbitmq-0")["metadata"]["uid"] != broker_pod, "the broker restarted"
    wait_until(lambda: _messages_or_none(fleet) == 50, timeout=180, message="the 50 confirmed messages back")
    policy = fleet.queue("tasks")["effective_policy_definition"]
    assert policy["delivery-limit"] == 5 and policy["dead-letter-strategy"] == "at-least-once", policy

    acks = fleet.acks()
    resume_consuming(fleet)
    wait_until(lambda: fleet.acks() - acks == 50, timeout=300, message="the rolled workers drained the backlog")
    for name, ttl_ms in (("tasks.retry.5s", 5_000), ("tasks.retry.1m", 60_000), ("tasks.retry.10m", 600_000)):
        arguments = fleet.queue(name)["arguments"]
        assert arguments["x-message-ttl"] == ttl_ms and arguments["x-dead-letter-routing-key"] == "tasks", arguments
    assert fleet.queue("tasks.dlq")["messages"] == 0


def _messages_or_none(fleet) -> int | None:
    try:
        return fleet.queue("tasks")["messages"]
    except (OSError, KeyError):  # the broker still starting
        return None


def chart_monitors() -> list[dict]:
    """The PodMonitor and ServiceMonitors the chart makes for this release, scraping every second."""
    docs = render("helm", "--namespace", NAMESPACE, "-f", str(VALUES), "--set", "monitoring.enabled=true",
                  "--set", "monitoring.interval=1s", MONITORING_API)
    return [doc for doc in docs if doc["kind"] in ("PodMonitor", "ServiceMonitor")]


def test_prometheus_discovers_the_fleet_and_every_dashboard_query_and_alert_reads_it(fleet, tmp_path):
    """Prometheus finds the pods itself, through Kubernetes service discovery with the chart's
    monitors' selectors, as prometheus-operator would configure it."""
    rules_file = tmp_path / "rules.yaml"
    rules = chart_rules(NAMESPACE, "-f", str(VALUES))
    rules_file.write_text(yaml.safe_dump(rules))
    (tmp_path / "prometheus").mkdir()
    pki = fleet.cluster.pki
    discovery = scrape_configs(chart_monitors(), fleet.cluster.server, {
        "ca_file": str(pki["ca_cert"]), "cert_file": str(pki["admin_cert"]), "key_file": str(pki["admin_key"])})
    prometheus = PrometheusServer(tmp_path / "prometheus", {}, rule_files=(rules_file,), scrape_configs=discovery).start()
    jobs = {f"{NAMESPACE}/{POOL}", "wf-workfleet-operator", "wf-workfleet-rabbitmq"}
    try:
        wait_until(lambda: all(prometheus.targets_up(job) >= 1 for job in jobs), timeout=120,
                   message=f"the operator, worker and broker pods discovered and scraped as jobs {sorted(jobs)}")
        fleet.publish("...", count=100)  # a scale-up for the decisions panel, watched from its start
        assert_dashboard_and_alerts_read_series(prometheus, rules, NAMESPACE, RELEASE)
    finally:
        prometheus.close()


def _queue_or_none(fleet, name: str) -> dict | None:
    try:
        return fleet.queue(name)
    except OSError:  # the Service still pointing at the lost pod, or nothing ready behind it
        return None


def test_three_broker_nodes_form_a_cluster_and_a_quorum_queue_survives_losing_one(node_cluster):
    """rabbitmq.replicas=3 (no workers, no operator): the nodes find each other through the
    Kubernetes API and form one cluster; the work queue, declared at the first node's boot, grows
    to all three; the pod that leads it is force-deleted; the other two elect a new leader, keep
    every confirmed message and confirm new ones; the pod comes back on its volume and rejoins."""
    trio = Fleet(node_cluster, namespace="trio", release="wf3")
    installed = trio.helm("install", trio.release, str(CHART), "--create-namespace", "-f", str(VALUES),
                          "--set", "rabbitmq.replicas=3", "--set", "autoscaling.enabled=false",
                          "--set", "worker.replicas=0", "--wait", "--timeout=8m")
    try:
        assert installed.returncode == 0, installed.stderr + node_cluster.kubectl(
            "get", "pods", "-n", trio.namespace, "-o", "wide").stdout
        nodes = trio.management("/api/nodes")
        assert len(nodes) == 3 and all(node["running"] for node in nodes), [node["name"] for node in nodes]
        wait_until(lambda: len(trio.queue("tasks").get("members", [])) == 3, timeout=180,
                   message="the work queue's members on all three nodes")

        trio.publish(".", count=100)
        wait_until(lambda: trio.queue("tasks")["messages"] == 100, timeout=60, message="100 messages counted")
        leader = trio.queue("tasks")["leader"]  # rabbit@<pod>.<nodes service>.<namespace>.svc
        leader_pod = leader.split("@", 1)[1].split(".", 1)[0]
        node_cluster.kubectl("delete", "pod", leader_pod, "-n", trio.namespace, "--grace-period=0", "--force")

        wait_until(lambda: (_queue_or_none(trio, "tasks") or {}).get("leader") not in (None, leader), timeout=120,
                   message="a new leader elected by the two nodes left")
        trio.publish(".", count=10)
        wait_until(lambda: (_queue_or_none(trio, "tasks") or {}).get("messages") == 110, timeout=60,
                   message="the 100 confirmed before the loss and the 10 after, all there")

        node_cluster.kubectl("rollout", "status", f"statefulset/{trio.name('rabbitmq')}", "-n", trio.namespace,
                             "--timeout=300s")
        wait_until(lambda: len((_queue_or_none(trio, "tasks") or {}).get("online", [])) == 3, timeout=180,
                   message="the lost node back online as a member of the queue")
        assert trio.queue("tasks")["messages"] == 110
    finally:
        trio.helm("uninstall", trio.release, "--wait", "--timeout=3m")
        node_cluster.kubectl("delete", "namespace", trio.namespace, "--wait=false")


def _tls_context(fleet: Fleet) -> ssl.SSLContext:
    """Verifies the broker against the release's CA. Reached from outside the cluster by its
    Service address, which no certificate names: the chain is checked, the host name is not here
    (the workers inside check both; they connect by the Service's name)."""
    ca = base64.b64decode(fleet.get("secret", fleet.name("tls"))["data"]["ca.crt"]).decode()
    context = ssl.create_default_context(cadata=ca)
    context.check_hostname = False
    return context


@pytest.mark.timeout(600)  # an install, a burst, helm test, an upgrade and an uninstall, each waited for
def test_a_tls_only_install_refuses_plain_connections_scales_over_tls_and_survives_a_chart_bump(node_cluster, tmp_path):
    """tls.enabled with the generated certificate: the broker's pod takes no plain AMQP or HTTP,
    the workers consume over AMQPS, the operator reads stats over HTTPS and scales a burst,
    `helm test` passes; then a chart version bump leaves the broker's pod running."""
    secure = Fleet(node_cluster, namespace="tls", release="tls")
    installed = secure.helm("install", secure.release, str(CHART), "--create-namespace", "-f", str(VALUES),
                            "--set", "tls.enabled=true", "--wait", "--timeout=5m")
    try:
        assert installed.returncode == 0, installed.stderr + node_cluster.kubectl(
            "get", "pods", "-n", secure.namespace, "-o", "wide").stdout
        [broker_pod] = secure.get("pods", "-l", "app.kubernetes.io/component=rabbitmq")["items"]
        pod_ip = broker_pod["status"]["podIP"]
        for port in (5672, 15672):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((pod_ip, port), timeout=10).close()
        context = _tls_context(secure)
        with socket.create_connection((pod_ip, 5671), timeout=10) as raw, context.wrap_socket(raw) as tls:
            assert tls.version().startswith("TLS")

        wait_until(lambda: secure.pool_condition("MetricsAvailable").get("status") == "True", timeout=120,
                   message="the operator reads the queue's stats over https")
        password = secure.secret("producer-password")
        parameters = connection_parameters(f"amqps://workfleet-producer:{password}@{secure.broker_address}:5671/%2F", "test")
        parameters.ssl_options = pika.SSLOptions(context, secure.name("rabbitmq"))
        results = ConfirmedPublisher(parameters, "", "tasks").publish([OutgoingMessage(b".") for _ in range(100)])
        assert all(result.outcome is Outcome.CONFIRMED for result in results)

        def management(path: str):
            request = urllib.request.Request(f"https://{secure.broker_address}:15671{path}")
            token = base64.b64encode(f"admin:{secure.secret('admin-password')}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return json.load(response)

        wait_until(lambda: secure.replicas() >= 2, timeout=120, message="scaled up for the burst")
        wait_until(lambda: management("/api/queues/%2F/tasks")["messages"] == 0, timeout=300, message="the burst drained")
        workers = [connection for connection in management("/api/connections") if connection["user"] == "workfleet-worker"]
        assert workers and all(connection["ssl"] for connection in workers)

        tested = secure.helm("test", secure.release, "--logs", "--timeout=5m")
        assert tested.returncode == 0, tested.stdout + tested.stderr

        broker_uid = broker_pod["metadata"]["uid"]
        upgraded = secure.helm("upgrade", secure.release, str(bumped_chart(tmp_path)), "-f", str(VALUES),
                               "--set", "tls.enabled=true", "--set", "image.tag=0.1.0", "--wait", "--timeout=5m")
        assert upgraded.returncode == 0, upgraded.stderr
        [after] = secure.get("pods", "-l", "app.kubernetes.io/component=rabbitmq")["items"]
        assert after["metadata"]["uid"] == broker_uid, "a chart bump restarted the broker"
        assert management("/api/queues/%2F/tasks")["durable"], "and its queue is there"
    finally:
        secure.helm("uninstall", secure.release, "--wait", "--timeout=3m")
        node_cluster.kubectl("delete", "namespace", secure.namespace, "--wait=false")
