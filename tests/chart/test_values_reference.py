"""Every value in values.yaml is documented, name first, and docs/values.md is in sync."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from values_reference import VALUES, documented_values  # noqa: E402


def paths(tree: dict, prefix: str = "") -> tuple[set[str], set[str]]:
    """(leaves, maps): the dotted names of the plain values and of the nested maps."""
    leaves, maps = set(), set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            maps.add(path)
            inner_leaves, inner_maps = paths(value, path + ".")
            leaves, maps = leaves | inner_leaves, maps | inner_maps
        else:
            leaves.add(path)
    return leaves, maps


def test_every_value_is_documented_name_first():
    text = VALUES.read_text()
    documented = {name for name, _, _ in documented_values(text)}
    leaves, maps = paths(yaml.safe_load(text))
    # A map with a default (like the dashboard's labels) is documented as one value.
    undocumented = {leaf for leaf in leaves if not any(leaf == name or leaf.startswith(name + ".") for name in documented)}
    assert not undocumented
    assert documented <= leaves | maps, documented - (leaves | maps)
    for line in text.splitlines():
        if line.strip().startswith("# -- "):
            name = line.strip()[5:].split()[0].rstrip(":;,")
            assert name in documented, f"comment does not start with its value's name: {line.strip()}"


def test_docs_values_md_is_in_sync():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "values_reference.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
