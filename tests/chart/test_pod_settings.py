"""What a platform team sets on each component's pods (annotations, labels, placement, extra env and
volumes, the workers' ServiceAccount), the broker's default spread, and the pod labels that keep a
chart bump from restarting the broker. Rendered with Helm 3 and Helm 4; no cluster needed."""

import shutil
from pathlib import Path

import pytest
import yaml

from tests.chart.test_render import CHART, HELMS, helm, render

COMPONENTS = {"rabbitmq": ("StatefulSet", "wf-workfleet-rabbitmq", "rabbitmq"),
              "worker": ("Deployment", "wf-workfleet-worker", "worker"),
              "operator": ("Deployment", "wf-workfleet-operator", "operator")}
TASK = ("--set", "worker.task=my_app.tasks:resize")


def pod_settings(component: str) -> dict:
    """A value for every pod setting, naming the component so that no two are alike."""
    return {
        "podAnnotations": {"example.com/owner": f"team-{component}"},
        "podLabels": {"example.com/tier": component},
        "priorityClassName": f"{component}-priority",
        "nodeSelector": {"example.com/pool": component},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": component, "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "example.com/zone", "operator": "In", "values": [component]}]}]}}},
        "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone",
                                       "whenUnsatisfiable": "DoNotSchedule",
                                       "labelSelector": {"matchLabels": {"example.com/tier": component}}}],
        "extraEnv": [{"name": "EXTRA", "value": component}],
        "extraVolumes": [{"name": "extra", "configMap": {"name": f"{component}-extra"}}],
        "extraVolumeMounts": [{"name": "extra", "mountPath": "/etc/extra"}],
    }


def bumped_chart(tmp_path) -> Path:
    """A copy of the chart with a new version and appVersion, nothing else changed."""
    bumped = tmp_path / "workfleet"
    shutil.copytree(CHART, bumped)
    chart = yaml.safe_load((bumped / "Chart.yaml").read_text())
    chart["version"], chart["appVersion"] = "9.9.9", "9.9.9"
    (bumped / "Chart.yaml").write_text(yaml.safe_dump(chart))
    return bumped


def by_kind(docs: list[dict]) -> dict[tuple[str, str], dict]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}


def values_file(tmp_path, values: dict):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


@pytest.mark.parametrize("binary", HELMS)
def test_every_pod_setting_reaches_every_component(binary, tmp_path):
    values = {component: pod_settings(component) for component in COMPONENTS}
    values["worker"]["task"] = "my_app.tasks:resize"
    docs = by_kind(render(binary, "-f", values_file(tmp_path, values)))
    for component, (kind, name, container_name) in COMPONENTS.items():
        settings = pod_settings(component)
        template = docs[(kind, name)]["spec"]["template"]
        spec = template["spec"]
        assert template["metadata"]["annotations"]["example.com/owner"] == f"team-{component}"
        assert template["metadata"]["labels"]["example.com/tier"] == component
        for field in ("priorityClassName", "nodeSelector", "tolerations", "affinity", "topologySpreadConstraints"):
            assert spec[field] == settings[field], (component, field)
        assert settings["extraVolumes"][0] in spec["volumes"], component
        [container] = [c for c in spec["containers"] if c["name"] == container_name]
        assert settings["extraEnv"][0] in container["env"], component
        assert settings["extraVolumeMounts"][0] in container["volumeMounts"], component
    broker = docs[("StatefulSet", "wf-workfleet-rabbitmq")]["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/config" in broker, "the chart's own annotations stay beside the user's"


@pytest.mark.parametrize("binary", HELMS)
def test_the_workers_run_as_their_own_service_account_without_a_token(binary):
    docs = by_kind(render(binary, *TASK, "--set", "worker.serviceAccount.annotations.iam\\.gke\\.io/gcp-service-account=tasks@p.iam"))
    account = docs[("ServiceAccount", "wf-workfleet-worker")]
    assert account["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": "tasks@p.iam"}
    assert account["automountServiceAccountToken"] is False
    pod = docs[("Deployment", "wf-workfleet-worker")]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "wf-workfleet-worker" and pod["automountServiceAccountToken"] is False

    named = by_kind(render(binary, *TASK, "--set", "worker.serviceAccount.create=false",
                           "--set", "worker.serviceAccount.name=shared", "--set", "worker.serviceAccount.automount=true"))
    assert ("ServiceAccount", "wf-workfleet-worker") not in named
    pod = named[("Deployment", "wf-workfleet-worker")]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "shared" and pod["automountServiceAccountToken"] is True


@pytest.mark.parametrize("binary", HELMS)
def test_three_broker_nodes_spread_over_kubernetes_nodes_unless_told_otherwise(binary):
    def spread(*args: str):
        docs = by_kind(render(binary, *TASK, *args))
        return docs[("StatefulSet", "wf-workfleet-rabbitmq")]["spec"]["template"]["spec"].get("topologySpreadConstraints")

    [constraint] = spread("--set", "rabbitmq.replicas=3")
    assert constraint["topologyKey"] == "kubernetes.io/hostname"
    assert constraint["whenUnsatisfiable"] == "ScheduleAnyway", "soft: one Kubernetes node still runs all three"
    assert constraint["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": "workfleet", "app.kubernetes.io/instance": "wf",
                                                          "app.kubernetes.io/component": "rabbitmq"}
    assert spread("--set", "rabbitmq.replicas=3", "--set-json", "rabbitmq.topologySpreadConstraints=[]") is None
    assert spread() is None, "one node has nothing to spread"


@pytest.mark.parametrize("binary", HELMS)
def test_a_chart_bump_leaves_every_pod_template_unchanged(binary, tmp_path):
    """A new chart version and app version with the same values and images: no pod template
    changes, so no pod restarts (the broker's restart would be an outage on one node)."""
    bumped = bumped_chart(tmp_path)
    pinned = (*TASK, "--set", "image.tag=0.1.0", "--set", "rabbitmq.replicas=3")

    def templates(chart_path) -> dict:
        result = helm(binary, "template", "wf", str(chart_path), "--namespace", "fleet", *pinned)
        assert result.returncode == 0, result.stderr
        docs = by_kind([doc for doc in yaml.safe_load_all(result.stdout) if doc])
        return {key: doc["spec"]["template"] for key, doc in docs.items() if doc["kind"] in ("StatefulSet", "Deployment")}

    before, after = templates(CHART), templates(bumped)
    assert len(before) == 3
    assert before == after


@pytest.mark.parametrize("binary", HELMS)
def test_the_chart_can_be_a_dependency(binary):
    """A parent chart passes `global`; the strict schema must accept it."""
    result = helm(binary, "template", "wf", str(CHART), *TASK, "--set", "global.imageRegistry=registry.example.com")
    assert result.returncode == 0, result.stderr
