"""Real worker processes standing in for the Pods of a Deployment.

The test control plane has no kubelet, so Pods stay Pending. This plays the
kubelet's part for one Deployment: a `workfleet-worker` per Pod, with POD_NAME set
to the Pod's name (so its AMQP connection carries it, as in a cluster), started
when the Pod appears and sent SIGTERM when the Pod is deleted, as the kubelet
does on scale-in. A worker still running its task finishes it and exits 0.
"""

import threading
import time
from pathlib import Path

from kubernetes import client

from tests.support.processes import WorkerProcess

POLL_S = 0.2


class PodStandIns:
    def __init__(self, api: client.CoreV1Api, namespace: str, selector: str, amqp_url: str, log_dir: Path, *worker_args: str, dot_seconds: float = 0.05):
        self._api = api
        self._namespace = namespace
        self._selector = selector
        self._amqp_url = amqp_url
        self._log_dir = log_dir
        self._worker_args = worker_args
        self._dot_seconds = dot_seconds
        self.workers: dict[str, WorkerProcess] = {}  # by pod name, running or stopped
        self.stopped: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def start(self) -> "PodStandIns":
        self._thread.start()
        return self

    @property
    def running(self) -> set[str]:
        return {name for name, worker in self.workers.items() if worker.process.poll() is None}

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                pods = self._api.list_namespaced_pod(self._namespace, label_selector=self._selector).items
            except Exception:  # the control plane going away at the end of a test
                time.sleep(POLL_S)
                continue
            live = {pod.metadata.name for pod in pods if pod.metadata.deletion_timestamp is None}
            for name in sorted(live - set(self.workers)):
                self.workers[name] = WorkerProcess(
                    self._amqp_url, self._log_dir / f"{name}.log", *self._worker_args,
                    dot_seconds=self._dot_seconds, env={"POD_NAME": name},
                )
            for name in set(self.workers) - live - self.stopped:
                self.stopped.add(name)
                self.workers[name].process.terminate()  # SIGTERM: finish the task in hand, then exit
            time.sleep(POLL_S)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for worker in self.workers.values():
            worker.close()
