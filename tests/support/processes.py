"""Real worker processes for the integration tests, each logging to its own file."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from workfleet_operator.local.rabbitmq import free_port

TESTS_DIR = Path(__file__).resolve().parents[1]


# Retries go through a retry queue, as with the default ladder, but wait only a moment, so that tests
# of other things need not wait out the default ladder's seconds and minutes.
TEST_RETRY_DELAYS = "100ms"


class WorkerProcess:
    def __init__(self, amqp_url: str, log_path: Path, *args: str, dot_seconds: float = 0.05, env: dict | None = None):
        self.metrics_port = free_port()
        self.log_path = log_path
        process_env = dict(os.environ)
        process_env.update(
            WORKFLEET_AMQP_URL=amqp_url,
            WORKFLEET_DOT_SECONDS=str(dot_seconds),
            WORKFLEET_METRICS_PORT=str(self.metrics_port),
            WORKFLEET_RETRY_DELAYS=TEST_RETRY_DELAYS,
            PYTHONPATH=os.pathsep.join([str(TESTS_DIR.parent), process_env.get("PYTHONPATH", "")]),
        )
        process_env.update(env or {})
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workfleet_worker", *args], env=process_env, stderr=self._log
        )

    def metric(self, name: str) -> float:
        """A sample's value from the worker's /metrics (first sample with that name)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + "{") or line.startswith(name + " "):
                    return float(line.rsplit(" ", 1)[1])
        raise KeyError(name)

    def wait_for_metric(self, name: str, predicate, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"worker exited with {self.process.returncode}"
            try:
                value = self.metric(name)
                if predicate(value):
                    return value
            except (OSError, KeyError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"{name} did not reach the expected value in {timeout}s")

    def wait_ready(self, timeout: float = 60) -> None:
        self.wait_for_metric("workfleet_worker_connected", lambda value: value == 1, timeout)

    def terminate(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self._log.close()
