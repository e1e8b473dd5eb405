"""The images' Dockerfiles pass hadolint and run as a numeric non-root user with an
exec-form entrypoint; skaffold.yaml is valid against skaffold's own published schema
and builds exactly the images the chart's values bind."""

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SKAFFOLD_SCHEMA = ROOT / "tests" / "upstream" / "skaffold-v2.24.0" / "v4beta14.json"
COMPONENTS = {"worker": "workfleet-worker", "operator": "workfleet-operator", "producer": "workfleet-produce"}
HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILE = ROOT / "Dockerfile"


def stages(text: str) -> dict[str, str]:
    """Each build stage's text, by its name ("FROM x AS name")."""
    found = {}
    for block in re.split(r"^(?=FROM )", text, flags=re.M)[1:]:
        name = re.match(r"FROM \S+ AS (\S+)", block).group(1)
        found[name] = block
    return found


def test_dockerfile_lints_and_builds_each_component_alone():
    linted = subprocess.run([str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    text = DOCKERFILE.read_text()
    assert "ARG PYTHON_IMAGE=python:" in text
    by_name = stages(text)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS runtime$", by_name["runtime"], re.M)
    assert re.search(r"^USER \d+:\d+$", by_name["runtime"], re.M), "a numeric user, so runAsNonRoot can verify it"
    for component, command in COMPONENTS.items():
        image, build = by_name[component], by_name[f"{component}-build"]
        assert image.startswith("FROM runtime AS") and f"COPY --from={component}-build " in image
        assert f'ENTRYPOINT ["{command}"]' in image, "exec form, so SIGTERM reaches Python"
        assert re.findall(r'"\.\[(\w+)\]"', build) == [component], "only the component's own extra"


def test_skaffold_config_is_valid_and_builds_what_the_chart_uses():
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    schema = json.loads(SKAFFOLD_SCHEMA.read_text())
    jsonschema.validate(config, schema)
    with pytest.raises(jsonschema.ValidationError, match="'buidl' was unexpected"):
        jsonschema.validate({**{key: value for key, value in config.items() if key != "build"}, "buidl": config["build"]}, schema)
    built = {artifact["image"] for artifact in config["build"]["artifacts"]}
    values = yaml.safe_load((ROOT / "charts" / "workfleet" / "values.yaml").read_text())
    assert built == {values["worker"]["image"]["repository"], values["operator"]["image"]["repository"]}
    release = config["manifests"]["helm"]["releases"][0]
    assert (ROOT / release["chartPath"] / "Chart.yaml").exists()
    for image in built:
        key = image.replace("/", "_").replace("-", "_")
        component = image.split("/")[1]
        assert release["setValueTemplates"][f"{component}.image.repository"] == "{{.IMAGE_REPO_%s}}" % key
        assert release["setValueTemplates"][f"{component}.image.tag"] == "{{.IMAGE_TAG_%s}}" % key
    for artifact in config["build"]["artifacts"]:
        assert artifact["docker"]["dockerfile"] == "Dockerfile"
        assert artifact["docker"]["target"] == artifact["image"].split("/")[1], "the component's own target"
