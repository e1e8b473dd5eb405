"""`workfleet up`: the autoscaled fleet on one machine, run as users run it (a process of its own),
judged by the workers' logs and the broker: nothing lost, workers scaled up and back down,
replaced when killed, and no process left behind."""

import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.broker import declare, get_all, publish, wait_until
from tests.support.monitoring_checks import assert_dashboard_and_alerts_read_series
from tests.support.prometheus import PrometheusAPI
from workfleet_common.logs import read_delivery_outcomes
from workfleet_common.topology import Topology

DECISION = re.compile(r"workers (\d+) -> (\d+)")
PRIVATE_BROKER = re.compile(r"broker   private node of .* on (amqp://\S+)\r?\n")


def marked_env(**extra: str) -> tuple[dict[str, str], str]:
    """The environment for one run, with a marker every process it starts inherits."""
    marker = uuid.uuid4().hex
    return dict(os.environ, WORKFLEET_TEST_RUN=marker, **extra), marker


def processes_with(marker: str) -> list[str]:
    """Command lines of the live processes whose environment carries the marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if f"WORKFLEET_TEST_RUN={marker}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # gone meanwhile, or a kernel thread
            continue
    return found


def up(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workfleet_operator.cli", "up", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(run: subprocess.Popen) -> None:
    """End a run whatever the test did: Ctrl-C first, so `up` stops its workers and broker (a
    SIGKILL would orphan them), then SIGKILL if it does not exit."""
    if run.poll() is None:
        run.send_signal(signal.SIGINT)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()


def worker_pids(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and b"workfleet_worker" in (entry / "cmdline").read_bytes()
                    and f"WORKFLEET_TEST_RUN={marker}".encode() in (entry / "environ").read_bytes().split(b"\0")):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def decisions(output: str) -> list[tuple[int, int]]:
    return [(int(before), int(after)) for before, after in DECISION.findall(output)]


def test_demo_scales_up_drains_scales_down_and_leaves_nothing_behind():
    env, marker = marked_env()
    run = up("--demo", "--min", "0", "--max", "4", "--tasks", "40", "--stabilization-seconds", "5", env=env)
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output
    assert "tasks 40, confirmed 40, settled 40, lost 0" in output
    steps = decisions(output)
    assert steps[0][0] == 0 and max(after for _, after in steps) == 4, output
    assert steps[-1][1] == 0, "back to --min 0"
    assert "private node of RabbitMQ 4" in output
    assert processes_with(marker) == [], "workers, broker and epmd all stopped"


def test_a_killed_worker_is_replaced_and_its_task_redelivered(tmp_path):
    """SIGKILL of a worker holding a 3 s task, mid-burst: another worker is started in its place,
    the task comes back and is done, nothing is lost."""
    env, marker = marked_env()
    run = up("--demo", "--min", "0", "--max", "3", "--tasks", "30", "--dot-seconds", "0.75",
             "--stabilization-seconds", "5", "--logs", str(tmp_path), env=env)
    try:
        wait_until(lambda: len(worker_pids(marker)) == 3, timeout=120, message="three workers")
        time.sleep(2)  # each has a task in hand
        os.kill(worker_pids(marker)[0], signal.SIGKILL)
        output, _ = run.communicate(timeout=300)
    finally:
        stop(run)
    assert run.returncode == 0, output
    assert "lost 0" in output
    replaced = int(re.search(r"workers replaced after exiting unasked (\d+)", output).group(1))
    redeliveries = int(re.search(r"redeliveries (\d+)", output).group(1))
    assert replaced >= 1 and redeliveries >= 1, output
    assert processes_with(marker) == []


def test_demo_with_chaos_loses_nothing():
    """--chaos SIGKILLs a busy worker every few seconds: each costs a redelivery, never a task."""
    env, marker = marked_env()
    run = up("--demo", "--chaos", "--max", "3", "--tasks", "40", "--dot-seconds", "0.5", env=env)
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output
    assert "lost 0" in output
    killed = int(re.search(r"workers killed by --chaos (\d+)", output).group(1))
    redeliveries = int(re.search(r"redeliveries (\d+)", output).group(1))
    assert killed >= 1 and redeliveries >= 1, output  # a kill can land just after an ack: not one each
    assert processes_with(marker) == []


def test_ctrl_c_mid_burst_stops_within_the_grace_period_and_loses_nothing(broker, queue_name, tmp_path):
    """SIGINT while workers hold tasks: they finish them and exit, `up` returns within the grace
    period; every confirmed message was acked by a worker or is still in the queue."""
    env, marker = marked_env(WORKFLEET_DOT_SECONDS="1")
    declare(broker.amqp_url, Topology(queue_name))  # as a producer does before publishing
    run = up("--amqp-url", broker.amqp_url, "--management-url", broker.management_url, "--queue", queue_name,
             "--min", "0", "--max", "3", "--grace-seconds", "20", "--logs", str(tmp_path), env=env)
    try:
        ids, confirmed = publish(broker.amqp_url, queue_name, ["..."] * 30)
        wait_until(lambda: len(worker_pids(marker)) == 3, timeout=120, message="three workers")
        wait_until(lambda: acked_ids(tmp_path), timeout=60, message="some tasks done")
        run.send_signal(signal.SIGINT)
        stopped_at = time.monotonic()
        output, _ = run.communicate(timeout=60)
        assert time.monotonic() - stopped_at < 20, "stopped within the grace period"
    finally:
        stop(run)
    assert run.returncode == 0, output
    assert processes_with(marker) == []
    left = {properties.message_id for properties, _ in get_all(broker.amqp_url, queue_name)}
    done = acked_ids(tmp_path)
    assert confirmed <= done | left, f"lost: {confirmed - done - left}"
    assert left, "stopped mid-burst, with work left in the queue"


class TerminalJob:
    """A command run as a shell runs a job on a terminal: a process group of its own (the shell's
    job), its output on a pseudo-terminal that the test reads as it comes."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.controller, terminal = os.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120 x 40
        self.process = subprocess.Popen(args, env=dict(env, TERM="xterm-256color"), stdin=subprocess.DEVNULL,
                                        stdout=terminal, stderr=terminal, start_new_session=True)
        os.close(terminal)
        self.output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.controller, 65536)
            except OSError:  # the terminal closed, or the job's end of it gone
                return
            if not chunk:
                return
            self.output += chunk

    def wait(self, timeout: float) -> int:
        """The exit status, once the output is all read."""
        status = self.process.wait(timeout)
        self._reader.join(30)
        os.close(self.controller)
        return status

    def ctrl_c(self) -> None:
        """What the terminal does on Ctrl-C: SIGINT to the foreground job's whole process group."""
        os.killpg(self.process.pid, signal.SIGINT)

    def close_terminal(self) -> None:
        """What a closed terminal window does: the terminal is gone, and the shell sends its jobs SIGHUP."""
        os.close(self.controller)
        os.killpg(self.process.pid, signal.SIGHUP)


@pytest.mark.parametrize("stop_by", ["ctrl_c", "close_terminal"])
def test_ctrl_c_or_a_closed_terminal_drains_the_workers_and_leaves_nothing_behind(stop_by, tmp_path):
    """`up` with its private broker, as a job on a terminal, stopped mid-burst by the terminal's
    Ctrl-C (to the whole process group) or by closing the terminal (SIGHUP, and output that can no
    longer be written). Either way every worker gets one SIGTERM and drains, finishing its task,
    and no process of the run is left: workers, broker, epmd."""
    env, marker = marked_env(WORKFLEET_DOT_SECONDS="1")
    job = TerminalJob([sys.executable, "-m", "workfleet_operator.cli", "up", "--min", "0", "--max", "3",
                       "--grace-seconds", "20", "--logs", str(tmp_path)], env)
    try:
        wait_until(lambda: b"\nfleet " in job.output, timeout=120, message="the queue declared")
        amqp_url = PRIVATE_BROKER.search(job.output.decode(errors="replace")).group(1)
        ids, confirmed = publish(amqp_url, "tasks", ["..."] * 30)
        assert len(confirmed) == 30
        wait_until(lambda: len(worker_pids(marker)) == 3, timeout=120, message="three workers")
        wait_until(lambda: acked_ids(tmp_path), timeout=60, message="some tasks done")
        getattr(job, stop_by)()
        assert job.process.wait(60) == 0, job.output.decode(errors="replace")
    finally:
        stop(job.process)
    assert processes_with(marker) == []
    logs = [log.read_text() for log in tmp_path.glob("worker-*.log")]
    assert len(logs) == 3
    for log in logs:
        assert log.count("SIGTERM received: draining") == 1 and "exiting now" not in log, log


def test_a_closed_terminal_while_the_broker_starts_leaves_nothing_behind():
    """The hangup comes while `up` waits for its private broker to boot: it stops the broker it
    was starting and exits 130, as for Ctrl-C there."""
    env, marker = marked_env()
    job = TerminalJob([sys.executable, "-m", "workfleet_operator.cli", "up"], env)
    try:
        wait_until(lambda: any("rabbitmq-server" in line for line in processes_with(marker)), timeout=60,
                   message="the broker starting")
        assert b"broker " not in job.output, "still starting"
        job.close_terminal()
        assert job.process.wait(60) == 130
    finally:
        stop(job.process)
    assert processes_with(marker) == []


def test_started_with_nohup_it_runs_on_after_a_hangup(broker, queue_name, tmp_path):
    """`nohup workfleet up > log &`: SIGHUP ignored from the start, output to a file. The shell's
    hangup leaves it running, acking tasks published after it, until a SIGTERM stops it."""
    env, marker = marked_env(WORKFLEET_DOT_SECONDS="0.1")
    declare(broker.amqp_url, Topology(queue_name))
    with open(tmp_path / "up.log", "wb") as log:
        run = subprocess.Popen([sys.executable, "-m", "workfleet_operator.cli", "up", "--amqp-url", broker.amqp_url,
                                "--management-url", broker.management_url, "--queue", queue_name, "--min", "1",
                                "--logs", str(tmp_path)], env=env, stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        wait_until(lambda: len(worker_pids(marker)) == 1, timeout=120, message="a worker")
        os.killpg(run.pid, signal.SIGHUP)
        ids, confirmed = publish(broker.amqp_url, queue_name, ["."] * 5)
        wait_until(lambda: confirmed <= acked_ids(tmp_path), timeout=60, message="the tasks published after the hangup acked")
        assert run.poll() is None
        run.terminate()
        assert run.wait(60) == 0
    finally:
        stop(run)
    assert processes_with(marker) == []


def acked_ids(folder: Path) -> set[str]:
    return {line["message_id"] for log in folder.glob("worker-*.log")
            for line in read_delivery_outcomes(log) if line["outcome"] == "acked"}


def run_in_terminal(args: list[str], env: dict[str, str], timeout: float = 300) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as its stdout and stderr; its exit status and output."""
    job = TerminalJob(args, env)
    return job.wait(timeout), job.output.decode(errors="replace")


def test_live_view_on_a_terminal_and_plain_lines_elsewhere():
    env, marker = marked_env()
    command = [sys.executable, "-m", "workfleet_operator.cli", "up", "--demo", "--tasks", "20"]
    status, screen = run_in_terminal(command, env)
    assert status == 0, screen
    for part in ("workfleet up: queue 'tasks'", "backlog", "ready", "unacked", "dead-lettered", "workers",
                 "desired", "running", "busy", "rates /s", "publish", "ack", "redeliver", "last decisions"):
        assert part in screen, (part, screen[-3000:])
    assert "\x1b[" in screen, "drawn with terminal escapes"
    assert "lost 0" in screen

    plain = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stdout
    assert "\x1b[" not in plain.stdout and "last decisions" not in plain.stdout
    changes = decisions(plain.stdout)
    assert len(changes) == len(re.findall(r"^ +[\d.]+s  workers \d+ -> \d+  \w+: ", plain.stdout, re.MULTILINE))
    assert all(before != after for before, after in changes), "a line per decision that changes the count"
    assert processes_with(marker) == []


def test_operator_metrics_are_served_and_the_workers_listed_for_prometheus(broker, queue_name, tmp_path):
    """The operator's series for the local pool at the printed address, and a file_sd list of the
    workers whose every address serves the workers' metrics; options after -- reach every worker
    (each runs the --concurrency it was given)."""
    env, marker = marked_env(WORKFLEET_DOT_SECONDS="1")
    declare(broker.amqp_url, Topology(queue_name))
    run = up("--amqp-url", broker.amqp_url, "--management-url", broker.management_url, "--queue", queue_name,
             "--min", "0", "--max", "3", "--logs", str(tmp_path), "--", "--concurrency", "2", env=env)
    try:
        first_lines = [run.stdout.readline() for _ in range(2)]
        operator_url = re.search(r"operator (http://\S+/metrics)", "".join(first_lines)).group(1)
        targets_file = Path(re.search(r"file_sd\) in (\S+)", "".join(first_lines)).group(1))
        publish(broker.amqp_url, queue_name, ["..."] * 30)
        pool = {"namespace": "local", "pool": "workfleet-worker", "queue": queue_name}
        wait_until(lambda: sample(scrape(operator_url), "workfleet_pool_replicas_desired", **pool) == 3, timeout=60,
                   message="the operator's desired replicas at 3")
        assert sample(scrape(operator_url), "workfleet_pool_scaling_decisions_total", **pool, direction="up",
                      reason="Backlog") >= 1
        wait_until(lambda: targets_file.exists() and len(json.loads(targets_file.read_text())) == 3, timeout=60,
                   message="three workers listed")
        for group in json.loads(targets_file.read_text()):
            assert group["labels"]["namespace"] == "local"
            url = f"http://{group['targets'][0]}/metrics"  # a worker just started may not serve yet
            wait_until(lambda: "workfleet_worker_messages_in_flight" in scrape_or_empty(url), timeout=30,
                       message=f"{url} serving the worker's metrics")
            assert sample(scrape(url), "workfleet_worker_concurrency", queue=queue_name) == 2
        run.send_signal(signal.SIGINT)
        assert run.wait(60) == 0
    finally:
        stop(run)
    assert processes_with(marker) == []


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample with this name and exactly these labels, from metrics text."""
    for family in text_string_to_metric_families(text):
        for each in family.samples:
            if each.name == name and each.labels == labels:
                return each.value
    return None


def scrape_or_empty(url: str) -> str:
    try:
        return scrape(url)
    except OSError:
        return ""


def test_prometheus_reads_the_fleet_with_the_charts_dashboard_and_alerts(tmp_path):
    """`--prometheus` scrapes the operator, the workers and the broker with the labels a cluster
    gives them, so every query of the chart's dashboard and every one of its alert rules reads
    real series of the local fleet; Ctrl-C stops Prometheus with the rest."""
    env, marker = marked_env(WORKFLEET_DOT_SECONDS="0.1")
    run = up("--prometheus", "--min", "1", "--max", "3", "--messages-per-replica", "5",
             "--task", "tests.support.tasks:poison_or_dots", "--logs", str(tmp_path), "--", "--max-attempts", "2",
             env=env)
    try:
        started = "".join(run.stdout.readline() for _ in range(4))
        amqp_url = re.search(r"private node of .* on (amqp://\S+)", started).group(1)
        prometheus = PrometheusAPI(re.search(r"prometheus (http://\S+),", started).group(1))
        # A backlog to scale up for, and a poison task retried and dead-lettered.
        publish(amqp_url, "tasks", ["poison pill"] + ["...."] * 40)
        rules = yaml.safe_load((tmp_path / "prometheus" / "alert_rules.yaml").read_text())
        assert_dashboard_and_alerts_read_series(prometheus, rules, "local", "workfleet", hint=f"(logs in {tmp_path})")
        assert prometheus.targets_up("workfleet-operator") == 1 and prometheus.targets_up("workfleet-rabbitmq") == 1
        assert prometheus.targets_up("local/workfleet-worker") >= 1
        run.send_signal(signal.SIGINT)
        assert run.wait(60) == 0
    finally:
        stop(run)
    assert processes_with(marker) == [], "Prometheus stopped with the fleet"
