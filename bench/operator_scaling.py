"""Operator benchmarks from issue 8, on a real control plane and a private RabbitMQ node.

    .venv/bin/python bench/operator_scaling.py [--trials 10] [--cost-seconds 60]

reaction: a burst of 100 persistent messages is published with confirms on a connection
          opened beforehand; the clock starts when the last confirm arrives and stops when a watch on the
          Deployment sees its replicas change (the operator's /scale write). Pods stay
          Pending (no kubelet), so the backlog stays until the bench purges it. Run at
          pollSeconds 1 and 5; between trials the queue is purged and the pool scales
          back to 1 (stabilization 0).
lag:      how long the management API takes to show 10 messages just confirmed, with
          RabbitMQ's default statistics intervals and with the FAST_STATS settings the
          private nodes (and the chart) use: the floor under any reaction time.
cost:     the operator process's CPU time and RSS while it scales 1 and then 100
          WorkerPools (each its own Deployment and queue, pollSeconds 5), and the
          management-API queue-stats requests per minute, from its own metric.
Prints tables; asserts nothing about time (results go to docs/benchmarks.md).
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pika  # noqa: E402
from kubernetes import client, config, watch  # noqa: E402

from tests.support.broker import declare, wait_until  # noqa: E402
from tests.support.controlplane import ControlPlane  # noqa: E402
from tests.support.operator import CRD, OperatorProcess  # noqa: E402
from workfleet_common.topology import Topology  # noqa: E402
from workfleet_operator.local.rabbitmq import RabbitNode  # noqa: E402

NAMESPACE = "bench"
BURST = 100
PHASES = random.Random(8)  # seeded: the same burst times on every run


def deployment(name: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "w", "image": "example.invalid/w:1"}]}}}}


def pool(name: str, queue: str, broker: RabbitNode, poll_seconds: int, amqp: bool = False) -> dict:
    reach = {"managementUrl": broker.management_url, "credentialsSecretRef": {"name": "monitor"}}
    if amqp:
        reach["amqpUrl"] = f"amqp://127.0.0.1:{broker.amqp_port}"
    return {"apiVersion": "workfleet.dev/v1alpha1", "kind": "WorkerPool", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"scaleTargetRef": {"name": name}, "queue": {"name": queue}, "broker": reach,
                     "minReplicas": 1, "maxReplicas": 10, "pollSeconds": poll_seconds,
                     "policy": {"scaleDownStabilizationSeconds": 0, "rateWindowSeconds": max(30, 2 * poll_seconds)}}}


class ReplicaWatch:
    """Records when each replica change of one Deployment is seen through a watch."""

    def __init__(self, apps: client.AppsV1Api, name: str):
        self.changes: list[tuple[float, int]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, args=(apps, name), daemon=True)
        self._thread.start()

    def _run(self, apps, name) -> None:
        while not self._stop:
            for event in watch.Watch().stream(apps.list_namespaced_deployment, NAMESPACE,
                                              field_selector=f"metadata.name={name}", timeout_seconds=5):
                replicas = event["object"].spec.replicas
                if not self.changes or self.changes[-1][1] != replicas:
                    self.changes.append((time.monotonic(), replicas))

    def first_change_after(self, since: float, from_replicas: int) -> float | None:
        return next((at for at, replicas in self.changes if at >= since and replicas != from_replicas), None)

    def close(self) -> None:
        self._stop = True


def stats_lag(fast_stats: bool, trials: int) -> list[float]:
    with RabbitNode(fast_stats=fast_stats) as node:
        declare(node.amqp_url, Topology("lag"))
        path = "/api/queues/%2F/lag?columns=messages_ready"
        wait_until(lambda: "messages_ready" in node.management_get(path), timeout=60, message="first stats")
        lags = []
        for _ in range(trials):
            before = node.management_get(path)["messages_ready"]
            confirmed_at = confirmed_burst(node.amqp_url, "lag", 10)
            wait_until(lambda: node.management_get(path).get("messages_ready") == before + 10, timeout=60,
                       interval=0.02, message="the burst in the stats")
            lags.append(time.monotonic() - confirmed_at)
            time.sleep(PHASES.uniform(0, 1))  # land bursts at random points of the 1 s sampling cycle
        return lags


def confirmed_burst(amqp_url: str, queue: str, count: int) -> float:
    """Publish persistent messages, each confirmed; returns the time the last confirm arrived."""
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        for _ in range(count):
            channel.basic_publish("", queue, b"x", pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))
        return time.monotonic()  # basic_publish returned: the broker confirmed the last one


def purge(amqp_url: str, queue: str) -> None:
    with pika.BlockingConnection(pika.URLParameters(amqp_url)) as connection:
        connection.channel().queue_purge(queue)


def reaction_times(plane, broker, apps, poll_seconds: int, amqp: bool, trials: int, scratch: Path) -> list[float]:
    name = queue = f"react-{poll_seconds}{'-amqp' if amqp else ''}"
    declare(broker.amqp_url, Topology(queue))
    apps.create_namespaced_deployment(NAMESPACE, deployment(name))
    plane.kubectl("apply", "-f", "-", input=json.dumps(pool(name, queue, broker, poll_seconds, amqp)))
    replicas = lambda: apps.read_namespaced_deployment_scale(name, NAMESPACE).spec.replicas  # noqa: E731
    watcher = ReplicaWatch(apps, name)
    operator = OperatorProcess(plane.kubeconfig, NAMESPACE, scratch / f"operator-{name}.log").start()
    times = []
    try:
        time.sleep(2 * poll_seconds + 3)  # stats known, the pool settled at 1
        for _ in range(trials):
            wait_until(lambda: replicas() == 1, timeout=60, message="back to 1 replica")
            time.sleep(1 + PHASES.uniform(0, poll_seconds))  # land bursts at random points of the poll cycle
            confirmed_at = confirmed_burst(broker.amqp_url, queue, BURST)
            wait_until(lambda: watcher.first_change_after(confirmed_at, 1) is not None, timeout=60, message="scale-up")
            times.append(watcher.first_change_after(confirmed_at, 1) - confirmed_at)
            purge(broker.amqp_url, queue)
    finally:
        operator.stop()
        watcher.close()
        plane.kubectl("delete", "workerpool", name, "-n", NAMESPACE)
    return times


def process_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds used so far, resident set size in bytes) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def cost(plane, broker, apps, pools: int, seconds: float, scratch: Path) -> dict:
    names = [f"cost-{pools}-{index}" for index in range(pools)]
    for name in names:
        declare(broker.amqp_url, Topology(name))
        apps.create_namespaced_deployment(NAMESPACE, deployment(name))
    plane.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [pool(name, name, broker, 5) for name in names]}))
    operator = OperatorProcess(plane.kubeconfig, NAMESPACE, scratch / f"operator-cost-{pools}.log").start()
    try:
        time.sleep(15)  # every pool past its first polls and status writes
        cpu_start, _ = process_usage(operator.process.pid)
        requests_start = operator.metric("workfleet_operator_management_requests_total", outcome="ok")
        polls_start = sum(operator.samples("workfleet_pool_polls_total").values())
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        cpu_end, rss = process_usage(operator.process.pid)
        requests = operator.metric("workfleet_operator_management_requests_total", outcome="ok") - requests_start
        polls = sum(operator.samples("workfleet_pool_polls_total").values()) - polls_start
    finally:
        operator.stop()
        plane.kubectl("delete", "workerpools", "--all", "-n", NAMESPACE)
        for name in names:
            apps.delete_namespaced_deployment(name, NAMESPACE)
    return {"pools": pools, "cpu_percent": 100 * (cpu_end - cpu_start) / elapsed, "rss_mib": rss / 2**20,
            "requests_per_minute": 60 * requests / elapsed, "polls_per_minute": 60 * polls / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--cost-seconds", type=float, default=60)
    parser.add_argument("--parts", default="lag,reaction,cost", help="comma-separated: lag, reaction, cost")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    scratch = Path(tempfile.mkdtemp(prefix="workfleet-bench-operator-"))
    if "lag" in parts:
        print("lag: 10 messages confirmed -> visible in the management API")
        print("| broker statistics settings | median s | max s |")
        print("|---|---:|---:|")
        for fast, label in ((False, "RabbitMQ defaults"), (True, "FAST_STATS (1 s)")):
            lags = sorted(stats_lag(fast, args.trials))
            print(f"| {label} | {statistics.median(lags):.2f} | {lags[-1]:.2f} |", flush=True)
        print()
    with ControlPlane() as plane, RabbitNode() as broker:
        broker.ctl("add_user", "monitor", "monitor")
        broker.ctl("set_user_tags", "monitor", "monitoring")
        broker.ctl("set_permissions", "-p", "/", "monitor", "^$", "^$", "^$")
        plane.kubectl("apply", "-f", str(CRD))
        plane.kubectl("wait", "--for=condition=Established", "crd/workerpools.workfleet.dev", "--timeout=60s")
        plane.kubectl("create", "namespace", NAMESPACE)
        plane.kubectl("create", "secret", "generic", "monitor", "-n", NAMESPACE,
                      "--from-literal=username=monitor", "--from-literal=password=monitor")
        apps = client.AppsV1Api(config.new_client_from_config(str(plane.kubeconfig)))

        print(f"reaction: burst of {BURST} confirmed -> /scale written, {args.trials} trials each")
        print("| pollSeconds | ready count from | median s | p90 s | max s | target (poll + 1 s) |")
        print("|---:|---|---:|---:|---:|---:|")
        for poll_seconds, amqp in ((1, False), (1, True), (5, False), (5, True)) if "reaction" in parts else ():
            times = sorted(reaction_times(plane, broker, apps, poll_seconds, amqp, args.trials, scratch))
            p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
            source = "AMQP passive declare (amqpUrl)" if amqp else "management API"
            print(f"| {poll_seconds} | {source} | {statistics.median(times):.2f} | {p90:.2f} | {times[-1]:.2f} |"
                  f" {poll_seconds + 1} |", flush=True)
            print("  trials: " + ", ".join(f"{value:.2f}" for value in times), flush=True)

        print(f"\ncost: pollSeconds 5, measured over {args.cost_seconds:.0f} s")
        print("| pools | operator CPU % of one core | RSS MiB | stats requests / min | pool polls / min |")
        print("|---:|---:|---:|---:|---:|")
        for pools in (1, 100) if "cost" in parts else ():
            row = cost(plane, broker, apps, pools, args.cost_seconds, scratch)
            print(f"| {row['pools']} | {row['cpu_percent']:.1f} | {row['rss_mib']:.0f} | "
                  f"{row['requests_per_minute']:.1f} | {row['polls_per_minute']:.0f} |", flush=True)
    print(f"\noperator logs in {scratch}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
