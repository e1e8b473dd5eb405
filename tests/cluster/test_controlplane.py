"""The test control plane is a real one: version, CRDs with CEL, controllers, RBAC, Helm."""

import json
import subprocess
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.support.broker import wait_until
from tests.support.controlplane import BIN, KUBERNETES_VERSION

HERE = Path(__file__).resolve().parent


def test_version_and_clients(controlplane):
    """/version reports the pinned release; kubectl and the Python client both work."""
    assert controlplane.get("/version")["gitVersion"] == KUBERNETES_VERSION
    assert "kube-system" in controlplane.kubectl("get", "namespaces", "-o", "name").stdout
    api = client.CoreV1Api(config.new_client_from_config(str(controlplane.kubeconfig)))
    assert "default" in {item.metadata.name for item in api.list_namespace().items}


def test_crd_schema_and_cel_rule(controlplane, namespace):
    """A valid object is accepted; one breaking the CEL rule is refused with its message;
    status is a subresource (a write to the main resource does not change it)."""
    controlplane.kubectl("apply", "-f", str(HERE / "manifests" / "widgets-crd.yaml"))
    controlplane.kubectl("wait", "--for=condition=Established", "crd/widgets.test.workfleet.dev", "--timeout=60s")

    def widget(name, low, high):
        return json.dumps({"apiVersion": "test.workfleet.dev/v1", "kind": "Widget",
                           "metadata": {"name": name, "namespace": namespace},
                           "spec": {"min": low, "max": high}, "status": {"seen": 7}})

    controlplane.kubectl("apply", "-f", "-", input=widget("good", 1, 3))
    refused = controlplane.kubectl("apply", "-f", "-", input=widget("bad", 5, 2), check=False)
    assert refused.returncode != 0
    assert "min must not exceed max" in refused.stderr
    stored = json.loads(controlplane.kubectl("get", "widget", "good", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"] == {"min": 1, "max": 3}
    assert "status" not in stored, "status must be written only through the status subresource"


def test_deployment_gets_pods_and_scale_subresource_changes_them(controlplane, namespace):
    """The controller manager turns a Deployment into a ReplicaSet and Pods; patching
    /scale changes the number of Pods."""
    controlplane.kubectl("create", "deployment", "web", "--image=example.invalid/web:1", "--replicas=2", "-n", namespace)

    def pod_count():
        out = controlplane.kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "name").stdout
        return len(out.split())

    wait_until(lambda: pod_count() == 2, timeout=60, message="2 pods")
    assert "web-" in controlplane.kubectl("get", "replicasets", "-n", namespace, "-o", "name").stdout
    controlplane.kubectl("patch", "deployment", "web", "-n", namespace, "--subresource=scale",
                         "--type=merge", "-p", '{"spec":{"replicas":4}}')
    wait_until(lambda: pod_count() == 4, timeout=60, message="4 pods")
    controlplane.kubectl("scale", "deployment", "web", "-n", namespace, "--replicas=1")
    wait_until(lambda: pod_count() == 1, timeout=60, message="1 pod")


def test_rbac_is_enforced(controlplane, namespace):
    """A ServiceAccount bound to a Role that may read pods can read them and is
    refused deleting them, by `kubectl auth can-i --as` and by a real request with its token."""
    controlplane.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    controlplane.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", "-n", namespace)
    controlplane.kubectl("create", "rolebinding", "reader", "--role=pod-reader",
                         f"--serviceaccount={namespace}:reader", "-n", namespace)
    subject = f"--as=system:serviceaccount:{namespace}:reader"

    def can(verb):
        result = controlplane.kubectl("auth", "can-i", verb, "pods", "-n", namespace, subject, check=False)
        return result.stdout.strip()

    assert (can("list"), can("delete")) == ("yes", "no")
    assert controlplane.kubectl("auth", "can-i", "list", "pods", "-n", "kube-system", subject, check=False).stdout.strip() == "no"

    token = controlplane.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
    as_reader = [str(BIN / "kubectl"), "--kubeconfig=/dev/null", f"--server={controlplane.server}",
                 f"--certificate-authority={controlplane.pki['ca_cert']}", f"--token={token}", "-n", namespace]
    listed = subprocess.run([*as_reader, "get", "pods"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    controlplane.kubectl("run", "victim", "--image=example.invalid/x:1", "-n", namespace)
    deleted = subprocess.run([*as_reader, "delete", "pod", "victim"], capture_output=True, text=True, timeout=60)
    assert deleted.returncode != 0
    assert "forbidden" in deleted.stderr.lower()


@pytest.mark.parametrize("helm, major", [("helm", "v4."), ("helm3", "v3.")])
def test_helm_installs_and_uninstalls(controlplane, namespace, helm, major):
    """Helm 4 and Helm 3 report their versions, install the throwaway chart (its
    ConfigMap appears) and uninstall it (the ConfigMap and the release are gone)."""

    def run(*args):
        result = subprocess.run([str(BIN / helm), f"--kubeconfig={controlplane.kubeconfig}", *args],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert run("version", "--short").startswith(major)
    run("install", "greet", str(HERE / "charts" / "hello"), "-n", namespace, "--set", "greeting=hi", "--wait")
    data = json.loads(controlplane.kubectl("get", "configmap", "greet-hello", "-n", namespace, "-o", "json").stdout)["data"]
    assert data == {"greeting": "hi"}
    run("uninstall", "greet", "-n", namespace, "--wait")
    assert controlplane.kubectl("get", "configmap", "greet-hello", "-n", namespace, check=False).returncode != 0
    assert json.loads(run("list", "-n", namespace, "-o", "json")) == []
