"""Components may import workfleet_common; common imports no component; components
never import each other. Checked from the source, so a lazy import counts too."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "workfleet_common": ROOT / "common" / "workfleet_common",
    "workfleet_worker": ROOT / "worker" / "workfleet_worker",
    "workfleet_producer": ROOT / "producer" / "workfleet_producer",
    "workfleet_operator": ROOT / "operator" / "workfleet_operator",
}


def imported_packages(package_dir: Path) -> set[str]:
    found = set()
    for path in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_imports_go_one_way(package):
    allowed = {package} if package == "workfleet_common" else {package, "workfleet_common"}
    assert imported_packages(PACKAGES[package]) <= allowed


def test_no_module_shadows_the_standard_library():
    import sys

    names = {path.stem for directory in PACKAGES.values() for path in directory.rglob("*.py")}
    assert not names & set(sys.stdlib_module_names)
