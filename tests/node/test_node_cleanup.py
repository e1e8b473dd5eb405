"""`make cluster` puts the host back as it was when stopped, and a run killed halfway is
cleaned up by the next start."""

import os
import re
import signal
import subprocess
from pathlib import Path

from tests.support import host_state
from tests.support.cluster import FOLDER, NodeCluster
from tests.support.node_config import BRIDGE

ROOT = Path(__file__).resolve().parents[2]


def start_make_cluster() -> tuple[subprocess.Popen, int, list[str]]:
    process = subprocess.Popen(["make", "cluster"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    lines = []
    while not any(line.startswith("kubectl:") for line in lines):
        line = process.stdout.readline()
        assert line, "make cluster ended early: " + "".join(lines)
        lines.append(line)
    return process, int(re.search(r"kill (\d+)", lines[-1]).group(1)), lines


def test_make_cluster_stops_cleanly_and_survives_a_killed_run():
    process, pid, lines = start_make_cluster()
    assert any(line.startswith("export KUBECONFIG=") for line in lines)
    os.kill(pid, signal.SIGTERM)
    assert process.wait(120) == 0
    assert "the host is as it was" in process.stdout.read()
    assert host_state.leftovers(FOLDER, BRIDGE) == []

    # Killed with no chance to clean up: containerd, the kubelet and the rest run on.
    process, pid, _ = start_make_cluster()
    os.kill(pid, signal.SIGKILL)
    process.wait(60)
    assert host_state.leftovers(FOLDER, BRIDGE), "a killed run leaves its cluster behind"
    with NodeCluster() as cluster:  # cleans up first, then starts
        assert cluster.kubectl("get", "nodes").returncode == 0
    assert host_state.leftovers(FOLDER, BRIDGE) == []
