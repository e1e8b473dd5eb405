"""Write docs/values.md, the reference of the chart's values, from the comments in values.yaml.

    .venv/bin/python scripts/values_reference.py [--check]

Each documented value has a comment block starting with "# -- <name> ..." right above it
(helm-docs' convention); the table lists every such value with its default.
With --check, exit 1 if docs/values.md is not what this would write (the test suite runs it).
"""

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "charts" / "workfleet" / "values.yaml"
REFERENCE = ROOT / "docs" / "values.md"


def documented_values(text: str) -> list[tuple[str, str, str]]:
    """(dotted name, default as YAML, description) for every value with a "# --" comment."""
    defaults = yaml.safe_load(text)
    found, parents, comment = [], [], None
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("# --"):
            comment = [stripped[4:].strip()]
        elif stripped.startswith("#") and comment is not None:
            comment.append(stripped[1:].strip())
        elif stripped and not stripped.startswith("#") and ":" in stripped:
            key = stripped.split(":", 1)[0]
            parents = [(level, name) for level, name in parents if level < indent]
            path = [name for _, name in parents] + [key]
            if comment is not None:
                default = defaults
                for part in path:
                    default = default[part]
                description = " ".join(comment)
                name = ".".join(path)
                found.append((name, json.dumps(default), description.removeprefix(name).lstrip(":;,").strip()))
                comment = None
            parents.append((indent, key))
        elif not stripped:
            comment = None
    return found


def reference() -> str:
    lines = [
        "# Chart values",
        "",
        "Generated from `charts/workfleet/values.yaml` by `scripts/values_reference.py`; a test keeps it in sync.",
        "",
        "| value | default | meaning |",
        "|---|---|---|",
    ]
    for name, default, description in documented_values(VALUES.read_text()):
        cell = description.replace("|", r"\|")  # a pipe would end the table cell
        lines.append(f"| `{name}` | `{default}` | {cell} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    text = reference()
    if "--check" in sys.argv[1:]:
        if REFERENCE.read_text() != text:
            print(f"{REFERENCE} is out of date: run scripts/values_reference.py", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
