"""`helm install` of the chart into the real control plane, with Helm 4 and Helm 3,
into namespaces where the API server enforces the "restricted" Pod Security Standard:
every pod the controllers create is admitted, or it would not exist."""

import base64
import json
import subprocess

import pytest
import yaml

from tests.chart.test_pod_settings import bumped_chart
from tests.chart.test_render import CHART, MONITORING_API
from tests.support.broker import wait_until
from tests.support.controlplane import BIN


@pytest.fixture
def restricted_namespace(controlplane):
    with controlplane.temporary_namespace("c", "pod-security.kubernetes.io/enforce=restricted") as name:
        yield name


def run_helm(controlplane, binary: str, *args: str) -> str:
    result = subprocess.run([str(BIN / binary), f"--kubeconfig={controlplane.kubeconfig}", *args],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def get(controlplane, namespace: str, *what: str) -> dict:
    return json.loads(controlplane.kubectl("get", *what, "-n", namespace, "-o", "json").stdout)


def pod_names(controlplane, namespace: str, component: str) -> list[str]:
    pods = get(controlplane, namespace, "pods", "-l", f"app.kubernetes.io/component={component}")["items"]
    return sorted(pod["metadata"]["name"] for pod in pods)


def pod_uids(controlplane, namespace: str, component: str) -> dict[str, str]:
    pods = get(controlplane, namespace, "pods", "-l", f"app.kubernetes.io/component={component}")["items"]
    return {pod["metadata"]["name"]: pod["metadata"]["uid"] for pod in pods}


def passwords(controlplane, namespace: str) -> dict:
    data = get(controlplane, namespace, "secret", "wf-workfleet-credentials")["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


@pytest.mark.parametrize("binary, scenario, brokers", [("helm", "default", 1), ("helm3", "three-node", 3)])
def test_install_upgrade_uninstall(controlplane, workerpool_crd, restricted_namespace, binary, scenario, brokers, tmp_path):
    namespace = restricted_namespace
    values = str(CHART / "ci" / f"{scenario}-values.yaml")
    output = run_helm(controlplane, binary, "install", "wf", str(CHART), "-n", namespace, "-f", values)
    assert "never printed here" in output and "password" in output
    secrets = passwords(controlplane, namespace)
    assert all(len(secrets[key]) == 32 for key in ("admin-password", "worker-password", "producer-password", "operator-password"))
    assert secrets["admin-password"] not in output, "NOTES must never print a password"

    statefulset = get(controlplane, namespace, "statefulset", "wf-workfleet-rabbitmq")
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    pool = get(controlplane, namespace, "workerpool", "wf-workfleet-worker")
    assert pool["spec"]["scaleTargetRef"]["name"] == "wf-workfleet-worker"

    # Admitted under "restricted": the controllers' pods exist.
    expected_brokers = [f"wf-workfleet-rabbitmq-{index}" for index in range(brokers)]
    wait_until(lambda: pod_names(controlplane, namespace, "rabbitmq") == expected_brokers, timeout=60,
               message=f"{brokers} broker pods admitted")
    wait_until(lambda: len(pod_names(controlplane, namespace, "worker")) == 1, timeout=60, message="a worker pod admitted")
    wait_until(lambda: len(pod_names(controlplane, namespace, "operator")) == 1, timeout=60, message="the operator pod admitted")
    worker = get(controlplane, namespace, "pods", "-l", "app.kubernetes.io/component=worker")["items"][0]
    assert worker["spec"]["automountServiceAccountToken"] is False
    assert not any(volume["name"].startswith("kube-api-access") for volume in worker["spec"]["volumes"])
    wait_until(lambda: len(get(controlplane, namespace, "pvc")["items"]) == brokers, timeout=60, message="a volume claim per broker")

    assert worker["spec"]["serviceAccountName"] == "wf-workfleet-worker"

    run_helm(controlplane, binary, "upgrade", "wf", str(CHART), "-n", namespace, "-f", values)
    assert passwords(controlplane, namespace) == secrets, "helm upgrade must keep the generated passwords"

    # A chart bump with the same values leaves the broker's pod template alone: the StatefulSet's
    # generation counts changes to its spec, and its controller restarts pods only on one.
    broker_generation = statefulset["metadata"]["generation"]
    brokers_before = pod_uids(controlplane, namespace, "rabbitmq")
    run_helm(controlplane, binary, "upgrade", "wf", str(bumped_chart(tmp_path)), "-n", namespace, "-f", values)
    assert get(controlplane, namespace, "statefulset", "wf-workfleet-rabbitmq")["metadata"]["generation"] == broker_generation
    assert pod_uids(controlplane, namespace, "rabbitmq") == brokers_before
    if brokers == 3:
        refused = subprocess.run([str(BIN / binary), f"--kubeconfig={controlplane.kubeconfig}", "upgrade", "wf", str(CHART),
                                  "-n", namespace, "-f", values, "--set", "rabbitmq.replicas=1"],
                                 capture_output=True, text=True, timeout=180)
        assert refused.returncode != 0
        assert "rabbitmq.replicas cannot go from 3 to 1" in refused.stderr, refused.stderr

    run_helm(controlplane, binary, "uninstall", "wf", "-n", namespace)
    wait_until(lambda: not get(controlplane, namespace, "statefulsets,deployments,workerpools")["items"], timeout=60,
               message="the release's workloads gone")
    assert len(get(controlplane, namespace, "pvc")["items"]) == brokers, "the brokers' data outlives the release"
    assert passwords(controlplane, namespace) == secrets, "and so do the passwords that open it"


def test_chart_operator_role_is_exactly_what_it_needs(controlplane, workerpool_crd, restricted_namespace):
    namespace = restricted_namespace
    run_helm(controlplane, "helm", "install", "wf", str(CHART), "-n", namespace, "-f", str(CHART / "ci" / "default-values.yaml"))
    subject = f"--as=system:serviceaccount:{namespace}:wf-workfleet-operator"

    def can(*args: str) -> bool:
        result = controlplane.kubectl("auth", "can-i", *args, "-n", namespace, subject, check=False)
        return result.stdout.strip() == "yes"

    assert can("watch", "workerpools.workfleet.dev") and can("patch", "workerpools.workfleet.dev", "--subresource=status")
    assert can("update", "deployments.apps", "--subresource=scale") and can("patch", "pods") and can("create", "events")
    assert can("get", "secrets/wf-workfleet-credentials")
    assert not can("get", "secrets/some-other-secret"), "only the Secret its WorkerPool names"
    assert not can("list", "secrets") and not can("patch", "deployments.apps") and not can("delete", "pods")
    assert not can("patch", "workerpools.workfleet.dev")


def test_monitoring_objects_are_accepted_by_prometheus_operator(controlplane, workerpool_crd, prometheus_operator_crds,
                                                                restricted_namespace):
    namespace = restricted_namespace
    values = str(CHART / "ci" / "monitoring-values.yaml")
    # Strict server-side validation first: an unknown or misspelt field is an error, not pruned away.
    rendered = subprocess.run([str(BIN / "helm"), "template", "wf", str(CHART), "-n", namespace, "-f", values,
                               MONITORING_API], capture_output=True, text=True, check=True).stdout
    monitoring = [doc for doc in yaml.safe_load_all(rendered) if doc and doc["apiVersion"] == "monitoring.coreos.com/v1"]
    assert len(monitoring) == 4
    controlplane.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-",
                         input=yaml.safe_dump_all(monitoring))

    # Installed for real, Helm finds the API by discovery (no --api-versions) and renders them.
    notes = run_helm(controlplane, "helm", "install", "wf", str(CHART), "-n", namespace, "-f", values)
    assert "the PrometheusRule with workfleet's alerts are installed" in notes
    installed = get(controlplane, namespace, "podmonitors,servicemonitors,prometheusrules")["items"]
    assert sorted((item["kind"], item["metadata"]["name"]) for item in installed) == [
        ("PodMonitor", "wf-workfleet-worker"), ("PrometheusRule", "wf-workfleet"),
        ("ServiceMonitor", "wf-workfleet-operator"), ("ServiceMonitor", "wf-workfleet-rabbitmq")]
    dashboard = get(controlplane, namespace, "configmap", "wf-workfleet-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
