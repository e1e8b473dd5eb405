"""Every value in values.yaml is documented, name first, and docs/values.md is in sync."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from values_reference import VALUES, documented_values  # noqa: E402


def leaves(tree: dict, prefix: str = "") -> set[str]:
    found = set()
    for key, value in tree.items():
        path = f"{prefix}{key}"
        found |= leaves(value, path + ".") if isinstance(value, dict) and value else {path}
    return found


def test_every_value_is_documented_name_first():
    text = VALUES.read_text()
    documented = {name for name, _, _ in documented_values(text)}
    assert documented == leaves(yaml.safe_load(text))
    for line in text.splitlines():
        if line.strip().startswith("# -- "):
            name = line.strip()[5:].split()[0].rstrip(":;,")
            assert name in documented, f"comment does not start with its value's name: {line.strip()}"


def test_docs_values_md_is_in_sync():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "values_reference.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
