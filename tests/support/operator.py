"""workfleet-operator as a real process, authenticated as a ServiceAccount.

The operator runs with a kubeconfig holding the account's token, so every call it
makes goes through the real RBAC authorizer with the rules the chart ships.
"""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from tests.support.broker import wait_until
from workfleet_operator.local.rabbitmq import free_port

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "charts" / "workfleet" / "crds" / "workerpools.workfleet.dev.yaml"
ROLE_RULES = ROOT / "charts" / "workfleet" / "files" / "operator-role-rules.yaml"
SERVICE_ACCOUNT = "workfleet-operator"


def grant_operator_role(controlplane, namespace: str) -> None:
    """The ServiceAccount, the Role with the chart's rules, and the binding."""
    manifests = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace},
         "rules": yaml.safe_load(ROLE_RULES.read_text())},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SERVICE_ACCOUNT},
         "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}]},
    ]
    controlplane.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}))


def service_account_kubeconfig(controlplane, namespace: str, path: Path) -> Path:
    token = controlplane.kubectl("create", "token", SERVICE_ACCOUNT, "-n", namespace, "--duration=2h").stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": controlplane.server, "certificate-authority": str(controlplane.pki["ca_cert"])}}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": SERVICE_ACCOUNT, "namespace": namespace}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config))
    return path


class OperatorProcess:
    def __init__(self, kubeconfig: Path, namespaces: str, log_path: Path, *args: str):
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.log_path = log_path
        self._kubeconfig = kubeconfig
        self._namespaces = namespaces
        self._args = args
        self.process: subprocess.Popen | None = None

    def start(self) -> "OperatorProcess":
        env = dict(os.environ, KUBECONFIG=str(self._kubeconfig))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workfleet_operator.operator_cli", "--namespaces", self._namespaces,
                 "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port), "--log-level", "DEBUG",
                 *self._args],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        wait_until(self._healthy, timeout=60, message=f"operator liveness endpoint (log {self.log_path})")
        return self

    def _healthy(self) -> bool:
        assert self.process.poll() is None, f"operator exited with {self.process.returncode}: {self.log_path.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def samples(self, name: str) -> dict[tuple, float]:
        """Every sample of a metric, keyed by its sorted label pairs."""
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        found = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    found[tuple(sorted(sample.labels.items()))] = sample.value
        return found

    def metric(self, name: str, **labels) -> float:
        for key, value in self.samples(name).items():
            if all(dict(key).get(label) == wanted for label, wanted in labels.items()):
                return value
        raise KeyError(f"{name}{labels}")

    def stop(self, timeout: float = 30) -> int:
        self.process.terminate()
        return self.process.wait(timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
