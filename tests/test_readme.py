"""The README's quick start works exactly as written."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_quick_start_is_demo_then_tests():
    # `make test` is the command CI runs (.ci/run), so it is exercised by every CI run.
    assert quick_start_commands() == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_make_demo_runs_the_tutorial_to_the_end():
    result = subprocess.run(["make", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "12/12 tasks done" in result.stdout
    assert "12 confirmed" in result.stdout
    for worker in ("worker-1", "worker-2"):
        assert re.search(rf"{worker}: [1-9]\d* tasks acked, .* exit 0", result.stdout), result.stdout
