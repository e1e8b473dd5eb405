"""The one-node cluster runs pods for real: images imported without a registry, pod and
Service networking through kube-proxy, DNS through CoreDNS, the API server reachable from
pods at the "kubernetes" Service, and local volumes that outlive their pod."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.broker import wait_until
from tests.support.cluster import BUSYBOX_IMAGE
from tests.support.oci_images import RABBITMQ_IMAGE

ROOT = Path(__file__).resolve().parents[2]


def busybox(name: str, script: str, **spec) -> dict:
    return {"name": name, "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
            "command": ["/bin/busybox", "sh", "-c", script], **spec}


@pytest.fixture
def node_namespace(node_cluster):
    with node_cluster.temporary_namespace("n") as name:
        yield name


def apply(cluster, namespace: str, *objects: dict) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-",
                    input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def pod_phase(cluster, namespace: str, name: str) -> str:
    result = cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}", check=False)
    return result.stdout


def test_pods_reach_a_service_by_name_and_the_api_server(node_cluster, node_namespace):
    web = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
           "spec": {"containers": [busybox("web", "mkdir -p /www && echo hello-$HOSTNAME > /www/index.html"
                                                  " && exec /bin/busybox httpd -f -p 8080 -h /www")]}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    client = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
              "spec": {"restartPolicy": "Never", "containers": [busybox(
                  "client", "until wget -q -O - http://web/; do sleep 0.5; done;"
                  " wget -q -O - http://web.$NAMESPACE.svc.cluster.local/ &&"
                  " echo | nc -w 5 kubernetes.default.svc 443 && echo api-reachable",
                  env=[{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}])]}}
    apply(node_cluster, node_namespace, web, service, client)
    wait_until(lambda: pod_phase(node_cluster, node_namespace, "client") in ("Succeeded", "Failed"), timeout=120,
               message="the client pod finished")
    logs = node_cluster.kubectl("logs", "client", "-n", node_namespace).stdout
    assert pod_phase(node_cluster, node_namespace, "client") == "Succeeded", logs
    assert logs.splitlines() == ["hello-web", "hello-web", "api-reachable"]


def test_a_local_volume_outlives_its_pod(node_cluster, node_namespace):
    store = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "store"},
             "spec": {"serviceName": "store", "replicas": 1, "selector": {"matchLabels": {"app": "store"}},
                      "template": {"metadata": {"labels": {"app": "store"}}, "spec": {
                          "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
                          "containers": [busybox("store", "echo run >> /data/runs; exec sleep 3600",
                                                 volumeMounts=[{"name": "data", "mountPath": "/data"}])]}},
                      "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                          "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}
    apply(node_cluster, node_namespace, store)

    def runs() -> int:
        result = node_cluster.kubectl("exec", "store-0", "-n", node_namespace, "--", "/bin/busybox", "cat", "/data/runs", check=False)
        return result.stdout.count("run") if result.returncode == 0 else 0

    wait_until(lambda: runs() == 1, timeout=120, message="the first pod wrote to its volume")
    claim = json.loads(node_cluster.kubectl("get", "pvc", "data-store-0", "-n", node_namespace, "-o", "json").stdout)
    assert claim["status"]["phase"] == "Bound" and claim["spec"]["storageClassName"] == "local"
    node_cluster.kubectl("delete", "pod", "store-0", "-n", node_namespace)
    wait_until(lambda: runs() == 2, timeout=120, message="the replacement pod found the first one's file")


def test_make_images_imports_the_chart_images_into_the_running_cluster(node_cluster):
    made = subprocess.run(["make", "images"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "imported into the cluster" in made.stdout
    listed = subprocess.run(["ctr", "--address", str(node_cluster.containerd_socket), "-n", "k8s.io", "images", "ls", "-q"],
                            capture_output=True, text=True, timeout=60).stdout.split()
    for image in ("docker.io/workfleet/worker:0.1.0", "docker.io/workfleet/operator:0.1.0", RABBITMQ_IMAGE):
        assert image in listed, listed
