"""The README's quick start works exactly as written."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.broker import queue_depth, wait_until
from tests.support.dead_letters import fail_into_dead_letter_queue
from workfleet_common.logs import read_delivery_outcomes

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


def test_make_demo_scales_a_fleet_up_and_back_down_and_loses_nothing():
    result = subprocess.run(["make", "demo"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tasks 60, confirmed 60, settled 60, lost 0" in result.stdout
    counts = [(int(before), int(after)) for before, after in re.findall(r"workers (\d+) -> (\d+)", result.stdout)]
    assert counts[0] == (0, 4) and counts[-1][1] == 0, result.stdout


def test_running_workers_and_producers_snippet(broker, tmp_path):
    """The snippet as written, with its broker URL pointed at the test's private node."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Running workers and producers", 1)[1]
    lines = re.search(r"```sh\n(.*?)```", section, re.S).group(1).strip().splitlines()
    export, worker_line, producer_line = lines
    assert export.startswith("export WORKFLEET_AMQP_URL=")
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, WORKFLEET_AMQP_URL=broker.amqp_url, WORKFLEET_DOT_SECONDS="0.01", WORKFLEET_METRICS_PORT="0")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(worker_line.rstrip("& ").split(), env=env, stderr=open(log, "wb"))
    try:
        produced = subprocess.run(producer_line.split(), env=env, capture_output=True, text=True, timeout=60)
        assert produced.returncode == 0, produced.stderr
        assert "3 confirmed" in produced.stdout
        wait_until(lambda: len(read_delivery_outcomes(log)) == 3, timeout=60, message="three tasks acked")
        assert {line["outcome"] for line in read_delivery_outcomes(log)} == {"acked"}
    finally:
        worker.terminate()
        assert worker.wait(60) == 0


def test_make_controlplane_starts_and_stops(tmp_path):
    """`make controlplane` as the README gives it: it prints a working KUBECONFIG and,
    on SIGTERM to the PID it prints, stops everything and removes its folder."""
    process = subprocess.Popen(["make", "controlplane"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        while not any(line.startswith("kubectl:") for line in lines):
            line = process.stdout.readline()
            assert line, "make controlplane ended early: " + "".join(lines)
            lines.append(line)
        kubeconfig = next(line for line in lines if line.startswith("export KUBECONFIG=")).split("=", 1)[1].strip()
        pid = int(re.search(r"kill (\d+)", lines[-1]).group(1))
        kubectl = ROOT / ".cache" / "bin" / "kubectl"
        result = subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", "get", "namespaces"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "kube-system" in result.stdout, result.stderr
        os.kill(pid, signal.SIGTERM)
        assert process.wait(60) == 0
        assert "stopped" in process.stdout.read()
        assert not Path(kubeconfig).exists(), "the control plane's folder must be removed"
    finally:
        if process.poll() is None:
            process.kill()


def test_dead_letter_queue_snippet(own_broker, workers):
    """The `workfleet dlq` lines as written (ID replaced by a real dead letter's id),
    against the test's own node, on dead letters a real worker made."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## The dead-letter queue", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    lines = [line.split("#", 1)[0].split() for line in block.splitlines() if line.strip()]
    assert [line[:3] for line in lines] == [["workfleet", "dlq", command] for command in ("list", "show", "requeue", "purge")]

    ids, worker = fail_into_dead_letter_queue(own_broker.amqp_url, "images", workers, ["cat.jpg", "dog.jpg"])
    assert worker.terminate() == 0

    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, WORKFLEET_AMQP_URL=own_broker.amqp_url)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    outputs = []
    for line in lines:
        command = [ids[0] if word == "ID" else word for word in line]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        outputs.append(result.stdout)
    listed, shown, requeued, purged = outputs
    assert listed.startswith("2 message(s) in images.dlq") and ids[0] in listed and ids[1] in listed
    assert f"message_id: {ids[0]}" in shown and shown.rstrip().endswith("cat.jpg")
    assert "requeued 2 of 2" in requeued
    assert "purged 0" in purged
    assert queue_depth(own_broker.amqp_url, "images")[0] == 2


def test_local_fleet_snippet_scales_with_what_is_published(tmp_path):
    """The snippet as written: it starts its own broker; the test publishes to the address it
    prints, sees workers started for the backlog, then stops it with Ctrl-C."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## The local fleet: `workfleet up`", 1)[1]
    [line] = re.search(r"```sh\n(.*?)```", section, re.S).group(1).strip().splitlines()
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", WORKFLEET_DOT_SECONDS="0.5")
    fleet = subprocess.Popen(line.split(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = fleet.stdout.readline()
        amqp_url = re.search(r"on (amqp://\S+)", first).group(1)
        produced = subprocess.run(["workfleet-produce", "--amqp-url", amqp_url, *["..."] * 30], env=env,
                                  capture_output=True, text=True, timeout=60)
        assert produced.returncode == 0, produced.stderr
        seen = []
        wait_until(lambda: seen.append(fleet.stdout.readline()) or re.search(r"workers \d -> 3", seen[-1]),
                   timeout=60, message="three workers for a backlog of 30")
        fleet.send_signal(signal.SIGINT)
        assert fleet.wait(60) == 0
    finally:  # Ctrl-C, so that it stops its broker and workers, whatever failed above
        if fleet.poll() is None:
            fleet.send_signal(signal.SIGINT)
            fleet.wait(60)


def test_concurrency_snippets_run_an_async_task_a_hundred_at_a_time(broker, tmp_path):
    """The Concurrency section's task, saved as my_tasks.py, run by its worker line as written (queue
    `pages`, concurrency 100) against the test's private node: 300 messages are acked, many of
    their tasks overlap, and each task saw its own delivery (the set holds every message id once)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("**Concurrency.**", 1)[1].split("\n**", 1)[0]
    task_source = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    [worker_line] = re.search(r"```sh\n(.*?)```", section, re.S).group(1).strip().splitlines()
    # The wrapper also waits a second first: a wide enough overlap that a loaded machine's slow
    # start of a hundred tasks cannot hide it (the snippet's own 0.1 s can be).
    (tmp_path / "my_tasks.py").write_text(task_source + "\n\nasync def count(body, headers):\n"
                                          "    await asyncio.sleep(1)\n"
                                          "    await fetch(body, headers)\n"
                                          "    print(len(done), flush=True)\n")
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, WORKFLEET_AMQP_URL=broker.amqp_url, WORKFLEET_METRICS_PORT="0",
               PYTHONPATH=str(tmp_path), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "worker.log"
    # The README's line, with the snippet's task wrapped to print how many ids it has seen.
    command = worker_line.replace("my_tasks:fetch", "my_tasks:count").split()
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=open(log, "wb"), text=True)
    try:
        produced = subprocess.run(["workfleet-produce", "--queue", "pages", "--count", "300", "page"], env=env,
                                  capture_output=True, text=True, timeout=60)
        assert produced.returncode == 0, produced.stderr
        wait_until(lambda: len(read_delivery_outcomes(log)) == 300, timeout=60, message="300 tasks acked")
        outcomes = read_delivery_outcomes(log)
        assert {line["outcome"] for line in outcomes} == {"acked"}
        assert len({line["message_id"] for line in outcomes}) == 300
        starts = sorted(line["started_at"] for line in outcomes)
        first_end = min(line["started_at"] + line["duration_s"] for line in outcomes)
        assert starts[99] < first_end, "a hundred tasks ran at once: the hundredth started before any ended"
    finally:
        worker.terminate()
        assert worker.wait(60) == 0
    assert max(int(line) for line in worker.stdout.read().split()) == 300
