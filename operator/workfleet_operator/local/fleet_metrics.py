"""`workfleet up`'s metrics, as the cluster has them: the operator's own series (the same names and
labels a WorkerPool gets, named as a default install's pool in namespace "local") served on localhost,
and the workers' /metrics addresses written as a Prometheus file_sd target list, so any Prometheus
(and the chart's dashboard and alerts) can read the local fleet as it reads a cluster's."""

import json
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server

from workfleet_operator.local.autoscaler import Step
from workfleet_operator.local.rabbitmq import free_port
from workfleet_operator.local.worker_processes import WorkerProcesses
from workfleet_operator.metrics import OperatorMetrics
from workfleet_operator.scaling.policy import Policy

# Named as `helm install workfleet` names its pool, so the chart's alert rules and dashboard select it.
NAMESPACE = "local"
RELEASE = "workfleet"
POOL = f"{RELEASE}-worker"


class FleetMetrics:
    def __init__(self, queue: str, policy: Policy, folder: Path):
        self.registry = CollectorRegistry()
        self.metrics = OperatorMetrics(self.registry)
        self.labels = (NAMESPACE, POOL, queue)
        self.metrics.add_pool(self.labels)
        self.metrics.pools.set(1)
        self.metrics.min_replicas.labels(*self.labels).set(policy.min_replicas)
        self.metrics.max_replicas.labels(*self.labels).set(policy.max_replicas)
        self.targets_file = folder / "worker-targets.json"
        self.port: int | None = None

    def serve(self) -> str:
        """Serve the operator's metrics on a free localhost port; returns their URL."""
        self.port = free_port()
        start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        return f"http://127.0.0.1:{self.port}/metrics"

    def record(self, step: Step, workers: WorkerProcesses) -> None:
        metrics, labels = self.metrics, self.labels
        metrics.polls.labels(*labels).inc()
        if step.error is not None:
            metrics.stats_errors.labels(*labels, step.error.kind).inc()
        if step.stats is not None:
            metrics.ready.labels(*labels).set(step.stats.ready)
            metrics.unacked.labels(*labels).set(step.stats.unacked)
            metrics.consumers.labels(*labels).set(step.stats.consumers)
            metrics.observe_counters(labels, step.stats.counters)
            metrics.observe_rates(labels, step.rates)
            metrics.last_good_poll.labels(*labels).set(time.time())
        metrics.observe_waiting_to_retry(labels, step.waiting_to_retry)
        metrics.desired.labels(*labels).set(step.decision.desired)
        metrics.current.labels(*labels).set(step.decision.desired)
        if step.changed:
            direction = "up" if step.decision.desired > step.previous else "down"
            metrics.decisions.labels(*labels, direction, step.decision.reason.value).inc()
        self.write_targets(workers)

    def write_targets(self, workers: WorkerProcesses) -> None:
        """Every running worker's /metrics address, labelled as the chart's PodMonitor labels a pod."""
        groups = [{"targets": [f"127.0.0.1:{worker.metrics_port}"],
                   "labels": {"namespace": NAMESPACE, "release": RELEASE, "pod": worker.name}} for worker in workers.running]
        staged = self.targets_file.with_suffix(".tmp")
        staged.write_text(json.dumps(groups))
        staged.replace(self.targets_file)  # atomic: a Prometheus never reads half a list
