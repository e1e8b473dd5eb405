"""The chart renders, lints and validates with Helm 3 and Helm 4 for every ci/ scenario,
and bad values fail with a message that names the value. No cluster needed."""

import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.support.controlplane import BIN

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "workfleet"
SCENARIOS = sorted((CHART / "ci").glob("*-values.yaml"))
HELMS = ["helm", "helm3"]
KUBERNETES = "1.37.0"
# Tell Helm the cluster serves prometheus-operator's API, so the monitoring objects render.
MONITORING_API = "--api-versions=monitoring.coreos.com/v1"
# Kinds the offline Kubernetes schemas do not carry: our own CRD's objects (the API server checks
# those in tests/cluster) and prometheus-operator's, checked against its CRDs' schemas.
CUSTOM_KINDS = {"WorkerPool"}
PROMETHEUS_OPERATOR = ROOT / "tests" / "upstream" / "prometheus-operator-v0.93.0"
MONITORING_CRDS = [PROMETHEUS_OPERATOR / f"monitoring.coreos.com_{plural}.yaml"
                   for plural in ("podmonitors", "servicemonitors", "prometheusrules")]


def helm(binary: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / binary), *args], capture_output=True, text=True, timeout=120)


def render(binary: str, *args: str) -> list[dict]:
    result = helm(binary, "template", "wf", str(CHART), "--namespace", "fleet", *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize("binary", HELMS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda path: path.stem)
def test_scenario_lints_and_every_manifest_is_valid(binary, scenario):
    linted = helm(binary, "lint", "--strict", str(CHART), "-f", str(scenario))
    assert linted.returncode == 0, linted.stdout + linted.stderr
    manifests = render(binary, "-f", str(scenario), MONITORING_API)
    monitoring_schemas = prometheus_operator_schemas()
    for manifest in manifests:
        if manifest["kind"] in monitoring_schemas:
            # No metaschema check: the CRDs' patterns are Go regexps (RE2), which Python's re refuses.
            jsonschema.Draft7Validator(monitoring_schemas[manifest["kind"]]).validate(manifest)
        elif manifest["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


def prometheus_operator_schemas() -> dict[str, dict]:
    """Kind -> the v1 schema from prometheus-operator's own CRDs."""
    schemas = {}
    for path in MONITORING_CRDS:
        crd = yaml.safe_load(path.read_text())
        [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
        schemas[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return schemas


def test_monitoring_scenario_renders_every_monitoring_object():
    docs = render("helm", "-f", str(CHART / "ci" / "monitoring-values.yaml"), MONITORING_API)
    monitoring = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs
                  if doc["apiVersion"] == "monitoring.coreos.com/v1"}
    assert set(monitoring) == {("PodMonitor", "wf-workfleet-worker"), ("ServiceMonitor", "wf-workfleet-operator"),
                               ("ServiceMonitor", "wf-workfleet-rabbitmq"), ("PrometheusRule", "wf-workfleet")}
    for doc in monitoring.values():
        assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"


@pytest.mark.parametrize("binary", HELMS)
def test_workers_are_scaled_by_the_operator_or_fixed(binary):
    by_kind = lambda docs: {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}  # noqa: E731
    scaled = by_kind(render(binary, "-f", str(CHART / "ci" / "default-values.yaml")))
    workers = scaled[("Deployment", "wf-workfleet-worker")]
    assert "replicas" not in workers["spec"], "the operator owns the count: an upgrade must not reset it"
    assert workers["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    pool = scaled[("WorkerPool", "wf-workfleet-worker")]["spec"]
    assert pool["scaleTargetRef"]["name"] == "wf-workfleet-worker"
    assert pool["broker"]["credentialsSecretRef"]["name"] == "wf-workfleet-credentials"
    assert ("Deployment", "wf-workfleet-operator") in scaled

    fixed = by_kind(render(binary, "-f", str(CHART / "ci" / "autoscaling-off-values.yaml")))
    assert fixed[("Deployment", "wf-workfleet-worker")]["spec"]["replicas"] == 3
    assert not [key for key in fixed if key[0] == "WorkerPool" or key[1] == "wf-workfleet-operator"]


@pytest.mark.parametrize("binary", HELMS)
def test_every_pod_meets_the_restricted_profile_on_paper(binary):
    """What the restricted Pod Security Standard checks, read from the rendered pods
    (tests/cluster proves it with the API server's own admission)."""
    for scenario in SCENARIOS:
        for doc in render(binary, "-f", str(scenario)):
            if doc["kind"] not in ("Deployment", "StatefulSet", "Pod"):
                continue
            pod = doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert isinstance(pod["securityContext"]["runAsUser"], int) and pod["securityContext"]["runAsUser"] > 0
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            for container in pod["containers"] + pod.get("initContainers", []):
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
                assert context["readOnlyRootFilesystem"] is True, (doc["metadata"]["name"], container["name"])


@pytest.mark.parametrize("binary", HELMS)
@pytest.mark.parametrize(
    "args, message",
    [
        # Helm 3 and 4 word schema errors differently; both name the value and say what is wrong.
        (["--set", "worker.task=a.b:c", "--set", "worker.tsak=x"], "tsak|not allowed"),
        (["--set", "worker.task=a.b:c", "--set", "worker.prefetch=lots"], 'worker.prefetch "lots" must be auto or a number from 1 to 1000'),
        (["--set", "worker.task=a.b:c", "--set", "worker.prefetch=0"], "prefetch|1"),
        (["--set", "worker.task=a.b:c", "--set", "worker.retryDelays=5"],
         'worker.retryDelays "5" must be up to 20 delays separated by commas, each 0 or a number with ms, s, m or h'),
        (["--set", "worker.task=a.b:c", "--set", "rabbitmq.replicas=2"], "replicas|must be one of"),
        (["--set", "worker.task=a.b:c", "--set", "autoscaling.minReplicas=20"],
         "autoscaling.minReplicas (20) must not be greater than autoscaling.maxReplicas (10)"),
        ([], "worker.task is required"),
        (["--set", "worker.task=resize"], 'worker.task "resize" must be package.module:function'),
        (["--set", "worker.queue=amq.tasks", "--set", "worker.task=a.b:c"], "queue|not"),
        (["--set", "worker.task=a.b:c", "--set", "monitoring.rules.disabled={WorkfleetBacklogGrowin}"],
         "disabled|must be one of"),
        (["--set", "worker.task=a.b:c", "--set", "monitoring.interval=fast"], "interval|pattern|match"),
        (["--set", "worker.task=a.b:c", "--set", "worker.concurrency=8", "--set", "worker.prefetch=4"],
         "worker.prefetch (4) must be at least worker.concurrency (8), or auto"),
        (["--set", "worker.task=a.b:c", "--set", "worker.concurrency=0"], "concurrency|1"),
        (["--set", "worker.task=a.b:c", "--set", "rabbitmq.resources.limits.memory=lots"],
         '"lots" is not a memory or disk size'),
        (["--set", "worker.task=a.b:c", "--set", "rabbitmq.replicas=3", "--set", "rabbitmq.terminationGracePeriodSeconds=60"],
         "rabbitmq.terminationGracePeriodSeconds (60) must be at least 120 with three nodes"),
        (["--set", "worker.task=a.b:c", "--set", "worker.podLabels.app\\.kubernetes\\.io/component=x"],
         "worker.podLabels must not set app.kubernetes.io/component"),
    ],
)
def test_bad_values_fail_naming_the_value(binary, args, message):
    result = helm(binary, "template", "wf", str(CHART), *args)
    assert result.returncode != 0
    for part in message.split("|"):
        assert part.lower() in result.stderr.lower(), result.stderr


@pytest.mark.parametrize("binary", HELMS)
def test_worker_concurrency_reaches_the_workers_and_the_default_backlog_per_pod(binary):
    """worker.concurrency is the workers' WORKFLEET_CONCURRENCY; with messagesPerReplica unset, a pod
    is there for 10 messages per concurrent task; a value set by the user wins."""
    def rendered(*values: str) -> tuple[dict, dict]:
        docs = render(binary, "-f", str(CHART / "ci" / "default-values.yaml"), *values)
        [deployment] = [doc for doc in docs if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "wf-workfleet-worker"]
        [pool] = [doc for doc in docs if doc["kind"] == "WorkerPool"]
        env = {item["name"]: item.get("value") for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        return env, pool["spec"]["policy"]

    env, policy = rendered()
    assert (env["WORKFLEET_CONCURRENCY"], policy["messagesPerReplica"]) == ("1", 10)
    env, policy = rendered("--set", "worker.concurrency=8")
    assert (env["WORKFLEET_CONCURRENCY"], policy["messagesPerReplica"]) == ("8", 80)
    _, policy = rendered("--set", "worker.concurrency=8", "--set", "autoscaling.messagesPerReplica=25")
    assert policy["messagesPerReplica"] == 25


def test_every_problem_is_reported_at_once():
    result = helm("helm", "template", "wf", str(CHART), "--set", "autoscaling.minReplicas=20",
                  "--set", "autoscaling.fallback.replicas=50")
    assert result.returncode != 0
    for problem in ("worker.task is required", "autoscaling.minReplicas (20)", "autoscaling.fallback.replicas (50)"):
        assert problem in result.stderr, result.stderr


def selector(component: str) -> dict:
    return {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "workfleet", "app.kubernetes.io/instance": "wf",
                                            "app.kubernetes.io/component": component}}}


def ingress_by_port(policy: dict) -> dict[str, list[dict]]:
    return {port["port"]: rule["from"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}


@pytest.mark.parametrize("binary", HELMS)
def test_network_policies_open_each_port_only_to_its_clients(binary):
    docs = render(binary, "-f", str(CHART / "ci" / "default-values.yaml"))
    policies = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "NetworkPolicy"}
    monitoring = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    broker = ingress_by_port(policies["wf-workfleet-rabbitmq"])
    assert broker == {
        "amqp": [selector("worker"), selector("operator"),
                 {"podSelector": {"matchLabels": {"workfleet.dev/broker-client": "wf-workfleet"}}}],
        "management": [selector("operator"), selector("test")],
        "prometheus": monitoring,
        "epmd": [selector("rabbitmq")],
        "cluster": [selector("rabbitmq")],
    }
    for component in ("worker", "operator"):
        assert ingress_by_port(policies[f"wf-workfleet-{component}"]) == {"metrics": monitoring}
    # Every pod of the release is selected by a policy, so none is left open.
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert any(policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
                       for policy in policies.values()), doc["metadata"]["name"]

    fixed = render(binary, "-f", str(CHART / "ci" / "autoscaling-off-values.yaml"),
                   "--set", "networkPolicy.producers[0].namespaceSelector.matchLabels.team=web")
    policies = {doc["metadata"]["name"]: doc for doc in fixed if doc["kind"] == "NetworkPolicy"}
    assert set(policies) == {"wf-workfleet-rabbitmq", "wf-workfleet-worker"}
    broker = ingress_by_port(policies["wf-workfleet-rabbitmq"])
    assert broker["management"] == [selector("test")] and selector("operator") not in broker["amqp"]
    assert {"namespaceSelector": {"matchLabels": {"team": "web"}}} in broker["amqp"]
    assert not [doc for doc in render(binary, "-f", str(CHART / "ci" / "default-values.yaml"),
                                      "--set", "networkPolicy.enabled=false") if doc["kind"] == "NetworkPolicy"]


def test_a_task_time_limit_sets_the_consumer_timeout_grace_period_and_alert():
    """With worker.taskTimeoutSeconds, the hard limit (plus grace, rounded up) is the longest a task
    can hold its message, so everything rabbitmq.longestTaskSeconds set follows it instead."""
    docs = render("helm", "--set", "worker.task=a.b:c", "--set", "worker.taskTimeoutSeconds=90",
                  "--set", "worker.taskTimeoutGraceSeconds=15", "--set", "monitoring.enabled=true", MONITORING_API)
    [workers] = [doc for doc in docs if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "wf-workfleet-worker"]
    pod = workers["spec"]["template"]["spec"]
    env = {item["name"]: item.get("value") for item in pod["containers"][0]["env"]}
    assert (env["WORKFLEET_TASK_TIMEOUT"], env["WORKFLEET_TASK_TIMEOUT_GRACE"]) == ("90", "15")
    assert pod["terminationGracePeriodSeconds"] == 105 + 30
    [config] = [doc for doc in docs if doc["kind"] == "ConfigMap" and "definitions.template.json" in doc.get("data", {})]
    assert '"consumer-timeout": ' + str((105 + 60) * 1000) in config["data"]["definitions.template.json"]
    [rule] = [doc for doc in docs if doc["kind"] == "PrometheusRule"]
    [alert] = [r for group in rule["spec"]["groups"] for r in group["rules"] if r.get("alert") == "WorkfleetTaskOverLongestTask"]
    assert alert["expr"].endswith("> 105")

    untimed = render("helm", "--set", "worker.task=a.b:c")
    [workers] = [doc for doc in untimed if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "wf-workfleet-worker"]
    env = {item["name"] for item in workers["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "WORKFLEET_TASK_TIMEOUT" not in env
    assert workers["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 1800 + 30
