"""The local fleet's replicas: workfleet-worker processes, started and stopped as a Deployment's
pods are in the cluster.

`reconcile(n)` first replaces any worker that exited without being asked to (a crash, a SIGKILL),
as a ReplicaSet replaces a lost pod, then starts workers up to n, or asks the idle ones to stop
first, as pod-deletion-cost makes the ReplicaSet delete idle pods first. Stopping is SIGTERM: the
worker finishes the task in hand, hands back what it prefetched, and exits.
"""

import logging
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from workfleet_operator.local.rabbitmq import free_port

LOGGER = logging.getLogger(__name__)

IN_FLIGHT_METRIC = "workfleet_worker_messages_in_flight"
SCRAPE_TIMEOUT_S = 1.0


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    metrics_port: int
    log: Path
    started_at: float = field(default_factory=time.monotonic)
    stopping: bool = False

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def in_flight(self) -> int | None:
        """Messages the worker holds (running or prefetched), from its /metrics; None if it does not answer."""
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=SCRAPE_TIMEOUT_S) as response:
                text = response.read().decode()
        except OSError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == IN_FLIGHT_METRIC:
                    return int(sample.value)
        return None


class WorkerProcesses:
    def __init__(self, amqp_url: str, worker_args: list[str], folder: Path, env: dict[str, str] | None = None):
        self.amqp_url = amqp_url
        self.worker_args = worker_args
        self.folder = folder
        self.env = dict(os.environ, **(env or {}), WORKFLEET_AMQP_URL=amqp_url)
        self.workers: list[Worker] = []  # alive, or exited and not yet reaped
        self.history: list[Worker] = []  # every worker started, for reading their logs at the end
        self.replicas = 0  # what the last reconcile asked for
        self.replaced = 0  # workers that exited unasked and were started again
        self._started = 0

    @property
    def running(self) -> list[Worker]:
        """The replicas: alive and not asked to stop."""
        return [worker for worker in self.workers if worker.alive and not worker.stopping]

    def holdings(self) -> dict[str, int]:
        """Messages held by each running worker; a worker that does not answer holds an unknown
        amount, counted as one so it is never taken for idle."""
        return {worker.name: (held if (held := worker.in_flight()) is not None else 1) for worker in self.running}

    def reconcile(self, desired: int) -> None:
        """Run `desired` workers: the replica count, as a Deployment's spec says it; a worker lost
        while the count stays the same is replaced."""
        self.replicas = desired
        self._reap()
        running = self.running
        for _ in range(desired - len(running)):
            self._start()
        if len(running) > desired:
            held = self.holdings()
            # Idle ones first, then the ones holding least; the newest among equals.
            by_cost = sorted(running, key=lambda worker: (held.get(worker.name, 1), -worker.started_at))
            for worker in by_cost[: len(running) - desired]:
                self._stop(worker)

    def _reap(self) -> None:
        for worker in list(self.workers):
            if worker.alive:
                continue
            self.workers.remove(worker)
            if not worker.stopping:
                self.replaced += 1
                LOGGER.warning("worker exited unasked; starting another",
                               extra={"worker": worker.name, "exit": worker.process.returncode})

    def _start(self) -> Worker:
        self._started += 1
        name = f"worker-{self._started}"
        port = free_port()
        log = self.folder / f"{name}.log"
        env = dict(self.env, POD_NAME=name)  # the connection's name, as a pod's is
        with open(log, "ab") as stderr:
            # A session of its own: a Ctrl-C or hangup at the terminal reaches `up`, which stops the
            # worker with one SIGTERM (a second signal would make it exit at once; stop_signals.py).
            process = subprocess.Popen(
                [sys.executable, "-m", "workfleet_worker", "--metrics-port", str(port), *self.worker_args],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
            )
        worker = Worker(name, process, port, log)
        self.workers.append(worker)
        self.history.append(worker)
        return worker

    def kill_a_busy_one(self) -> str | None:
        """SIGKILL a running worker that holds a message (chaos): its messages go back to the queue.
        Returns its name, or None when no worker is busy."""
        held = self.holdings()
        busy = [worker for worker in self.running if held.get(worker.name, 0) > 0]
        if not busy:
            return None
        victim = random.choice(busy)
        victim.process.kill()
        return victim.name

    def _stop(self, worker: Worker) -> None:
        worker.stopping = True
        if worker.alive:
            worker.process.send_signal(signal.SIGTERM)

    def stop_all(self, grace_seconds: float) -> None:
        """SIGTERM every worker, wait up to the grace period, SIGKILL what is left (whose
        messages the broker then redelivers)."""
        for worker in self.workers:
            self._stop(worker)
        deadline = time.monotonic() + grace_seconds
        for worker in self.workers:
            try:
                worker.process.wait(max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                LOGGER.warning("worker did not stop within the grace period; killing it", extra={"worker": worker.name})
                worker.process.kill()
                worker.process.wait()
        self.workers.clear()

