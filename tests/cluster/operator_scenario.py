"""One operator test's world: a namespace with the operator's ServiceAccount and Role,
the broker credentials Secret, a worker Deployment whose Pods are stood in for by
real worker processes, a queue on the real broker, and the operator itself."""

import json
import uuid
from pathlib import Path

from kubernetes import client, config

from tests.support.broker import declare, wait_until
from tests.support.operator import OperatorProcess, grant_operator_role, service_account_kubeconfig
from tests.support.pod_standins import PodStandIns
from workfleet_common.topology import Topology

MONITOR_USER = "wf-monitor"
MONITOR_PASSWORD = "monitor-secret"
DEPLOYMENT = "workers"
POOL = "workers"


class OperatorScenario:
    def __init__(self, controlplane, broker, namespace: str, tmp_path: Path):
        self.controlplane = controlplane
        self.broker = broker
        self.namespace = namespace
        self.tmp_path = tmp_path
        self.queue = f"q-{uuid.uuid4().hex[:8]}"
        api_client = config.new_client_from_config(str(controlplane.kubeconfig))
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.standins: PodStandIns | None = None
        self.operator: OperatorProcess | None = None
        self._operator_logs = 0

    # -- setting up --------------------------------------------------------------------

    def prepare(self, replicas: int = 1, *worker_args: str, dot_seconds: float = 0.05) -> "OperatorScenario":
        grant_operator_role(self.controlplane, self.namespace)
        self.write_secret(MONITOR_USER, MONITOR_PASSWORD)
        declare(self.broker.amqp_url, Topology(self.queue))
        self.apps.create_namespaced_deployment(self.namespace, {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": DEPLOYMENT},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": DEPLOYMENT}},
                "template": {"metadata": {"labels": {"app": DEPLOYMENT}},
                             "spec": {"containers": [{"name": "worker", "image": "workfleet/worker:test"}]}},
            },
        })
        self.standins = PodStandIns(self.core, self.namespace, f"app={DEPLOYMENT}", self.broker.amqp_url,
                                    self.tmp_path, "--queue", self.queue, *worker_args, dot_seconds=dot_seconds).start()
        return self

    def write_secret(self, username: str, password: str, name: str = "broker-monitor") -> None:
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": self.namespace},
                "stringData": {"username": username, "password": password}}
        self.controlplane.kubectl("apply", "-f", "-", input=json.dumps(body))

    def pool_manifest(self, management_url: str | None = None, name: str = POOL, queue: str | None = None,
                      amqp: bool = False, labels: dict | None = None, broker_tls: dict | None = None, **spec) -> dict:
        broker = {"managementUrl": management_url or self.broker.management_url,
                  "credentialsSecretRef": {"name": "broker-monitor"}}
        if broker_tls is not None:
            broker["tls"] = broker_tls
        if amqp:  # exact ready counts over AMQP, as the same monitoring user
            broker["amqpUrl"] = f"amqp://127.0.0.1:{self.broker.amqp_port}"
        base = {
            "scaleTargetRef": {"name": DEPLOYMENT},
            "queue": {"name": queue or self.queue},
            "broker": broker,
            "minReplicas": 1,
            "maxReplicas": 4,
            "pollSeconds": 1,
        }
        base.update(spec)
        return {"apiVersion": "workfleet.dev/v1alpha1", "kind": "WorkerPool",
                "metadata": {"name": name, "namespace": self.namespace, "labels": labels or {}}, "spec": base}

    def apply_pool(self, **spec) -> dict:
        manifest = self.pool_manifest(**spec)
        self.controlplane.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        return manifest

    def start_operator(self, *args: str) -> OperatorProcess:
        kubeconfig = service_account_kubeconfig(self.controlplane, self.namespace, self.tmp_path / "operator.kubeconfig")
        self._operator_logs += 1
        self.operator = OperatorProcess(kubeconfig, self.namespace, self.tmp_path / f"operator-{self._operator_logs}.log", *args)
        return self.operator.start()

    # -- looking ------------------------------------------------------------------------

    def replicas(self) -> int:
        return self.apps.read_namespaced_deployment_scale(DEPLOYMENT, self.namespace).spec.replicas

    def pods(self) -> list:
        return self.core.list_namespaced_pod(self.namespace, label_selector=f"app={DEPLOYMENT}").items

    def status(self, name: str = POOL) -> dict:
        return self.custom.get_namespaced_custom_object("workfleet.dev", "v1alpha1", self.namespace, "workerpools", name).get("status") or {}

    def condition(self, kind: str, name: str = POOL) -> dict:
        return next((item for item in self.status(name).get("conditions", []) if item["type"] == kind), {})

    def events(self) -> list:
        return [event for event in self.core.list_namespaced_event(self.namespace).items
                if event.involved_object.kind == "WorkerPool"]

    def event_reasons(self) -> list[str]:
        return [event.reason for event in sorted(self.events(), key=lambda event: event.metadata.creation_timestamp)]

    def wait_for_replicas(self, count: int, timeout: float = 60) -> None:
        wait_until(lambda: self.replicas() == count, timeout=timeout, message=f"{count} replicas (log {self.log_hint()})")

    def log_hint(self) -> str:
        return str(self.operator.log_path) if self.operator else "no operator"

    def close(self) -> None:
        if self.operator:
            self.operator.close()
        if self.standins:
            self.standins.close()
