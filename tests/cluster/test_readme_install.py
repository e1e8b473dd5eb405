"""The README's "Install on a cluster" section, run as written against the control plane,
with the toolchain's Helm 4 and kubectl first on PATH: install, monitoring on (with
prometheus-operator's CRDs served), scale, change the retries, upgrade. Each step is checked by what it made."""

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.controlplane import BIN

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"


def section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Install on a cluster", 1)[1].split("\n## ", 1)[0]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section(), re.S)


def test_readme_dockerfile_builds_on_the_worker_image():
    dockerfile = blocks("dockerfile")[0]
    assert dockerfile.startswith("FROM workfleet/worker:")
    linted = subprocess.run([str(HADOLINT), "-"], input=dockerfile, capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0, linted.stdout
    user = re.search(r"^USER (\d+:\d+)$", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    assert f"--chown={user}" in dockerfile, "the code belongs to the image's own user"


def test_readme_values_table_names_real_values():
    reference = (ROOT / "docs" / "values.md").read_text()
    named = re.findall(r"`([a-z]\w*(?:\.\w+)+)`", section().split("| Value |", 1)[1].split("\n\n", 1)[0])
    assert len(named) >= 10
    for value in named:
        assert f"| `{value}` |" in reference, value


def test_readme_install_scale_and_upgrade_as_written(controlplane, prometheus_operator_crds):
    install, monitoring, scale, retries, upgrade = blocks("sh")
    env = dict(os.environ, KUBECONFIG=str(controlplane.kubeconfig), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")

    def run(block: str) -> None:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, block + result.stdout + result.stderr

    def get(*what: str) -> dict:
        return json.loads(controlplane.kubectl("get", *what, "-n", "jobs", "-o", "json").stdout)

    def passwords() -> dict:
        return get("secret", "workfleet-credentials")["data"]

    def broker_config_checksum() -> str:
        return get("statefulset", "workfleet-rabbitmq")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    try:
        run(install)
        pool = get("workerpool", "workfleet-worker")
        assert pool["spec"]["maxReplicas"] == 10
        [container] = get("deployment", "workfleet-worker")["spec"]["template"]["spec"]["containers"]
        assert container["image"] == "registry.example.com/resize-worker:1.4.0"
        assert {"name": "WORKFLEET_TASK", "value": "my_app.tasks:resize"} in container["env"]
        generated = passwords()
        assert base64.b64decode(generated["producer-password"])

        run(monitoring)
        monitors = get("servicemonitors")["items"]
        assert {item["metadata"]["name"] for item in monitors} == {"workfleet-operator", "workfleet-rabbitmq"}
        assert all(item["metadata"]["labels"]["release"] == "kube-prometheus-stack" for item in monitors)
        rules = get("prometheusrule", "workfleet")["spec"]["groups"][0]["rules"]
        assert len(rules) == 9

        run(scale)
        assert get("workerpool", "workfleet-worker")["spec"]["maxReplicas"] == 30

        broker_checksum = broker_config_checksum()
        run(retries)
        [container] = get("deployment", "workfleet-worker")["spec"]["template"]["spec"]["containers"]
        assert {"name": "WORKFLEET_RETRY_DELAYS", "value": "5s,1m,10m"} in container["env"]
        definitions = json.loads(get("configmap", "workfleet-rabbitmq")["data"]["definitions.template.json"])
        [policy] = definitions["policies"]
        assert policy["definition"]["delivery-limit"] == 5
        assert broker_config_checksum() != broker_checksum, "the broker's pods restart to load the new definitions"

        run(upgrade)
        assert get("workerpool", "workfleet-worker")["spec"]["maxReplicas"] == 30, "--reset-then-reuse-values keeps it"
        assert passwords() == generated, "upgrades keep the generated passwords"
        crd = yaml.safe_load((ROOT / "charts" / "workfleet" / "crds" / "workerpools.workfleet.dev.yaml").read_text())
        served = json.loads(controlplane.kubectl("get", "crd", crd["metadata"]["name"], "-o", "json").stdout)
        assert served["spec"]["versions"][0]["schema"] == crd["spec"]["versions"][0]["schema"]
    finally:
        subprocess.run([str(BIN / "helm"), f"--kubeconfig={controlplane.kubeconfig}", "uninstall", "workfleet", "-n", "jobs"],
                       capture_output=True, timeout=120)
        controlplane.kubectl("delete", "namespace", "jobs", "--wait=false", check=False)
